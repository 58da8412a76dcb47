"""The sim server's cocotb side: the simulated device serving one TCP client on 127.0.0.1.

Links (PIM_SIM_LINK):
- `uart`: raw UART link bytes for pyserial's `socket://`, through the PHY bypass and the device's SimByteBridge
  (64 bytes per Python wake-up; the link itself still takes one byte per cycle).
- `uart-bytes`: the same through the plain byte bypass (`ub_in`/`ub_out`), Python watching every cycle.
- `uart-phy`: the same bytes through the 8N1 PHY on `uart_rx`/`uart_tx`, the client speaking RFC 2217 (pyserial's
  `rfc2217://`) so that the rate and breaks it sets reach the simulated adapter (tb/sim_server/line.py); the
  device starts at PIM_SIM_BAUD_DIV cycles per bit (0: its reset divisor), the client at the matching rate
  (`baud` in the ready file).
- `pcie`: transport.sim_pcie.SimPcie requests: registers by the cocotbext-axi master on the AXI4-Lite (BAR)
  port, DMA requests by the device's SimDmaFeeder on the AXI4 port (whole beats at full rate, Python woken once
  per chunk; the words before the first and after the last beat boundary by the cocotbext-axi AXI4 master).
  PIM_SIM_PCIE_DMA=axi serves all of a DMA request with the cocotbext-axi master instead (Python on every beat).

Python is not woken every cycle while idle: with nothing to feed or collect, the server either blocks in
select() (simulation paused, the device is idle) or lets the simulator run a long Timer while the device is
busy. The session ends when the client disconnects (noticed in every state, a bus transaction that never
completes included), when it stays idle for PIM_SIM_IDLE_S (0: never), when no client comes within
PIM_SIM_ACCEPT_S, or at the PIM_SIM_DEADLINE_S wall-clock deadline.

Clock, reset, idle pins, the link selection, the AXI masters and the bridge and bypass ports are the device
testbenches' own (tb/support/device_harness.py); this module adds the socket and the session's life cycle.

Idle means the client sent nothing and is owed nothing: the idle clock restarts on every byte from the client
and every byte to it, and stands still while the server works on its input (a PCIe request outstanding, UART
bytes not yet taken by the link, the link inside a frame), since the client is then waiting for an answer.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import time
from asyncio import CancelledError

import cocotb
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer

from pimhil.contract import CSR_BASE, UART_RESET_BAUD, Reg, preset
from pimhil.transport.sim_pcie import SimPcie
from tb.support.device_harness import CLK_NS, DeviceHarness

# Which of the device's link inputs (tb/support/device_harness.py LINKS) each server link feeds; PCIe leaves
# the UART link on its idle pins.
LINK_INPUT = {"uart": "bridge", "uart-bytes": "bypass", "uart-phy": "phy", "pcie": "phy"}
BUSY_POLL_CYCLES = 1024      # while the device works and the client is quiet, look at the socket this often
IDLE_BLOCK_S = 0.25          # while everything is idle, block in select() this long before advancing time
IDLE_ADVANCE_CYCLES = 256    # ...and then let this much simulated time pass (inter-byte timeouts still fire)
IDLE_DEFAULT_S = 30.0        # see __main__.py's --idle
PHY_IDLE_ADVANCE_CYCLES = 1 << 16   # uart-phy: simulated time per quiet IDLE_BLOCK_S (the line is idle)


class SessionEnd(Exception):
    """Ends the session: the client left or went idle, or the deadline passed. warn: worth a warning."""

    def __init__(self, reason: str, *, warn: bool = False):
        super().__init__(reason)
        self.warn = warn


class Server:
    """One client's session with the simulated device; configured by the PIM_* environment variables."""

    def __init__(self, dut):
        self.dut = dut
        self.p = preset(os.environ.get("PIM_PRESET", "sim"))
        self.link = os.environ.get("PIM_SIM_LINK", "uart")
        self.pcie_dma = os.environ.get("PIM_SIM_PCIE_DMA", "feeder")
        if self.pcie_dma not in ("feeder", "axi"):
            raise ValueError(f"PIM_SIM_PCIE_DMA={self.pcie_dma!r}: use feeder or axi")
        self.deadline = time.monotonic() + float(os.environ.get("PIM_SIM_DEADLINE_S", "3600"))
        self.accept_s = float(os.environ.get("PIM_SIM_ACCEPT_S", "120"))
        self.idle_s = float(os.environ.get("PIM_SIM_IDLE_S", str(IDLE_DEFAULT_S)))
        self.last_active = time.monotonic()
        self._session = None         # the task serving the client (serve_link)
        self._outstanding = None     # (conn, inbuf) while the client waits for a bus transaction
        self._watchdog = None        # the task that watches the client meanwhile
        self._end: SessionEnd | None = None   # why the watchdog cancelled the session
        self.log = dut._log
        self.stats = {"bytes_in": 0, "bytes_out": 0, "requests": 0}
        self.debug = os.environ.get("PIM_SIM_DEBUG") == "1"
        # AXI masters only on first use: a UART session then runs no AXI tasks. An unknown link is refused
        # once the client is there (serve_link), so it gets the pins' idle input meanwhile.
        self.h = DeviceHarness(dut, link=LINK_INPUT.get(self.link, "phy"), masters=False)

    async def reset(self):
        await self.h.reset()

    def listen(self) -> socket.socket:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(os.environ.get("PIM_SIM_PORT", "0"))))
        srv.listen(1)
        port = srv.getsockname()[1]
        info = {"link": self.link, "host": "127.0.0.1", "port": port, "preset": os.environ.get("PIM_PRESET", "sim"),
                "pid": os.getpid()}
        if self.link == "uart-phy":
            info["baud"] = start_baud(self.p, int(os.environ.get("PIM_SIM_BAUD_DIV", "16")))
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

    # ---- session clock ---------------------------------------------------------------------------------
    def _engaged(self):
        """The client is talking, being answered, or waiting for an answer: restart the idle clock."""
        self.last_active = time.monotonic()

    def _check_time(self):
        """End the session at the deadline, or once the client has been idle for idle_s."""
        now = time.monotonic()
        if now > self.deadline:
            raise SessionEnd("deadline reached", warn=True)
        if self.idle_s > 0 and now - self.last_active > self.idle_s:
            raise SessionEnd(f"client idle for {now - self.last_active:.1f} s (limit {self.idle_s:g} s: nothing "
                             f"sent, no answer owed)", warn=True)

    def _io_limit(self) -> float:
        """How long a blocking socket call may wait on the client: the idle limit, within the deadline."""
        left = self.deadline - time.monotonic()
        if self.idle_s > 0:
            left = min(left, self.idle_s)
        return max(left, 0.01)

    # ---- UART: through the SimByteBridge ---------------------------------------------------------------
    async def serve_uart_bridge(self, conn: socket.socket):
        """Once per bridge width of cycles: drain the output buffer, refill the input buffer, talk to the
        socket. With no bytes moving and the device idle, block on the socket instead."""
        dut = self.dut
        port = self.h.bridge_port
        width = port.width
        inbuf = bytearray()
        quiet = 0                    # wake-ups in a row with nothing moving
        conn.setblocking(False)
        while True:
            self._check_time()
            await ReadOnly()
            out, empty = port.sample()
            busy = bool(int(dut.busy.value))
            link_active = bool(int(dut.link_active.value))
            await RisingEdge(dut.clk)
            chunk = b""
            if empty and inbuf:
                chunk, inbuf = bytes(inbuf[:width]), inbuf[width:]
            port.drive(take=len(out), chunk=chunk)
            await RisingEdge(dut.clk)
            port.release()
            if out:
                self._send(conn, bytearray(out))
            inbuf += self._poll_client(conn)
            moving = bool(out or chunk or inbuf or not empty or link_active)
            if moving:
                self._engaged()
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
        port = self.h.bypass_port
        inbuf = bytearray()
        outbuf = bytearray()
        pos = 0
        out_seen = False            # an answer byte was valid in the last watched cycle: more may follow
        watched = 0                 # watched cycles since the client was last looked at
        conn.setblocking(False)
        while True:
            if pos >= len(inbuf) or watched >= BUSY_POLL_CYCLES:
                # Between inputs, and also every so many watched cycles: a long input (or a link that stops
                # taking it) must not keep the server from noticing that the client left.
                watched = 0
                if pos >= len(inbuf):
                    inbuf.clear()
                    pos = 0
                if pos < len(inbuf) or out_seen or int(dut.link_active.value):
                    self._engaged()
                self._check_time()
                inbuf += self._poll_client(conn)
            if pos < len(inbuf) or out_seen:
                # Watched cycle: feed one byte if the link takes it, collect the answer byte if there is one.
                watched += 1
                port.offer(inbuf[pos] if pos < len(inbuf) else None)
                await ReadOnly()
                took, answer = port.sample()
                out_seen = answer is not None
                if out_seen:
                    outbuf.append(answer)
                await RisingEdge(dut.clk)
                pos += int(took)
                if len(outbuf) >= 4096:
                    self._send(conn, outbuf)
                continue
            # Unwatched: nothing to feed and no answer flowing. Hand over what was collected, then let the
            # simulator run until an answer starts, the client speaks, or time passes.
            port.park()
            if outbuf:
                self._send(conn, outbuf)
            if port.answer_waiting:
                out_seen = True
            elif int(dut.busy.value) or int(dut.link_active.value):
                await First(port.answer_starts(), Timer(BUSY_POLL_CYCLES * CLK_NS, "ns"))
            else:
                # The link may still be working on a frame (answers come in bursts with gaps): give it
                # simulated time first, and block on the socket only once nothing came out of it.
                timer = Timer(IDLE_ADVANCE_CYCLES * CLK_NS, "ns")
                if await First(port.answer_starts(), timer) is timer:
                    select.select([conn], [], [], IDLE_BLOCK_S)
            # Timers end at arbitrary points of a timestep: drive the streams only right after a clock edge.
            await RisingEdge(dut.clk)

    def _poll_client(self, conn) -> bytes:
        """Bytes the client has sent (b"" if none yet); SessionEnd once it has left."""
        r, _, _ = select.select([conn], [], [], 0)
        if not r:
            return b""
        try:
            data = conn.recv(1 << 16)
        except BlockingIOError:
            return b""
        except ConnectionError as e:
            raise SessionEnd(f"client left ({e})") from e
        if data == b"":
            raise SessionEnd("client left")
        self._engaged()
        self.stats["bytes_in"] += len(data)
        if self.debug:
            self.log.info("in %d bytes: %s", len(data), data[:16].hex())
        return data

    def _send(self, conn, outbuf: bytearray):
        """Send all of outbuf (then cleared). A client that takes none of it for the idle limit is idle."""
        if self.debug:
            self.log.info("out %d bytes: %s", len(outbuf), bytes(outbuf[:16]).hex())
        mode = conn.gettimeout()
        conn.settimeout(self._io_limit())
        try:
            conn.sendall(outbuf)
        except TimeoutError as e:
            raise SessionEnd(f"client took no bytes for {conn.gettimeout():.1f} s", warn=True) from e
        finally:
            conn.settimeout(mode)
        self._engaged()
        self.stats["bytes_out"] += len(outbuf)
        outbuf.clear()

    async def _watch(self, conn, inbuf: bytearray, coro):
        """Await coro (a bus transaction) while still watching the client, who waits for its outcome: what it
        sends meanwhile goes to inbuf; its leaving or the deadline ends the session, the transaction
        abandoned. A transaction on a stalled device never completes, and nothing else would look."""
        if self._watchdog is None:
            self._watchdog = cocotb.start_soon(self._watchdog_loop())
        self._outstanding = (conn, inbuf)
        try:
            return await coro
        finally:
            self._outstanding = None
            self._engaged()

    async def _watchdog_loop(self):
        # One long-lived task looks at the client while a transaction is outstanding and cancels the whole
        # session task to end it: racing each request against a timer instead (First, or a task per request)
        # would add tasks and trigger callbacks to every request, most of which take a few cycles.
        while True:
            await Timer(BUSY_POLL_CYCLES * CLK_NS, "ns")
            if self._outstanding is None:
                continue
            conn, inbuf = self._outstanding
            try:
                if self.expired():
                    raise SessionEnd("deadline reached with a bus transaction outstanding", warn=True)
                inbuf += self._poll_client(conn)
            except SessionEnd as e:
                self._end = e
                self._session.cancel()
                return

    async def session(self, conn: socket.socket):
        """Serve the connected client until the session ends; SessionEnd (or a ConnectionError) says why.
        The link is served in a task of its own, which the watchdog can cancel wherever it waits."""
        self._engaged()
        self._session = cocotb.start_soon(self.serve_link(conn))
        try:
            await self._session
        except CancelledError:
            if self._end is None:
                raise
            raise self._end from None
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()

    async def serve_link(self, conn: socket.socket):
        """The session on this server's link; ends by SessionEnd (or a connection error)."""
        if self.link == "uart":
            await self.serve_uart_bridge(conn)
        elif self.link == "uart-bytes":
            await self.serve_uart_bypass(conn)
        elif self.link == "uart-phy":
            await self.serve_uart_phy(conn)
        elif self.link == "pcie":
            await self.serve_pcie(conn)
        else:
            raise ValueError(f"PIM_SIM_LINK={self.link!r}: use uart, uart-bytes, uart-phy or pcie")

    # ---- UART: through the PHY -------------------------------------------------------------------------
    async def serve_uart_phy(self, conn: socket.socket):
        """The client speaks RFC 2217 (pyserial's rfc2217://): its data bytes go through a simulated adapter
        (tb/sim_server/line.py) onto the PHY's RX pin at the rate it sets, TX pin bytes come back, and its
        breaks hold the line low. The device starts at PIM_SIM_BAUD_DIV (written over AXI4-Lite; 0 keeps the
        reset divisor)."""
        from serial.rfc2217 import PortManager

        from tb.sim_server.line import HostLine, RFC2217Port

        dut = self.dut
        div = int(os.environ.get("PIM_SIM_BAUD_DIV", "16"))
        conn.setblocking(False)
        early = bytearray()
        if div:
            await self._watch(conn, early,
                              self.h.axil.write(CSR_BASE + Reg.UART_BAUD_DIV, div.to_bytes(4, "little")))
        line = HostLine(dut, clk_hz=self.p.clk_hz, clk_ns=CLK_NS, baud=start_baud(self.p, div),
                        max_baud=float(os.environ.get("PIM_SIM_LINE_MAX_BAUD", "0")))
        port = RFC2217Port(line, lambda data: self._send(conn, bytearray(data)))
        pm = PortManager(port, port)
        if early:
            line.write(b"".join(pm.filter(bytes(early))))
        while True:
            self._check_time()
            data = self._poll_client(conn)
            if data:
                payload = b"".join(pm.filter(data))
                if payload:
                    line.write(payload)
            out = line.read()
            if out:
                self._send(conn, bytearray(b"".join(pm.escape(out))))
            link_active = int(dut.link_active.value)
            if link_active or not line.idle:
                self._engaged()
            idle = not (data or out or int(dut.busy.value) or link_active)
            if idle and line.idle:
                r, _, _ = select.select([conn], [], [], IDLE_BLOCK_S)
                if r:
                    continue
                # Nobody talks: let device time pass in bigger steps (the rate probation runs on it).
                await Timer(PHY_IDLE_ADVANCE_CYCLES * CLK_NS, "ns")
                continue
            await Timer(16 * line.byte_ps, "ps")

    # ---- PCIe: AXI masters -----------------------------------------------------------------------------
    async def serve_pcie(self, conn: socket.socket):
        """Requests are read into a buffer as they come, so that the client stays watched while one is served
        (bytes it pipelines are kept; its leaving is seen at once)."""
        dut = self.dut
        axil, axi = self.h.axil, self.h.axi
        inbuf = bytearray()
        conn.setblocking(False)
        while True:
            self._check_time()
            req = _take_request(inbuf)
            if req is None:
                data = self._poll_client(conn)
                if data:
                    inbuf += data
                elif inbuf:
                    # The rest of a request is on its way: wait for it; the device can wait too.
                    select.select([conn], [], [], IDLE_BLOCK_S)
                elif int(dut.busy.value):
                    await Timer(BUSY_POLL_CYCLES * CLK_NS, "ns")
                else:
                    r, _, _ = select.select([conn], [], [], IDLE_BLOCK_S)
                    if not r:
                        await Timer(IDLE_ADVANCE_CYCLES * CLK_NS, "ns")
                continue
            self.stats["requests"] += 1
            status, payload = await self._watch(conn, inbuf, self._pcie_request(axil, axi, *req))
            self._send(conn, bytearray(struct.pack(SimPcie.RESP, SimPcie.RESP_MAGIC, status, 0, len(payload))
                                       + payload))

    async def _pcie_request(self, axil, axi, magic, op, chan, addr, nbytes, data):
        bad = (magic != SimPcie.REQ_MAGIC or op not in (SimPcie.OP_READ, SimPcie.OP_WRITE)
               or chan not in (SimPcie.CHAN_USER, SimPcie.CHAN_DMA) or nbytes == 0 or nbytes % 4 or addr % 4
               or nbytes > SimPcie.MAX_BYTES or (chan == SimPcie.CHAN_USER and nbytes != 4))
        if bad:
            return SimPcie.BAD_REQUEST, b""
        if chan == SimPcie.CHAN_DMA and self.pcie_dma == "feeder":
            if op == SimPcie.OP_READ:
                data, resp = await self.h.dma.read(addr, nbytes)
                return (SimPcie.OK if resp == 0 else SimPcie.SLVERR), data
            resp = await self.h.dma.write(addr, data)
            return (SimPcie.OK if resp == 0 else SimPcie.SLVERR), b""
        master = axil if chan == SimPcie.CHAN_USER else axi
        if op == SimPcie.OP_READ:
            res = await master.read(addr, nbytes)
            return (SimPcie.OK if int(res.resp) == 0 else SimPcie.SLVERR), bytes(res.data)
        res = await master.write(addr, data)
        return (SimPcie.OK if int(res.resp) == 0 else SimPcie.SLVERR), b""


