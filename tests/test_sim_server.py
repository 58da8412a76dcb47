"""The sim server's life cycle and the driver's behaviour when it dies (board preset, both links)."""

import threading
import time

import pytest

from pimhil.contract import MAGIC, SCRATCH_BASE, Reg
from pimhil.errors import DeviceGone, LinkTimeout
from pimhil.sim_launch import SimServer
from pimhil.transport.sim_pcie import SimPcieTransport
from pimhil.transport.uart import UartTransport

pytestmark = pytest.mark.slow


def connect(server, timeout):
    if server.link == "pcie":
        return SimPcieTransport(f"{server.host}:{server.port}", timeout=timeout)
    return UartTransport(f"socket://{server.host}:{server.port}", baudrate=20_000, timeout=timeout, retries=1)


@pytest.mark.parametrize("link", ["uart", "pcie"])
def test_server_exits_when_its_client_leaves(link):
    server = SimServer(link, "board")
    assert server.host == "127.0.0.1"
    with connect(server, 10.0) as t:
        assert t.read_word(Reg.MAGIC) == MAGIC
    t0 = time.monotonic()
    assert server.stop(timeout=20) == 0
    assert time.monotonic() - t0 < 20


def test_server_without_client_exits_at_its_accept_deadline():
    server = SimServer("uart", "board", accept=1.0)
    t0 = time.monotonic()
    server.proc.wait(30)
    assert time.monotonic() - t0 < 30 and server.stop() == 0


@pytest.mark.parametrize("link", ["uart", "pcie"])
def test_server_killed_mid_transfer_then_a_new_one_works(link):
    server = SimServer(link, "board")
    t = connect(server, 5.0)
    assert t.read_word(Reg.MAGIC) == MAGIC
    outcome = {}

    def transfer():
        t0 = time.monotonic()
        try:
            for _ in range(50):
                t.write(SCRATCH_BASE, list(range(1024)))
            outcome["result"] = "finished"
        except (DeviceGone, LinkTimeout) as e:
            outcome["result"] = e
        outcome["elapsed"] = time.monotonic() - t0

    th = threading.Thread(target=transfer)
    th.start()
    time.sleep(1.0)
    server.kill()
    th.join(30)
    assert not th.is_alive(), "the driver hung after the server died"
    assert isinstance(outcome["result"], (DeviceGone, LinkTimeout)), outcome
    t.close()
    server.stop()
    with SimServer(link, "board") as again, connect(again, 10.0) as t2:
        assert t2.read_word(Reg.MAGIC) == MAGIC


@pytest.mark.parametrize("target", ["sim-phy:board", "sim-bytes:board"])
def test_other_uart_modes_serve_the_driver(target):
    """The 8N1 PHY in the loop (cocotbext-uart peers), and the plain byte bypass without the bridge."""
    from pimhil.device import Device
    from pimhil.transport import open_target

    with open_target(target, timeout=30.0) as t:
        dev = Device(t)
        assert dev.params.banks == 4
        dev.write_words(SCRATCH_BASE, list(range(40)))
        assert dev.read_scratch(0, 40).tolist() == list(range(40))
        if target.startswith("sim-phy"):
            assert dev.read_reg("UART_FRAMES_OK") >= 3 and dev.read_reg("UART_FRAMING_ERRORS") == 0
