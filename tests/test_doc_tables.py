"""The generated sections of docs/control_hub.md and docs/uart_link.md (ci/doc_tables.py) are current, and
the facts the generator still keeps itself agree with the golden device and the golden link model."""

import pytest

from ci import doc_tables as dt
from pimhil.contract import CSR_BASE, PRESETS, Reg
from pimhil.golden.device import BusError, GoldenDevice
from tests.fakes.uart_device import FakeUartDevice


@pytest.mark.parametrize("rel", sorted(dt.SECTIONS))
def test_generated_sections_are_current(rel):
    text = (dt.ROOT / rel).read_text()
    assert dt.render(text, dt.SECTIONS[rel], rel) == text, f"{rel} is out of date: run `python -m ci.doc_tables`"


def test_check_mode_passes():
    assert dt.main(["--check"]) == 0


def test_render_detects_drift_and_missing_sections():
    gens = {"a": lambda: "fresh"}
    stale = "x\n<!-- generated:a begin -->\nold\n<!-- generated:a end -->\ny\n"
    assert dt.render(stale, gens) == "x\n<!-- generated:a begin -->\n\nfresh\n\n<!-- generated:a end -->\ny\n"
    with pytest.raises(SystemExit, match="appears 0 times"):
        dt.render("no markers\n", gens)
    with pytest.raises(SystemExit, match="unknown generated section"):
        dt.render("<!-- generated:b begin -->\n<!-- generated:b end -->\n", gens)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_register_access_and_reset_match_the_golden_device(name):
    """_ACCESS and the reset values are typed in ci/doc_tables.py until the contract carries them: probe the
    golden device (what testbenches compare the RTL with) so they cannot drift silently."""
    p = PRESETS[name]
    table = {row.split(" | ")[1]: row.split(" | ") for row in dt.regs_md().splitlines()[2:]}
    col = 3 + list(PRESETS).index(name)
    for r in Reg:
        dev = GoldenDevice(p)
        try:
            value = dev.read(CSR_BASE + r)
        except BusError:
            value = None
        try:
            dev.write(CSR_BASE + r, value or 0)
            writable = True
        except BusError:
            writable = False
        access = {(True, False): "R", (True, True): "RW", (False, True): "W1"}[(value is not None, writable)]
        row = table[r.name]
        assert row[2] == access, f"{r.name}: documented {row[2]}, golden device behaves as {access}"
        if value is not None:
            assert int(row[col], 0) == value, f"{r.name}: documented reset {row[col]}, golden device {value:#x}"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_examples_are_what_the_link_model_answers(name):
    """Each documented request, replayed on the golden link model, gets the documented response bytes."""
    for title, request, response, _ in dt.frame_examples():
        port = FakeUartDevice(PRESETS[name])
        port.write(request)
        assert port.read(4096) == response, title

