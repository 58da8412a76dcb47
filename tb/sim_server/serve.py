"""The sim server's cocotb side: the simulated device serving one TCP client on 127.0.0.1.

Links (PIM_SIM_LINK):
- `uart`: raw UART link bytes for pyserial's `socket://`, through the PHY bypass and the device's SimByteBridge
  (64 bytes per Python wake-up; the link itself still takes one byte per cycle).
- `uart-bytes`: the same through the plain byte bypass (`ub_in`/`ub_out`), Python watching every cycle.
- `uart-phy`: the same bytes through the 8N1 PHY on `uart_rx`/`uart_tx` (cocotbext-uart peers), with the
  baud divisor set to PIM_SIM_BAUD_DIV cycles per bit so the PHY is exercised at a simulable rate.
- `pcie`: contract.SimPcie requests served by cocotbext-axi masters on the AXI4-Lite (BAR) and AXI4 (DMA)
  ports.

Python is not woken every cycle while idle: with nothing to feed or collect, the server either blocks in
select() (simulation paused, the device is idle) or lets the simulator run a long Timer while the device is
busy. The test ends when the client disconnects, when no client comes within PIM_SIM_ACCEPT_S, or at the
PIM_SIM_DEADLINE_S wall-clock deadline.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer

from pimhil.contract import CSR_BASE, Reg, SimPcie, preset

CLK_NS = 10
BUSY_POLL_CYCLES = 1024      # while the device works and the client is quiet, look at the socket this often
IDLE_BLOCK_S = 0.25          # while everything is idle, block in select() this long before advancing time
IDLE_ADVANCE_CYCLES = 256    # ...and then let this much simulated time pass (inter-byte timeouts still fire)


class Server:
    def __init__(self, dut):
        self.dut = dut
        self.p = preset(os.environ.get("PIM_PRESET", "sim"))
        self.link = os.environ.get("PIM_SIM_LINK", "uart")
        self.deadline = time.monotonic() + float(os.environ.get("PIM_SIM_DEADLINE_S", "3600"))
        self.accept_s = float(os.environ.get("PIM_SIM_ACCEPT_S", "120"))
        self.log = dut._log
        self.stats = {"bytes_in": 0, "bytes_out": 0, "requests": 0}
        self.debug = os.environ.get("PIM_SIM_DEBUG") == "1"
        Clock(dut.clk, CLK_NS, unit="ns").start()
        dut.uart_bypass.value = 1 if self.link in ("uart", "uart-bytes") else 0
        dut.sb_select.value = 1 if self.link == "uart" else 0
        dut.sb_in_load.value = 0
        dut.sb_out_take.value = 0
        dut.uart_rx.value = 1
        dut.ub_in__valid.value = 0
        dut.ub_out__ready.value = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)

    def listen(self) -> socket.socket:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(os.environ.get("PIM_SIM_PORT", "0"))))
        srv.listen(1)
        port = srv.getsockname()[1]
        info = {"link": self.link, "host": "127.0.0.1", "port": port, "preset": os.environ.get("PIM_PRESET", "sim"),
                "pid": os.getpid()}
        print(f"PIM-SIM listening {self.link} 127.0.0.1:{port}", flush=True)
        ready = os.environ.get("PIM_SIM_READY_FILE")
        if ready:
            tmp = ready + ".tmp"
            with open(tmp, "w") as f:
                json.dump(info, f)
            os.replace(tmp, ready)
        return srv

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    # ---- UART: through the SimByteBridge ---------------------------------------------------------------
    async def serve_uart_bridge(self, conn: socket.socket):
        """Once per bridge width of cycles: drain the output buffer, refill the input buffer, talk to the
        socket. With no bytes moving and the device idle, block on the socket instead."""
        dut = self.dut
        width = len(dut.sb_in_data) // 8
        inbuf = bytearray()
        quiet = 0                    # wake-ups in a row with nothing moving
        conn.setblocking(False)
        while not self.expired():
            await ReadOnly()
            k = int(dut.sb_out_count.value)
            out = int(dut.sb_out_data.value).to_bytes(width, "little")[:k] if k else b""
            empty = bool(int(dut.sb_in_empty.value))
            busy = bool(int(dut.busy.value))
            link_active = bool(int(dut.link_active.value))
            await RisingEdge(dut.clk)
            dut.sb_out_take.value = k
            chunk = b""
            if empty and inbuf:
                chunk, inbuf = bytes(inbuf[:width]), inbuf[width:]
                dut.sb_in_data.value = int.from_bytes(chunk, "little")
                dut.sb_in_count.value = len(chunk)
                dut.sb_in_load.value = 1
            await RisingEdge(dut.clk)
            dut.sb_out_take.value = 0
            dut.sb_in_load.value = 0
            if out:
                self._send(conn, bytearray(out))
            data = self._poll_client(conn)
            if data is None:
                return
            inbuf += data
            moving = bool(out or chunk or inbuf or not empty or link_active)
            quiet = 0 if moving else quiet + 1
            if chunk or inbuf:
                # Refill as soon as the link has taken the chunk, but drain the output at least as often.
                await First(RisingEdge(dut.sb_in_empty), Timer(width * CLK_NS, "ns"))
            elif moving or quiet < 2:
                # link_active is part of `moving`: once the link is idle with nothing in or out, no answer
                # can come without new input, so one quiet wake-up is enough before the longer waits.
                await Timer((width - 2) * CLK_NS, "ns")
            elif busy:
                await Timer(BUSY_POLL_CYCLES * CLK_NS, "ns")
            else:
                r, _, _ = select.select([conn], [], [], IDLE_BLOCK_S)
                if not r:
                    await Timer(IDLE_ADVANCE_CYCLES * CLK_NS, "ns")
            await RisingEdge(dut.clk)

    # ---- UART: byte bypass -----------------------------------------------------------------------------
    async def serve_uart_bypass(self, conn: socket.socket):
        """ub_out.ready is high only while Python watches every cycle, so no answer byte passes unseen."""
        dut = self.dut
        inbuf = bytearray()
        outbuf = bytearray()
        pos = 0
        out_seen = False            # an answer byte was valid in the last watched cycle: more may follow
        conn.setblocking(False)
        while not self.expired():
            if pos >= len(inbuf):
                inbuf.clear()
                pos = 0
                data = self._poll_client(conn)
                if data is None:
                    return
                inbuf += data
            if pos < len(inbuf) or out_seen:
                # Watched cycle: feed one byte if the link takes it, collect the answer byte if there is one.
                active = pos < len(inbuf)
                dut.ub_out__ready.value = 1
                if active:
                    dut.ub_in__payload.value = inbuf[pos]
                dut.ub_in__valid.value = int(active)
                await ReadOnly()
                took = active and int(dut.ub_in__ready.value)
                out_seen = bool(int(dut.ub_out__valid.value))
                if out_seen:
                    outbuf.append(int(dut.ub_out__payload.value))
                await RisingEdge(dut.clk)
                pos += int(took)
                if len(outbuf) >= 4096:
                    self._send(conn, outbuf)
                continue
            # Unwatched: nothing to feed and no answer flowing. Hand over what was collected, then let the
            # simulator run until an answer starts, the client speaks, or time passes.
            dut.ub_in__valid.value = 0
            dut.ub_out__ready.value = 0
            if outbuf:
                self._send(conn, outbuf)
            if int(dut.ub_out__valid.value):
                out_seen = True
            elif int(dut.busy.value) or int(dut.link_active.value):
                await First(RisingEdge(dut.ub_out__valid), Timer(BUSY_POLL_CYCLES * CLK_NS, "ns"))
            else:
                # The link may still be working on a frame (answers come in bursts with gaps): give it
                # simulated time first, and block on the socket only once nothing came out of it.
                timer = Timer(IDLE_ADVANCE_CYCLES * CLK_NS, "ns")
                if await First(RisingEdge(dut.ub_out__valid), timer) is timer:
                    select.select([conn], [], [], IDLE_BLOCK_S)
            # Timers end at arbitrary points of a timestep: drive the streams only right after a clock edge.
            await RisingEdge(dut.clk)

    def _poll_client(self, conn) -> bytes | None:
        """Bytes the client has sent (b"" if none yet), or None once it has left."""
        r, _, _ = select.select([conn], [], [], 0)
        if not r:
            return b""
        data = conn.recv(1 << 16)
        if data == b"":
            self.log.info("client left")
            return None
        self.stats["bytes_in"] += len(data)
        if self.debug:
            self.log.info("in %d bytes: %s", len(data), data[:16].hex())
        return data

    def _send(self, conn, outbuf: bytearray):
        if self.debug:
            self.log.info("out %d bytes: %s", len(outbuf), bytes(outbuf[:16]).hex())
        conn.setblocking(True)
        conn.sendall(outbuf)
        conn.setblocking(False)
        self.stats["bytes_out"] += len(outbuf)
        outbuf.clear()

    # ---- UART: through the PHY -------------------------------------------------------------------------
    async def serve_uart_phy(self, conn: socket.socket):
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster
        from cocotbext.uart import UartSink, UartSource

        dut = self.dut
        div = int(os.environ.get("PIM_SIM_BAUD_DIV", "16"))
        axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "axil_"), dut.clk, dut.rst)
        await axil.write(CSR_BASE + Reg.UART_BAUD_DIV, div.to_bytes(4, "little"))
        baud = 1e9 / (CLK_NS * div)
        src = UartSource(dut.uart_rx, baud=baud, bits=8, stop_bits=1)
        sink = UartSink(dut.uart_tx, baud=baud, bits=8, stop_bits=1)
        conn.setblocking(False)
        byte_ns = int(10 * div * CLK_NS)
        while not self.expired():
            data = self._poll_client(conn)
            if data is None:
                return
            if data:
                await src.write(data)
            out = sink.read_nowait(sink.count()) if sink.count() else b""
            if out:
                self._send(conn, bytearray(out))
            idle = not (data or out or int(dut.busy.value) or int(dut.link_active.value))
            if idle and src.empty():
                r, _, _ = select.select([conn], [], [], IDLE_BLOCK_S)
                if r:
                    continue
            await Timer(16 * byte_ns, "ns")

    # ---- PCIe: AXI masters -----------------------------------------------------------------------------
    async def serve_pcie(self, conn: socket.socket):
        from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiMaster

        dut = self.dut
        axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "axil_"), dut.clk, dut.rst)
        axi = AxiMaster(AxiBus.from_prefix(dut, "axi_"), dut.clk, dut.rst)
        hsize = struct.calcsize(SimPcie.REQ)
        conn.setblocking(True)
        while not self.expired():
            r, _, _ = select.select([conn], [], [], 0)
            if not r:
                if int(dut.busy.value):
                    await Timer(BUSY_POLL_CYCLES * CLK_NS, "ns")
                else:
                    r, _, _ = select.select([conn], [], [], IDLE_BLOCK_S)
                    if not r:
                        await Timer(IDLE_ADVANCE_CYCLES * CLK_NS, "ns")
                continue
            head = _recv_exact(conn, hsize)
            if head is None:
                self.log.info("client left")
                return
            magic, op, chan, addr, nbytes = struct.unpack(SimPcie.REQ, head)
            data = b""
            if op == SimPcie.OP_WRITE and magic == SimPcie.REQ_MAGIC and nbytes <= SimPcie.MAX_BYTES:
                data = _recv_exact(conn, nbytes)
                if data is None:
                    self.log.info("client left mid-request")
                    return
            self.stats["requests"] += 1
            status, payload = await self._pcie_request(axil, axi, magic, op, chan, addr, nbytes, data)
            conn.sendall(struct.pack(SimPcie.RESP, SimPcie.RESP_MAGIC, status, 0, len(payload)) + payload)

    async def _pcie_request(self, axil, axi, magic, op, chan, addr, nbytes, data):
        bad = (magic != SimPcie.REQ_MAGIC or op not in (SimPcie.OP_READ, SimPcie.OP_WRITE)
               or chan not in (SimPcie.CHAN_USER, SimPcie.CHAN_DMA) or nbytes == 0 or nbytes % 4 or addr % 4
               or nbytes > SimPcie.MAX_BYTES or (chan == SimPcie.CHAN_USER and nbytes != 4))
        if bad:
            return SimPcie.BAD_REQUEST, b""
        master = axil if chan == SimPcie.CHAN_USER else axi
        if op == SimPcie.OP_READ:
            res = await master.read(addr, nbytes)
            return (SimPcie.OK if int(res.resp) == 0 else SimPcie.SLVERR), bytes(res.data)
        res = await master.write(addr, data)
        return (SimPcie.OK if int(res.resp) == 0 else SimPcie.SLVERR), b""


def _recv_exact(conn, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


@cocotb.test(timeout_time=None)
async def serve(dut):
    """Serve one client; passes when the client leaves or the deadline ends the session."""
    srv = Server(dut)
    await srv.reset()
    lsock = srv.listen()
    lsock.settimeout(srv.accept_s)
    try:
        conn, peer = lsock.accept()
    except socket.timeout:
        srv.log.warning("no client within %.0f s; exiting", srv.accept_s)
        return
    finally:
        lsock.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    srv.log.info("client %s:%d on %s", *peer, srv.link)
    t0 = time.monotonic()
    try:
        if srv.link == "uart":
            await srv.serve_uart_bridge(conn)
        elif srv.link == "uart-bytes":
            await srv.serve_uart_bypass(conn)
        elif srv.link == "uart-phy":
            await srv.serve_uart_phy(conn)
        elif srv.link == "pcie":
            await srv.serve_pcie(conn)
        else:
            raise ValueError(f"PIM_SIM_LINK={srv.link!r}: use uart, uart-bytes, uart-phy or pcie")
    except (ConnectionError, BrokenPipeError) as e:
        srv.log.info("client connection ended: %s", e)
    finally:
        conn.close()
    if srv.expired():
        srv.log.warning("deadline reached; exiting")
    wall = time.monotonic() - t0
    srv.log.info("session %.1f s: %s", wall, srv.stats)
