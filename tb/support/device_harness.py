"""The harness around the simulated device (rtl/pim_device_<preset>.v, hw/sim_device.py's SimDevice) that the
device testbenches (tb/device), the driver testbench (tb/driver) and the sim server (tb/sim_server) share.

`DeviceHarness(dut)` starts the clock, puts every input pin at its idle value and selects the UART link's
input; `await reset()` resets the device. What drives the device then:

- `axil`, `axi`: cocotbext-axi masters on the AXI4-Lite (BAR) and AXI4 (DMA) ports, made on first use so that
  a session that never touches the AXI ports runs no AXI tasks; `axil_read` / `axil_write` for one register.
- `dma`: bulk transfers on the AXI4 port through the device's SimDmaFeeder (whole beats at full rate, a chunk
  of them per Python wake-up), the unaligned words at either end through `axi`.
- Link feeders, chosen with `select_link`:
  `bypass`  the link's byte streams `ub_in`/`ub_out`, skipping the PHY: `BypassFeeder` (stream models, for
            testbenches) or `BypassPort` (cycle by cycle, for a caller that watches every cycle itself);
  `bridge`  the SimByteBridge (`sb_*`), up to its width in bytes per handshake: `BridgeFeeder` (a background
            task, for testbenches) or `BridgePort` (one handshake at a time);
  `phy`     the 8N1 PHY on `uart_rx`/`uart_tx`: `phy_peers(div)` gives cocotbext-uart peers at that divisor.
  The feeders share `send` / `recv_byte` / `recv_response`, so a frame-level check runs over either.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from functools import cached_property

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, First, ReadOnly, RisingEdge, Timer, ValueChange, with_timeout

from pimhil.contract import STATUS_BUSY, STATUS_DONE, Frame, Reg, preset
from pimhil.frame import Response, decode_response, response_length
from tb.support import funcov
from tb.support.stream import StreamSink, StreamSource

CLK_NS = 10                 # 100 MHz: the simulated clock every device testbench and the sim server use

# link name -> (uart_bypass, sb_select): which of hw/sim_device.py's three link inputs the UART link reads.
LINKS = {"bypass": (1, 0), "bridge": (1, 1), "phy": (0, 0)}


def preset_from_env(default: str | None = None):
    """The device preset the runner asked for (PIM_PRESET); `default` when unset, an error if that is None."""
    name = os.environ.get("PIM_PRESET", default)
    if name is None:
        raise KeyError("PIM_PRESET is not set: run the testbench through tb/support/runner.py")
    return preset(name)


class DeviceHarness:
    """Clock, reset, idle pins and the link selection of one simulated device.

    link: the link's input, a key of LINKS. masters: make the AXI masters now (a testbench that uses them
    anyway); otherwise they appear on first use of `axil` / `axi`.
    """

    def __init__(self, dut, *, link: str = "bypass", masters: bool = True):
        self.dut = dut
        self.clk = dut.clk
        Clock(dut.clk, CLK_NS, unit="ns").start()
        self.idle_pins()
        self.select_link(link)
        if masters:
            _ = self.axil, self.axi

    def idle_pins(self) -> None:
        """Every input the harness does not otherwise drive, at the value that asks nothing of the device."""
        dut = self.dut
        dut.uart_rx.value = 1            # a low RX line is a start bit to the PHY
        dut.ub_in__valid.value = 0
        dut.ub_out__ready.value = 0      # the bypass holds its answer until someone is there to take it
        dut.sb_in_load.value = 0
        dut.sb_out_take.value = 0
        dut.df_select.value = 0          # the AXI4 pins (cocotbext-axi) drive the DMA port
        dut.df_cmd_start.value = 0
        dut.df_in_load.value = 0
        dut.df_out_take.value = 0

    def select_link(self, link: str) -> None:
        """Feed the UART link from `link` (bypass, bridge or phy); the other two are ignored by the device."""
        if link not in LINKS:
            raise ValueError(f"link {link!r}: use one of {', '.join(LINKS)}")
        self.link = link
        self.dut.uart_bypass.value, self.dut.sb_select.value = LINKS[link]

    async def reset(self, cycles: int = 3) -> None:
        self.dut.rst.value = 1
        await ClockCycles(self.clk, cycles)
        self.dut.rst.value = 0
        await ClockCycles(self.clk, 2)

    # ---- AXI ports -------------------------------------------------------------------------------------
    @cached_property
    def axil(self):
        """AXI4-Lite master on the BAR port (`axil_*`)."""
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster

        master = AxiLiteMaster(AxiLiteBus.from_prefix(self.dut, "axil_"), self.clk, self.dut.rst)
        return funcov.watch_axi(master, self)

    @cached_property
    def axi(self):
        """AXI4 master on the DMA port (`axi_*`), bursts included."""
        from cocotbext.axi import AxiBus, AxiMaster

        return funcov.watch_axi(AxiMaster(AxiBus.from_prefix(self.dut, "axi_"), self.clk, self.dut.rst), self)

    @cached_property
    def dma(self) -> DmaFeeder:
        """Bulk transfers through the SimDmaFeeder (edges through `axi`)."""
        return DmaFeeder(self.dut, self.clk, lambda: self.axi, owner=self)

    async def axil_read(self, addr: int) -> tuple[int, int]:
        """One 32-bit register read: (value, AXI resp)."""
        r = await self.axil.read(addr, 4)
        return int.from_bytes(r.data, "little"), int(r.resp)

    async def axil_write(self, addr: int, value: int) -> int:
        """One 32-bit register write: the AXI resp."""
        r = await self.axil.write(addr, int(value).to_bytes(4, "little"))
        return int(r.resp)

    async def wait_idle(self, timeout_cycles: int = 500000) -> None:
        """Poll STATUS over AXI4-Lite until the device is idle; it must then also say done."""
        for _ in range(timeout_cycles // 50):
            v, _ = await self.axil_read(Reg.STATUS)
            if not v & STATUS_BUSY:
                assert v & STATUS_DONE, f"STATUS {v:#x}: idle but not done"
                return
            await ClockCycles(self.clk, 40)
        raise TimeoutError("device did not go idle")

    # ---- link feeders ----------------------------------------------------------------------------------
    def bypass_feeder(self) -> BypassFeeder:
        """Stream models on the byte bypass (select_link("bypass") for the device to listen)."""
        return BypassFeeder(self.dut, self.clk)

    def bridge_feeder(self) -> BridgeFeeder:
        """A background task on the SimByteBridge (select_link("bridge") for the device to listen)."""
        return BridgeFeeder(self.bridge_port, self.clk, link_active=self.dut.link_active)

    @cached_property
    def bypass_port(self) -> BypassPort:
        return BypassPort(self.dut)

    @cached_property
    def bridge_port(self) -> BridgePort:
        return BridgePort(self.dut)

    def phy_peers(self, div: int):
        """cocotbext-uart (source on uart_rx, sink on uart_tx) at `div` clock cycles per bit; the device's
        UART_BAUD_DIV must be set to the same divisor (select_link("phy") for it to listen)."""
        from cocotbext.uart import UartSink, UartSource

        baud = 1e9 / (CLK_NS * div)
        return (UartSource(self.dut.uart_rx, baud=baud, bits=8, stop_bits=1),
                UartSink(self.dut.uart_tx, baud=baud, bits=8, stop_bits=1))


class DmaFeeder:
    """The device's SimDmaFeeder (hw/sim_dma_feeder.py): `write` and `read` move the whole AXI4 beats of a
    transfer through it, a chunk per handshake, and the words before the first beat boundary and after the
    last one through the cocotbext-axi master (`axi_master()`). Both return the AXI response (0 OKAY, 2
    SLVERR if any part failed). Start them right after a clock edge, with no other AXI4 transfer running."""

    def __init__(self, dut, clk, axi_master, *, owner=None):
        self.dut, self.clk, self.axi_master, self.owner = dut, clk, axi_master, owner
        self.beat = len(dut.axi__wdata) // 8
        self.chunk = len(dut.df_in_data) // 8

    def _split(self, addr: int, n: int) -> tuple[int, int]:
        """(head bytes before the first beat boundary, whole-beat bytes after them)."""
        head = min((-addr) % self.beat, n)
        return head, (n - head) // self.beat * self.beat

    async def write(self, addr: int, data: bytes) -> int:
        head, mid = self._split(addr, len(data))
        resp = 0
        if head:
            resp |= int((await self.axi_master().write(addr, data[:head])).resp)
        if mid:
            resp |= await self._transfer(addr + head, mid, data[head:head + mid])
        if head + mid < len(data):
            resp |= int((await self.axi_master().write(addr + head + mid, data[head + mid:])).resp)
        return resp

    async def read(self, addr: int, n: int) -> tuple[bytes, int]:
        head, mid = self._split(addr, n)
        out, resp = bytearray(), 0
        for a, k, direct in ((addr, head, True), (addr + head, mid, False), (addr + head + mid, n - head - mid, True)):
            if not k:
                continue
            if direct:
                r = await self.axi_master().read(a, k)
                out += r.data
                resp |= int(r.resp)
            else:
                got = bytearray()
                resp |= await self._transfer(a, k, None, got)
                out += got
        return bytes(out), resp

    async def _transfer(self, addr: int, n: int, data: bytes | None, out: bytearray | None = None) -> int:
        dut, clk = self.dut, self.clk
        await RisingEdge(clk)
        dut.df_select.value = 1
        dut.df_cmd_addr.value = addr
        dut.df_cmd_beats.value = n // self.beat
        dut.df_cmd_write.value = int(data is not None)
        dut.df_cmd_start.value = 1
        await RisingEdge(clk)
        dut.df_cmd_start.value = 0
        pos = 0
        while pos < n:
            await ReadOnly()
            if data is not None:
                if int(dut.df_in_room.value):
                    await RisingEdge(clk)
                else:
                    await RisingEdge(dut.df_in_room)       # registered: this is right after an edge
                piece = data[pos:pos + self.chunk]
                dut.df_in_data.value = int.from_bytes(piece.ljust(self.chunk, b"\0"), "little")
                dut.df_in_load.value = 1
                await RisingEdge(clk)
                dut.df_in_load.value = 0
                pos += len(piece)
            else:
                k = int(dut.df_out_beats.value)
                if not k:
                    await ValueChange(dut.df_out_beats)     # registered: this is right after an edge
                    continue
                out += int(dut.df_out_data.value).to_bytes(self.chunk, "little")[:k * self.beat]
                pos += k * self.beat
                await RisingEdge(clk)
                dut.df_out_take.value = 1
                await RisingEdge(clk)
                dut.df_out_take.value = 0
        await ReadOnly()
        if not int(dut.df_idle.value):
            await RisingEdge(dut.df_idle)
        else:
            await RisingEdge(clk)
        err = int(dut.df_err.value)
        dut.df_select.value = 0
        if not err:        # functional coverage samples what the feeder moved, as it does the AXI masters'
            moved = data if data is not None else bytes(out[-n:])
            funcov.bus(self.owner, addr, struct.unpack(f"<{n // 4}I", moved), write=data is not None)
        return 2 if err else 0


class BypassPort:
    """The byte bypass one cycle at a time, for a caller that decides each cycle whether to watch the next
    (the sim server, which must look at its socket between cycles). Drive right after a clock edge."""

    def __init__(self, dut):
        self.dut = dut
        self._offered = False

    def offer(self, byte: int | None) -> None:
        """This cycle: present `byte` to the link (None: nothing) and take an answer byte if there is one."""
        dut = self.dut
        dut.ub_out__ready.value = 1
        if byte is not None:
            dut.ub_in__payload.value = byte
        self._offered = byte is not None
        dut.ub_in__valid.value = int(self._offered)

    def sample(self) -> tuple[bool, int | None]:
        """In ReadOnly after offer(): (the link took the offered byte, the answer byte taken or None)."""
        dut = self.dut
        took = self._offered and bool(int(dut.ub_in__ready.value))
        out = int(dut.ub_out__payload.value) if int(dut.ub_out__valid.value) else None
        funcov.host_bytes(self, [int(dut.ub_in__payload.value)] if took else [])
        funcov.device_bytes(self, [] if out is None else [out])
        return took, out

    def park(self) -> None:
        """Offer nothing and take nothing: the link holds an answer byte until the next offer()."""
        self._offered = False
        self.dut.ub_in__valid.value = 0
        self.dut.ub_out__ready.value = 0

    @property
    def answer_waiting(self) -> bool:
        return bool(int(self.dut.ub_out__valid.value))

    def answer_starts(self):
        """Trigger: an answer byte appears while parked."""
        return RisingEdge(self.dut.ub_out__valid)


class BridgePort:
    """One SimByteBridge handshake at a time (hw/sim_byte_bridge.py): sample in ReadOnly, drive after the next
    edge, release one edge later, because a load or a take shows in the bridge's outputs a cycle after it."""

    def __init__(self, dut):
        self.dut = dut
        self.width = len(dut.sb_in_data) // 8

    def sample(self) -> tuple[bytes, bool]:
        """In ReadOnly: (bytes in the output buffer, input buffer empty)."""
        dut = self.dut
        k = int(dut.sb_out_count.value)
        out = int(dut.sb_out_data.value).to_bytes(self.width, "little")[:k] if k else b""
        self._sampled = out                         # functional coverage: the bytes drive(take=) consumes
        return out, bool(int(dut.sb_in_empty.value))

    def drive(self, *, take: int, chunk: bytes = b"") -> None:
        """Right after an edge: drop `take` output bytes; load `chunk` (only when sample() saw the input empty)."""
        dut = self.dut
        funcov.device_bytes(self, getattr(self, "_sampled", b"")[:take])
        funcov.host_bytes(self, chunk)
        dut.sb_out_take.value = take
        if chunk:
            dut.sb_in_data.value = int.from_bytes(chunk, "little")
            dut.sb_in_count.value = len(chunk)
            dut.sb_in_load.value = 1

    def release(self) -> None:
        """One edge after drive(): end the load and the take."""
        self.dut.sb_out_take.value = 0
        self.dut.sb_in_load.value = 0


