"""Recorded UART byte streams: a session against the real RTL (sim server, board preset) is recorded once
and kept in tests/data/; the test replays it through UartTransport with no simulator, checking that the driver
still sends exactly the recorded bytes and decodes the RTL's answers to the golden model's values.

    python -m tests.fakes.recorded      # re-record (needs the simulator; rewrites tests/data/uart_session.json)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from pimhil.contract import CMDQ_BASE, SCRATCH_BASE, Command, HubOp, Reg, bank_address, preset

DATA = Path(__file__).resolve().parents[1] / "data" / "uart_session.json"
P = preset("board")


class RecordingSerial:
    """Wraps a pyserial port and logs every write and read as (direction, hex)."""

    def __init__(self, ser):
        self.ser, self.log = ser, []

    @property
    def timeout(self):
        return self.ser.timeout

    @timeout.setter
    def timeout(self, v):
        self.ser.timeout = v

    def write(self, data):
        self.log.append(("tx", bytes(data).hex()))
        return self.ser.write(data)

    def read(self, n):
        data = self.ser.read(n)
        if data:
            self.log.append(("rx", data.hex()))
        return data

    def close(self):
        self.ser.close()


class ReplaySerial:
    """Plays the device side of a recording: host writes must equal the recorded ones, in order; reads
    return the recorded device bytes. A departure raises AssertionError naming the first differing byte."""

    def __init__(self, log):
        self.tx = b"".join(bytes.fromhex(h) for d, h in log if d == "tx")
        self.rx = b"".join(bytes.fromhex(h) for d, h in log if d == "rx")
        self.tx_pos = self.rx_pos = 0
        self.timeout = 0.05

    def write(self, data):
        data = bytes(data)
        want = self.tx[self.tx_pos:self.tx_pos + len(data)]
        if data != want:
            i = next((i for i, (a, b) in enumerate(zip(data, want)) if a != b), min(len(data), len(want)))
            raise AssertionError(f"host sent byte {self.tx_pos + i} differently from the recording")
        self.tx_pos += len(data)
        return len(data)

    def read(self, n):
        # The device answers only what it has been asked so far: never run ahead of the host.
        out = self.rx[self.rx_pos:self.rx_pos + n]
        self.rx_pos += len(out)
        return out

    def close(self):
        pass

    @property
    def done(self) -> bool:
        return self.tx_pos == len(self.tx) and self.rx_pos == len(self.rx)


def session(t, *, settle=None):
    """A fixed exchange: identity, bank/GB/scratch traffic, a GEMV tile and a refused command, with waits
    that are fixed (one STATUS read after `settle`) so the byte stream does not depend on timing."""
    rng = np.random.default_rng(20261123)
    out = {"identity": t.read(Reg.MAGIC, 12)}
    groups, chunks = 2, 1
    m, k = groups * P.banks, P.row_words
    w = rng.integers(0, 1 << 16, (m, k), dtype=np.uint16) & 0x3FFF      # finite BF16 of moderate size
    x = rng.integers(0, 1 << 16, k, dtype=np.uint16) & 0x3FFF
    for b in range(P.banks):
        t.write(bank_address(P, b, 0), np.ascontiguousarray(w[b::P.banks]).ravel().view("<u4").tolist())
    x_row = P.rows - 1
    t.write(bank_address(P, 0, x_row), x.view("<u4").tolist())
    out["bank_back"] = t.read(bank_address(P, 1, 0), 16)
    t.write(Reg.CONTROL, [2])
    t.write_fixed(CMDQ_BASE, Command(HubOp.GEMV_TILE, row=0, col=groups, count=chunks, bank=0, gb=x_row,
                                     imm=0).queue_words(P))
    if settle:
        settle()
    out["status_after_tile"] = t.read(Reg.STATUS, 1)
    out["y"] = t.read(SCRATCH_BASE, m)
    t.write_fixed(CMDQ_BASE, Command(HubOp.GEMV_TILE, row=0, col=0, count=1).queue_words(P))
    if settle:
        settle()
    out["error"] = t.read(Reg.STATUS, 1) + t.read(Reg.ERROR_CODE, 2)
    t.write(Reg.CONTROL, [1])
    out["status_cleared"] = t.read(Reg.STATUS, 1)
    out["inputs"] = {"w": w.tolist(), "x": x.tolist()}
    return out


def record():
    from pimhil.sim_launch import SimServer
    from pimhil.transport.uart import UartTransport

    with SimServer("uart", "board") as server:
        import serial

        ser = RecordingSerial(serial.serial_for_url(f"socket://{server.host}:{server.port}", timeout=0.05))
        t = UartTransport("recording", serial=ser, timeout=10.0, retries=0, window=1)
        result = session(t, settle=lambda: time.sleep(0.5))
        t.close()
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps({"generated": "recorded from the RTL by `python -m tests.fakes.recorded`; do not edit",
                                "preset": "board", "log": ser.log, "result": result}) + "\n")
    print(f"recorded {sum(len(h) // 2 for _, h in ser.log)} bytes to {DATA}")


if __name__ == "__main__":
    record()
