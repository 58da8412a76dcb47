"""Replay of a UART session recorded against the RTL (tests/fakes/recorded.py): the driver's bytes are
unchanged and the RTL's recorded answers decode to what the golden model computes."""

import json

import numpy as np
import pytest

from pimhil.contract import MAGIC, STATUS_DONE, STATUS_ERROR, HubError
from pimhil.golden import gemv
from pimhil.transport.uart import UartTransport
from tests.fakes.recorded import DATA, P, ReplaySerial, session


@pytest.fixture(scope="module")
def recording():
    return json.loads(DATA.read_text())


def test_replay_matches_bytes_and_golden(recording):
    replay = ReplaySerial(recording["log"])
    t = UartTransport("replay", serial=replay, timeout=0.5, retries=0, window=1)
    out = session(t)
    assert replay.done, "the driver sent fewer bytes than the recording"
    assert out["identity"][0] == MAGIC and out["identity"][2] == P.banks
    w = np.array(out["inputs"]["w"], np.uint16)
    x = np.array(out["inputs"]["x"], np.uint16)
    assert out["status_after_tile"][0] & STATUS_DONE
    assert np.array_equal(np.array(out["y"], np.uint32), gemv(w, x, lanes=P.lanes))
    assert out["error"][0] & STATUS_ERROR and out["error"][1] == HubError.BAD_TILE
    assert not out["status_cleared"][0] & STATUS_ERROR
    assert out == recording["result"] | {"inputs": out["inputs"]}


def test_replay_detects_a_changed_byte_stream(recording):
    log = [list(e) for e in recording["log"]]
    first_tx = next(e for e in log if e[0] == "tx")
    first_tx[1] = "00" + first_tx[1][2:]
    t = UartTransport("replay", serial=ReplaySerial(log), timeout=0.2, retries=0, window=1)
    with pytest.raises(AssertionError, match="byte 0"):
        session(t)