class _Feeder:
    """Frame-level reading shared by the testbench feeders: subclasses give send(), recv_byte(), `sent`."""

    sent: int

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def recv_byte(self) -> int:
        raise NotImplementedError

    def clear(self) -> None:
        """Forget answer bytes received so far."""
        raise NotImplementedError

    async def recv_response(self, timeout_us: float = 2000) -> Response:
        """The next whole response frame, decoded; SimTimeoutError if it is not complete within timeout_us."""
        async def _recv():
            head = bytes([await self.recv_byte() for _ in range(Frame.RESP_HEADER)])
            rest = bytes([await self.recv_byte() for _ in range(response_length(head) - Frame.RESP_HEADER)])
            return decode_response(head + rest)
        return await with_timeout(_recv(), timeout_us, "us")


class BypassFeeder(_Feeder):
    """Bytes to `ub_in` and from `ub_out` through tb.support.stream models; the sink is always ready, so every
    answer byte is collected. `sent` counts bytes the link has taken."""

    def __init__(self, dut, clk):
        self.source = StreamSource(dut, "ub_in", clk)
        self.sink = StreamSink(dut, "ub_out", clk)

    @property
    def sent(self) -> int:
        return self.source.sent

    def send(self, data: bytes) -> None:
        funcov.host_bytes(self, data)
        for b in data:
            self.source.send_nowait(b)

    async def recv_byte(self) -> int:
        b = await self.sink.recv()
        funcov.device_bytes(self, [b])
        return b

    def clear(self) -> None:
        self.sink.items.clear()


