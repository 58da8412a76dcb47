"""UART transport against a fake device port that parses frames like the RTL link and can misbehave."""

import time

import pytest
import serial

from pimhil.contract import CMDQ_BASE, SCRATCH_BASE, Command, FrameStatus, Op, Reg, preset
from pimhil.errors import DeviceError, DeviceGone, LinkError, LinkTimeout
from pimhil.transport.uart import UartTransport
from tests.fakes.uart_device import FakeUartDevice

P = preset("board")


@pytest.fixture
def link():
    port = FakeUartDevice(P)
    t = UartTransport("fake://", serial=port, timeout=0.3, retries=2, window=4)
    yield t, port
    t.close()


def test_read_write_round_trip_in_flight(link):
    t, port = link
    words = list(range(1000, 1000 + 700))          # three frames, pipelined
    t.write(SCRATCH_BASE, words)
    assert t.read(SCRATCH_BASE, 700) == words
    assert t.stats["frames"] == 6 and t.stats["retries"] == 0
    assert port.frames["ok"] == 6


def test_garbage_before_a_response_is_skipped(link):
    t, port = link
    port.garbage_before_next = bytes([0x00, 0xFF, 0x13, 0x37])
    assert t.read_word(Reg.MAGIC) == 0x50494D31
    assert t.stats["garbage_bytes"] == 4 and t.stats["retries"] == 0


def test_corrupted_response_is_retried(link):
    t, port = link
    t.write(SCRATCH_BASE, [5, 6, 7])
    port.corrupt_next_response = True
    assert t.read(SCRATCH_BASE, 3) == [5, 6, 7]
    assert t.stats["crc_errors"] == 1 and t.stats["retries"] == 1


def test_dropped_request_bytes_resync_and_retry(link):
    t, port = link
    port.drop_next_request_bytes = 3
    t0 = time.monotonic()
    t.write(SCRATCH_BASE + 64, [11, 22, 33, 44])
    assert time.monotonic() - t0 < 3
    assert t.stats["resyncs"] == 1 and t.stats["retries"] == 1
    assert port.frames["crc"] == 1            # the flush completed the damaged frame, which was dropped
    assert t.read(SCRATCH_BASE + 64, 4) == [11, 22, 33, 44]


def test_silent_device_times_out_within_deadline_then_recovers(link):
    t, port = link
    port.dead = True
    t0 = time.monotonic()
    with pytest.raises(LinkTimeout):
        t.read_word(Reg.MAGIC)
    # 3 attempts of (timeout + wire time) plus 3 resyncs of at most `timeout` each
    assert time.monotonic() - t0 < 3 * (0.3 + 0.1) + 3 * 0.35
    port.dead = False
    assert t.read_word(Reg.MAGIC) == 0x50494D31


def test_command_queue_push_is_never_retried(link):
    t, port = link
    port.corrupt_next_response = True
    before = port.dev.cmds_done
    with pytest.raises(LinkError, match="not retried"):
        t.write_fixed(CMDQ_BASE, Command(Op.NOP).queue_words(P))
    assert port.dev.cmds_done == before + 1        # executed exactly once, and the caller knows it is in doubt
    assert t.read_word(Reg.MAGIC) == 0x50494D31     # and the link serves on


def test_error_status_is_a_device_error_and_the_link_stays_usable(link):
    t, port = link
    with pytest.raises(DeviceError) as e:
        t.read(0x00800000, 4)                       # unmapped
    assert e.value.code == FrameStatus.BAD_ADDR
    assert t.read_word(Reg.MAGIC) == 0x50494D31


def test_pyserial_loop_url_echo_is_no_answer():
    with UartTransport("loop://", timeout=0.2, retries=0) as t:
        with pytest.raises(LinkTimeout):
            t.read_word(Reg.MAGIC)
        assert t.stats["garbage_bytes"] > 0        # our own request came back and was hunted through


def test_closed_port_is_device_gone(link):
    t, port = link
    port.closed = True
    with pytest.raises(DeviceGone):
        t.read_word(Reg.MAGIC)


def test_unopenable_port_is_device_gone():
    with pytest.raises(DeviceGone):
        UartTransport("/dev/does-not-exist-pim", timeout=0.1)


def test_real_pyserial_socket_url_to_a_dead_port():
    # Nothing listens on this port: pyserial's socket:// refuses, and the driver names it.
    with pytest.raises(DeviceGone):
        UartTransport("socket://127.0.0.1:9", timeout=0.2)
    assert issubclass(serial.SerialException, OSError)