def start_baud(p, div: int) -> int:
    """The host rate (bit/s) that matches the device's first divisor: `div`, or the reset rate for 0."""
    return round(p.clk_hz / div) if div else UART_RESET_BAUD


def _take_request(buf: bytearray):
    """The first whole SimPcie request in buf, removed from it: (magic, op, chan, addr, nbytes, data); None
    while it is incomplete. Only a well-formed write carries data, as the client sends it."""
    hsize = struct.calcsize(SimPcie.REQ)
    if len(buf) < hsize:
        return None
    magic, op, chan, addr, nbytes = struct.unpack_from(SimPcie.REQ, buf)
    body = nbytes if op == SimPcie.OP_WRITE and magic == SimPcie.REQ_MAGIC and nbytes <= SimPcie.MAX_BYTES else 0
    if len(buf) < hsize + body:
        return None
    data = bytes(buf[hsize:hsize + body])
    del buf[:hsize + body]
    return magic, op, chan, addr, nbytes, data


@cocotb.test(timeout_time=None)
async def serve(dut):
    """Serve one client; passes however the session ends (client left or idle, deadline)."""
    srv = Server(dut)
    await srv.reset()
    lsock = srv.listen()
    wait_s = max(0.01, min(srv.accept_s, srv.deadline - time.monotonic()))   # 0 would mean non-blocking
    lsock.settimeout(wait_s)
    try:
        conn, peer = lsock.accept()
    except TimeoutError:
        srv.log.warning("no client within %.0f s; exiting", wait_s)
        return
    finally:
        lsock.close()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    srv.log.info("client %s:%d on %s (idle limit %s)", *peer, srv.link,
                 f"{srv.idle_s:g} s" if srv.idle_s > 0 else "none")
    t0 = time.monotonic()
    try:
        await srv.session(conn)
    except SessionEnd as e:
        (srv.log.warning if e.warn else srv.log.info)("%s; exiting", e)
    except ConnectionError as e:
        srv.log.info("client connection ended: %s; exiting", e)
    finally:
        conn.close()
    wall = time.monotonic() - t0
    srv.log.info("session %.1f s: %s", wall, srv.stats)
