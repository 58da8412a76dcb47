"""hw/uart_link.py UARTLink: it always gets back to hunting for a sync byte, and a frame whose CRC does not
match never reaches the bus.

Environment: any byte stream on `rx` (valid and payload free in every cycle), any framing/overrun pulses;
`div` and `bypass` are constants (a CSR write of UART_BAUD_DIV mid-frame only moves the timeout); the bus
answers a presented request within BUS_WAIT cycles and the transmitter takes a byte within TX_WAIT cycles
(the PHY takes one per bit time; the hub's bank windows answer within a bounded time). The link is built
for the smallest legal DeviceParams (its parameters only place the address windows).
"""

import binascii

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Cat, Const, Module, Mux, Signal

from hw.uart_link import UARTLink
from pimhil.contract import CSR_BASE, Frame, FrameCmd, Reg

from ._common import MutableHarness, Probe, Proof, Properties, SMALLEST

BUS_WAIT = 2
TX_WAIT = 2
BITS_PER_BYTE = 10                    # 8N1 on the wire: start, 8 data, stop (the link's timeout counts them)
TX_BYTE = TX_WAIT + 1                 # most cycles one response byte takes
EXEC_WORD = BUS_WAIT + 2              # most cycles one word's bus access takes (EXEC_ADDR, then EXEC_BUS)
# Most cycles from the last request byte (CHECK) until hunting again: every word accessed, RESPOND, a full
# response (header, MAX_WORDS words with a TX_WAIT cycle after each, the empty-check cycle, two CRC bytes).
RESPOND_AT = 2 + Frame.MAX_WORDS * EXEC_WORD
STALL_MAX = (RESPOND_AT + 1 + Frame.RESP_HEADER * TX_BYTE + Frame.MAX_WORDS * (4 * TX_BYTE + 1) + 1
             + Frame.CRC_BYTES * TX_BYTE)
# CRC-16/CCITT-FALSE as a byte table from Python's binascii: an implementation independent of the link's
# bit-serial one (hw/uart_link.py crc16_byte).
CRC_TABLE = [binascii.crc_hqx(bytes([i]), 0) for i in range(256)]


def crc_table_entry(i):
    """CRC_TABLE[i] for an 8-bit value i. CRC-16 is linear, so the entry of i is the XOR of the entries of its
    set bits: written out this way, not as an Array of constants, which Yosys turns into a ROM whose contents
    the induction step does not fix (it would start from any table)."""
    out = Const(0, 16)
    for j in range(8):
        out = out ^ Mux(i[j], CRC_TABLE[1 << j], 0)
    return out