class BridgeFeeder(_Feeder):
    """Bytes through the SimByteBridge by a background task: one handshake every two cycles while bytes move,
    one look per bridge width of cycles while nothing does. `sent` counts bytes loaded into the bridge."""

    def __init__(self, port: BridgePort, clk, *, link_active):
        self.port = port
        self.clk = clk
        self.link_active = link_active
        self.sent = 0
        self._in = bytearray()
        self._out: deque[int] = deque()
        self._wake = Event()
        self._got = Event()
        self._task = cocotb.start_soon(self._run())

    def send(self, data: bytes) -> None:
        self._in += data
        self._wake.set()

    async def recv_byte(self) -> int:
        while not self._out:
            self._got.clear()
            await self._got.wait()
        return self._out.popleft()

    def clear(self) -> None:
        self._out.clear()

    async def _run(self):
        port, width = self.port, self.port.width
        await RisingEdge(self.clk)
        while True:
            await ReadOnly()
            out, empty = port.sample()
            active = bool(int(self.link_active.value))
            await RisingEdge(self.clk)
            chunk = b""
            if empty and self._in:
                chunk, self._in = bytes(self._in[:width]), self._in[width:]
            port.drive(take=len(out), chunk=chunk)
            await RisingEdge(self.clk)
            port.release()
            self.sent += len(chunk)
            if out:
                self._out.extend(out)
                self._got.set()
            if not (out or chunk or self._in or not empty or active):
                # Nothing in flight: an answer needs new input, so sleep until send() or a bridge width of
                # cycles (the output buffer cannot fill up within that).
                self._wake.clear()
                await First(self._wake.wait(), Timer(width * CLK_NS, "ns"))
                await RisingEdge(self.clk)        # drive only right after an edge
