"""hw/uart_link.py UARTLink: it always gets back to hunting for a sync byte with nothing left to execute or
answer, and a frame whose CRC does not match never reaches the bus (its words are staged, and the executor
takes only a frame that matched).

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
from pimhil.contract import CSR_BASE, Frame, FrameCmd, FrameStatus, Reg

from ._common import MutableHarness, Probe, Proof, Properties, SMALLEST

BUS_WAIT = 2
TX_WAIT = 2
BITS_PER_BYTE = 10                    # 8N1 on the wire: start, 8 data, stop (the link's timeout counts them)
TX_BYTE = TX_WAIT + 1                 # most cycles one response byte takes
EXEC_WORD = BUS_WAIT + 1              # most cycles one word's bus access takes


def tx_cost(n):
    """Most cycles the transmitter takes for a response with n payload words, from its first header byte (the
    CRC bytes wait one cycle for the CRC's last update)."""
    return (Frame.RESP_HEADER + 4 * n + Frame.CRC_BYTES) * TX_BYTE + 1


# Most cycles the executor holds a frame: START (for a CSR frame, waiting for the transmitter to finish the
# answers before), every word's access, and waiting for the transmitter again (the executor took its frame
# after the transmitter took the one it sends).
# A CSR frame also waits at START until the transmitter is idle.
EXEC_MAX = tx_cost(Frame.MAX_WORDS) + 1 + Frame.MAX_WORDS * EXEC_WORD
# With no byte arriving, every stage is idle again within the receiver's share (a partial frame's timeout, or a
# checked frame's wait for the executor), then the executor's and the transmitter's.
STALL_MAX = EXEC_MAX + 1 + EXEC_MAX + tx_cost(Frame.MAX_WORDS)
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
        rx_st = {n: probe.in_state("rx", n) for n in ("HUNT", "HEADER", "PAYLOAD", "CRC", "CHECK", "REVERT")}
        ex_st = {n: probe.in_state("exec", n) for n in ("IDLE", "START", "BUS", "DONE")}
        tx_st = {n: probe.in_state("tx", n) for n in ("IDLE", "HEADER", "PAYLOAD", "CRC")}
        idle, count, crc, rx_crc = probe.sig("idle"), probe.sig("count"), probe.sig("crc"), probe.sig("rx_crc")
        length, cmd = probe.sig("length"), probe.sig("cmd")
        ex_len, ex_idx, ex_status = probe.sig("ex_len"), probe.sig("ex_idx"), probe.sig("ex_status")
        t_len, tidx, tcount = probe.sig("t_len"), probe.sig("tidx"), probe.sig("tcount")
        crc_pending = probe.sig("tx_crc_pending")
        idx, idx_last = probe.sig("idx"), probe.sig("rx_idx_last")
        ex_last, t_last = probe.sig("ex_last"), probe.sig("t_last")
        hand_ex, ex_csr = probe.sig("hand_ex"), probe.sig("ex_csr")
        rx, tx, bus = dut.rx, dut.tx, dut.bus
        got = rx.valid & rx.ready
        if self.mutation == "crc_ignored":
            # The received CRC is replaced by the computed one: every frame passes the check.
            with probe.module.If(rx_st["CRC"] & got & (count == 1)):
                probe.module.d.sync += rx_crc.eq(crc)
        elif self.mutation == "unchecked_handoff":
            # The executor is handed every complete frame, its CRC checked or not (the stage hand-over ignores
            # the check).
            with probe.module.If(rx_st["CHECK"] & ex_st["IDLE"]):
                probe.module.d.comb += hand_ex.eq(1)
        elif self.mutation == "no_timeout":
            with probe.module.If(rx_st["HEADER"] | rx_st["PAYLOAD"] | rx_st["CRC"]):
                probe.module.d.sync += idle.eq(0)
        m.submodules.dut = probe.module

        bypass = AnyConst(1)
        m.d.comb += dut.bypass.eq(bypass)
        # The link owns the divisor in use: the UART_BAUD_DIV register, its writes, the PHY's idle and line level
        # are free; the link applies a new divisor only between frames.
        free = [rx.valid, rx.payload, tx.ready, bus.ready, bus.rdata, bus.err, dut.framing_error, dut.overrun,
                dut.div_request, dut.div_written, dut.phy_idle, dut.rx_level]
        for sig in free:
            m.d.comb += sig.eq(AnySeq(len(sig)))
        div = dut.div
        bus_wait, tx_wait = Signal(range(BUS_WAIT + 1), name="bus_wait"), Signal(range(TX_WAIT + 1), name="tx_wait")
        m.d.sync += [bus_wait.eq(Mux(bus.valid & ~bus.ready, bus_wait + 1, 0)),
                     tx_wait.eq(Mux(tx.valid & ~tx.ready, tx_wait + 1, 0))]
        props.assume("bus_answers", ~bus.valid | bus.ready | (bus_wait < BUS_WAIT),
                     f"the bus answers within {BUS_WAIT} cycles")
        props.assume("tx_takes", ~tx.valid | tx.ready | (tx_wait < TX_WAIT),
                     f"the transmitter takes a byte within {TX_WAIT} cycles")

        # ---- back to hunting: every stage holds a frame for a bounded time ------------------------------------
        # Cycles without a byte taken while the link is active, not counting those in which the receiver takes
        # none because the executor accesses the CSR window (bounded by exec_bounded).
        quiet = Signal(32, name="quiet")
        hold = probe.sig("hold")
        with m.If(got | ~dut.active):
            m.d.sync += quiet.eq(0)
        with m.Elif(~hold & (quiet != (1 << 32) - 1)):
            m.d.sync += quiet.eq(quiet + 1)
        hand_tx = probe.sig("hand_tx")
        age_bits = (4 * EXEC_MAX).bit_length()
        # Cycles since the executor / transmitter took the frame it holds; cycles a checked frame has waited.
        ex_age, tx_age, rx_hold = (Signal(age_bits, name=n) for n in ("ex_age", "tx_age", "rx_hold"))
        m.d.sync += [ex_age.eq(Mux(hand_ex, 0, ex_age + ~ex_st["IDLE"])),
                     tx_age.eq(Mux(hand_tx, 0, tx_age + ~tx_st["IDLE"])),
                     rx_hold.eq(Mux(rx_st["CHECK"], rx_hold + 1, 0))]
        timeout = Mux(bypass, Frame.BYPASS_TIMEOUT_CYCLES, Frame.TIMEOUT_BYTES * BITS_PER_BYTE * div)
        receiving = rx_st["HEADER"] | rx_st["PAYLOAD"] | rx_st["CRC"]
        ex_busy, tx_busy = ~ex_st["IDLE"], ~tx_st["IDLE"]
        props.assert_("helper_receiving", ~receiving | ((quiet == idle) & (idle <= timeout)),
                      "a partial frame is dropped after the inter-byte timeout: while receiving, the cycles since "
                      "the last byte never exceed it (the receiver's own counter is that count)")
        props.assert_("check_wait_bounded", ~rx_st["CHECK"] | (rx_hold <= EXEC_MAX + 1),
                      f"a checked frame waits at most {EXEC_MAX + 1} cycles for the executor")
        props.assert_("exec_bounded", ~ex_busy | (ex_age <= EXEC_MAX),
                      f"the executor holds a frame at most {EXEC_MAX} cycles (its words, then the wait for the "
                      "transmitter)")
        props.assert_("answer_bounded", ~tx_busy | (tx_age < tx_cost(Frame.MAX_WORDS)),
                      f"the transmitter sends a whole answer within {tx_cost(Frame.MAX_WORDS)} cycles")
        props.assert_("revert_bounded", ~rx_st["REVERT"] | (quiet == bus_wait),
                      "the link's own write of UART_BAUD_DIV ends within the bus bound")
        payload_sent = 4 * tidx + tcount[:2]
        helpers = {
            "exec": (~ex_st["START"] | ((ex_idx == 0) & ((ex_status != FrameStatus.OK) | (ex_len != 0))
                                        & ((ex_age == 0) | (ex_csr & (ex_age <= tx_cost(Frame.MAX_WORDS))))))
                    & (~ex_st["BUS"] | ((ex_age <= 1 + ex_idx * EXEC_WORD + bus_wait
                                         + Mux(ex_csr, tx_cost(Frame.MAX_WORDS), 0))
                                        & (ex_idx < ex_len) & (ex_status == FrameStatus.OK)))
                    & (~ex_st["DONE"] | (ex_age <= tx_cost(Frame.MAX_WORDS) + 1 + ex_len * EXEC_WORD))
                    & (ex_len <= Frame.MAX_WORDS)
                    # the receiver's hold, a register in the link, is what it stands for
                    & (hold == (ex_csr & ex_busy)),
            "tx": (~tx_st["HEADER"] | ((tx_age <= tcount * TX_BYTE + tx_wait) & (tcount < Frame.RESP_HEADER)
                                       & (tidx == 0)))
                  & (~tx_st["PAYLOAD"] | ((tx_age <= (Frame.RESP_HEADER + payload_sent) * TX_BYTE + tx_wait)
                                          & (tidx < t_len) & (tcount < 4)))
                  & (~tx_st["CRC"] | ((tx_age <= (Frame.RESP_HEADER + 4 * t_len + tcount[0]) * TX_BYTE + tx_wait + 1)
                                      & (tcount < Frame.CRC_BYTES) & (~crc_pending | (tcount == 0))))
                  & (t_len <= Frame.MAX_WORDS),
            # The executor took its frame after the transmitter took its own, and before the receiver's frame
            # began (so the later stage's wait is bounded by the earlier stage's hold).
            "order": (~ex_busy | ~tx_busy | (ex_age < tx_age))
                     & (~ex_busy | ~receiving | (ex_age > 0)) & (~ex_busy | ~rx_st["CHECK"] | (rx_hold < ex_age)),
            "state_legal": probe.fsm_legal("rx") & probe.fsm_legal("exec") & probe.fsm_legal("tx"),
            "waits": ((tx_wait == 0) | tx.valid) & ((bus_wait == 0) | bus.valid),
            # The end tests kept in registers beside the word indices.
            # The end tests kept in registers beside the word indices (and the receiver's words within the
            # frame's length while it takes them).
            "ends": (ex_last == (ex_idx + 1 == ex_len)) & (t_last == (tidx + 1 == t_len))
                    & (~rx_st["PAYLOAD"] | ((idx_last == (idx + 1 == length)) & (idx < length)
                                            & (length <= Frame.MAX_WORDS))),
        }
        for name, cond in helpers.items():
            props.assert_(f"helper_{name}", cond, f"helper: {name} (each stage's hold time against its progress, "
                          "and the order in which the stages took their frames)")

        # ---- a frame whose CRC does not match never reaches the bus ---------------------------------------------
        frame_crc, frame_rx = Signal(16, name="frame_crc"), Signal(16, name="frame_rx")
        ex_good = Signal(name="ex_good")        # the frame the executor holds had a matching CRC
        byte = rx.payload
        with m.If(rx_st["HUNT"] & got & (byte == Frame.REQ_SYNC)):
            m.d.sync += frame_crc.eq(Frame.CRC_INIT)
        with m.If((rx_st["HEADER"] | rx_st["PAYLOAD"]) & got):
            m.d.sync += frame_crc.eq(Cat(Const(0, 8), frame_crc[:8]) ^ crc_table_entry(frame_crc[8:] ^ byte))
        with m.If(rx_st["CRC"] & got):
            m.d.sync += frame_rx.eq(Cat(byte, frame_rx[:8]))
        with m.If(hand_ex):
            m.d.sync += ex_good.eq(frame_rx == frame_crc)
        own = rx_st["REVERT"] & bus.we & (bus.addr == CSR_BASE + Reg.UART_BAUD_DIV) & (bus.wdata == dut.reset_div)
        props.assert_("bad_crc_no_bus_access", ~bus.valid | (ex_st["BUS"] & ex_good) | own,
                      "the bus is accessed only for a frame whose two CRC bytes equal CRC-16/CCITT-FALSE (binascii) of "
                      "the bytes between its sync byte and them (or, between frames, for the link's own write of "
                      "UART_BAUD_DIV back to its reset value)")
        props.assert_("helper_crc", (~(receiving | rx_st["CHECK"]) | (frame_crc == crc)) & (frame_rx == rx_crc)
                      & (~(ex_st["START"] | ex_st["BUS"]) | ex_good) & (~hand_ex | (rx_crc == crc)),
                      "helper: the harness's CRC equals the link's while a frame is received; the executor holds only "
                      "a frame that matched")

        # ---- covers ---------------------------------------------------------------------------------------------
        props.cover("write_reaches_bus", bus.valid & bus.ready & bus.we & (ex_len == 1),
                    "a one-word WRITE frame with a good CRC writes the bus")
        props.cover("bad_crc_dropped", rx_st["CHECK"] & (frame_rx != frame_crc) & (cmd == FrameCmd.WRITE)
                    & (length == 1), "a one-word WRITE frame with a bad CRC reaches the check (and is dropped)")
        props.cover("read_answered", tx_st["CRC"] & tx.valid & tx.ready & tcount[0] & (t_len == 1),
                    "a one-word READ is answered to its last CRC byte, and the link goes back to hunting")
        props.cover("overlap", ex_st["BUS"] & rx_st["PAYLOAD"],
                    "the executor writes a frame's words to the bus while the receiver takes the next frame's")
        return m


PROOFS = [
    Proof(name="uart_link", block="hw/uart_link.py", build=Harness, mode="prove", depth=4, cover_depth=32,
          assumes_why={
              "bus_answers": "the bus of the device answers within a bounded time (a stand-in bound; the figure "
                             "STALL_MAX scales with it)",
              "tx_takes": "the PHY takes a byte every bit-time * 10 cycles; a stand-in bound as for the bus",
          },
          mutations={"crc_ignored": "the received CRC is overwritten with the computed one (every frame passes)",
                     "unchecked_handoff": "the receiver hands every complete frame to the executor, whether its "
                                          "CRC matched or not",
                     "no_timeout": "the inter-byte timeout counter never advances"},
          # A bad one-word WRITE reaches the bus at step 18 (sync, 8 header, 4 payload and 2 CRC bytes, the check,
          # the executor's START); the timeout is hundreds of cycles deep, so no_timeout
          # is shown by the induction step (helper_receiving), not by a run.
          mutation_expects={"crc_ignored": "bad_crc_no_bus_access", "unchecked_handoff": "bad_crc_no_bus_access",
                            "no_timeout": "helper_receiving"},
          mutation_bmc={"crc_ignored": 20, "unchecked_handoff": 20}),
]