class Harness(MutableHarness):
    def elaborate(self, platform):
        m = Module()
        props = self.props = Properties(m)
        dut = UARTLink(params=SMALLEST)
        probe = Probe(dut)
        states = ["HUNT", "HEADER", "PAYLOAD", "CRC", "CHECK", "EXEC_ADDR", "EXEC_BUS", "RESPOND", "TX_HEADER",
                  "TX_PAYLOAD", "TX_WAIT", "TX_CRC"]
        if "REVERT" in probe.module._generated["link"].encoding:
            states.append("REVERT")        # the link's own write of UART_BAUD_DIV back to its reset value
        st = {n: probe.in_state("link", n) for n in states}
        idle, count, idx = probe.sig("idle"), probe.sig("count"), probe.sig("idx")
        crc, rx_crc = probe.sig("crc"), probe.sig("rx_crc")
        length, resp_len = probe.sig("length"), probe.sig("resp_len")
        rx, tx, bus = dut.rx, dut.tx, dut.bus
        got = rx.valid & rx.ready
        if self.mutation == "crc_ignored":
            # The received CRC is replaced by the computed one: every frame passes the check.
            with probe.module.If(st["CRC"] & got & (count == 1)):
                probe.module.d.sync += rx_crc.eq(probe.sig("crc"))
        elif self.mutation == "no_timeout":
            with probe.module.If(st["HEADER"] | st["PAYLOAD"] | st["CRC"]):
                probe.module.d.sync += idle.eq(0)
        m.submodules.dut = probe.module

        bypass = AnyConst(1)
        m.d.comb += dut.bypass.eq(bypass)
        free = [rx.valid, rx.payload, tx.ready, bus.ready, bus.rdata, bus.err, dut.framing_error, dut.overrun]
        own_rate = "div_request" in dut.signature.members
        if own_rate:
            # The link owns the divisor in use: the UART_BAUD_DIV register, its writes, the PHY's idle and line
            # level are free; the link applies a new divisor only between frames.
            free += [dut.div_request, dut.div_written, dut.phy_idle, dut.rx_level]
            div = dut.div
        else:
            div = AnyConst(16)
            m.d.comb += dut.div.eq(div)
        for sig in free:
            m.d.comb += sig.eq(AnySeq(len(sig)))
        bus_wait, tx_wait = Signal(range(BUS_WAIT + 1), name="bus_wait"), Signal(range(TX_WAIT + 1), name="tx_wait")
        m.d.sync += [bus_wait.eq(Mux(bus.valid & ~bus.ready, bus_wait + 1, 0)),
                     tx_wait.eq(Mux(tx.valid & ~tx.ready, tx_wait + 1, 0))]
        props.assume("bus_answers", ~bus.valid | bus.ready | (bus_wait < BUS_WAIT),
                     f"the bus answers within {BUS_WAIT} cycles")
        props.assume("tx_takes", ~tx.valid | tx.ready | (tx_wait < TX_WAIT),
                     f"the transmitter takes a byte within {TX_WAIT} cycles")

        # ---- back to hunting: cycles since the last byte taken, while a frame is in hand -----------------------
        # Cycles since the last byte taken or since the link last hunted: how long one excursion from HUNT has
        # gone without input.
        quiet = Signal(32, name="quiet")
        with m.If(got | st["HUNT"]):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != (1 << 32) - 1):
            m.d.sync += quiet.eq(quiet + 1)
        timeout = Mux(bypass, Frame.BYPASS_TIMEOUT_CYCLES, Frame.TIMEOUT_BYTES * BITS_PER_BYTE * div)
        bound = Mux(timeout > STALL_MAX, timeout, STALL_MAX)
        props.assert_("hunts_within_bound", ~dut.active | (quiet <= bound),
                      f"the link is back to hunting for a sync byte after at most max(inter-byte timeout, {STALL_MAX}) "
                      "cycles without a byte (a partial frame times out; a whole one is executed and answered in "
                      "bounded time)")
        receiving = st["HEADER"] | st["PAYLOAD"] | st["CRC"]
        lm = Mux(length > Frame.MAX_WORDS, Frame.MAX_WORDS, length)
        tx_base = RESPOND_AT + 1 + Frame.RESP_HEADER * TX_BYTE
        helpers = {
            "receiving": ~receiving | ((quiet == idle) & (idle <= timeout)),
            "check": ~st["CHECK"] | (quiet == 0),
            "exec_addr": ~st["EXEC_ADDR"] | ((quiet <= 1 + idx * EXEC_WORD) & (idx <= length)
                                             & (length <= Frame.MAX_WORDS)),
            "exec_bus": ~st["EXEC_BUS"] | ((quiet <= 2 + idx * EXEC_WORD + bus_wait) & (idx < length)
                                           & (length <= Frame.MAX_WORDS)),
            "respond": ~st["RESPOND"] | (quiet <= 2 + lm * EXEC_WORD),
            "tx_header": ~st["TX_HEADER"] | ((quiet <= RESPOND_AT + 1 + count * TX_BYTE + tx_wait)
                                             & (count < Frame.RESP_HEADER) & (idx == 0)),
            "tx_payload": ~st["TX_PAYLOAD"] | ((quiet <= tx_base + idx * (4 * TX_BYTE + 1) + count[:2] * TX_BYTE
                                                + tx_wait) & (idx <= resp_len) & ((idx < resp_len) | (count[:2] == 0))
                                               & (count[2:] == idx)),
            "tx_wait": ~st["TX_WAIT"] | ((quiet + 1 <= tx_base + idx * (4 * TX_BYTE + 1)) & (idx <= resp_len)
                                         & (count[:2] == 0) & (count[2:] == idx)),
            "tx_crc": ~st["TX_CRC"] | ((quiet <= tx_base + resp_len * (4 * TX_BYTE + 1) + 1 + count[0] * TX_BYTE
                                        + tx_wait) & (count[1:] == (resp_len << 1))),
            "resp_len": ~(st["TX_HEADER"] | st["TX_PAYLOAD"] | st["TX_WAIT"] | st["TX_CRC"])
                        | (resp_len <= Frame.MAX_WORDS),
            "state_legal": probe.fsm_legal("link"),
            "waits": ((tx_wait == 0) | tx.valid) & ((bus_wait == 0) | bus.valid),
        }
        if "REVERT" in st:
            helpers["revert"] = ~st["REVERT"] | (quiet == bus_wait)
        for name, cond in helpers.items():
            props.assert_(f"helper_{name}", cond, f"helper: in state(s) {name} the cycles since the last byte are "
                          "within that state's share of the bound")

        # ---- a frame whose CRC does not match never reaches the bus ---------------------------------------------
        frame_crc, frame_rx = Signal(16, name="frame_crc"), Signal(16, name="frame_rx")
        crc_good = Signal(name="crc_good")
        byte = rx.payload
        with m.If(st["HUNT"] & got & (byte == Frame.REQ_SYNC)):
            m.d.sync += frame_crc.eq(Frame.CRC_INIT)
        with m.If((st["HEADER"] | st["PAYLOAD"]) & got):
            m.d.sync += frame_crc.eq(Cat(Const(0, 8), frame_crc[:8]) ^ crc_table_entry(frame_crc[8:] ^ byte))
        with m.If(st["CRC"] & got):
            m.d.sync += frame_rx.eq(Cat(byte, frame_rx[:8]))
        with m.If(st["CHECK"]):
            m.d.sync += crc_good.eq(frame_rx == frame_crc)
        with m.If(st["HUNT"]):
            m.d.sync += crc_good.eq(0)
        own = Const(0, 1)
        if "REVERT" in st:
            own = (st["REVERT"] & bus.we & (bus.addr == CSR_BASE + Reg.UART_BAUD_DIV) & (bus.wdata == dut.reset_div))
        props.assert_("bad_crc_no_bus_access", ~bus.valid | crc_good | own,
                      "the bus is accessed only for a frame whose two CRC bytes equal CRC-16/CCITT-FALSE (binascii) of "
                      "the bytes between its sync byte and them (or, between frames, for the link's own write of "
                      "UART_BAUD_DIV back to its reset value)")
        props.assert_("helper_crc", (~(receiving | st["CHECK"]) | (frame_crc == crc)) & (frame_rx == rx_crc)
                      & (~(st["EXEC_ADDR"] | st["EXEC_BUS"]) | crc_good),
                      "helper: the harness's CRC equals the link's while a frame is received; execution follows a "
                      "match")

        # ---- covers ---------------------------------------------------------------------------------------------
        cmd = probe.sig("cmd")
        props.cover("write_reaches_bus", bus.valid & bus.ready & bus.we & (length == 1),
                    "a one-word WRITE frame with a good CRC writes the bus")
        props.cover("bad_crc_dropped", st["CHECK"] & (frame_rx != frame_crc) & (cmd == FrameCmd.WRITE) & (length == 1),
                    "a one-word WRITE frame with a bad CRC reaches the check (and is dropped)")
        props.cover("read_answered", st["TX_CRC"] & tx.valid & tx.ready & count[0] & (resp_len == 1),
                    "a one-word READ is answered to its last CRC byte, and the link goes back to hunting")
        return m


PROOFS = [
    Proof(name="uart_link", block="hw/uart_link.py", build=Harness, mode="prove", depth=4, cover_depth=32,
          assumes_why={
              "bus_answers": "the bus of the device answers within a bounded time (a stand-in bound; the figure "
                             "STALL_MAX scales with it)",
              "tx_takes": "the PHY takes a byte every bit-time * 10 cycles; a stand-in bound as for the bus",
          },
          mutations={"crc_ignored": "the received CRC is overwritten with the computed one (every frame passes)",
                     "no_timeout": "the inter-byte timeout counter never advances"},
          # A bad one-word WRITE reaches the bus at step 18; the timeout is hundreds of cycles deep, so no_timeout
          # is shown by the induction step (helper_receiving), not by a run.
          mutation_expects={"crc_ignored": "bad_crc_no_bus_access", "no_timeout": "helper_receiving"},
          mutation_bmc={"crc_ignored": 20}),
]
