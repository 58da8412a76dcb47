"""Device API behaviour that needs a misbehaving device: stuck, foreign, or of another contract version;
plus the tiling arithmetic and argument checks. The driver suite (test_driver.py) covers normal operation."""

import numpy as np
import pytest

from pimhil.contract import CONTRACT_VERSION, STATUS_BUSY, Reg, preset
from pimhil.device import Device
from pimhil.errors import DeviceMismatch, DeviceTimeout
from pimhil.layout import gemv_plan
from pimhil.transport.golden import GoldenTransport

P = preset("board")


class Patched(GoldenTransport):
    """The golden device with some registers overridden."""

    def __init__(self, params, overrides):
        super().__init__(params)
        self.overrides = overrides

    def read(self, addr, n):
        out = super().read(addr, n)
        return [self.overrides.get(addr + 4 * i, v) for i, v in enumerate(out)]


def test_stuck_device_times_out_at_the_deadline():
    dev = Device(Patched(P, {Reg.STATUS: STATUS_BUSY}), timeout=0.3, poll_s=0.01)
    with pytest.raises(DeviceTimeout, match="STATUS"):
        dev.wait()


@pytest.mark.parametrize("reg,value,match", [(Reg.MAGIC, 0xDEADBEEF, "MAGIC"),
                                             (Reg.VERSION, CONTRACT_VERSION + 1, "version"),
                                             (Reg.LANES, 3, "impossible")])
def test_foreign_devices_are_refused(reg, value, match):
    with pytest.raises(DeviceMismatch, match=match):
        Device(Patched(P, {reg: value}))


def test_progress_reports_every_bulk_piece():
    seen = []
    dev = Device(GoldenTransport(P), progress=lambda label, done, total: seen.append((label, done, total)))
    dev.write_words(0x10000, np.arange(1000, dtype=np.uint32), label="scratch")
    assert seen[-1] == ("scratch", 1000, 1000)


def test_gemv_plan_balances_tiles_and_fits_the_banks():
    p = preset("sim")
    plan = gemv_plan(p, 512, 2048)
    assert [t.groups for t in plan.tiles] == [16, 16] and plan.x_row == p.rows - 2
    for t in plan.tiles:
        assert t.groups * plan.chunks <= plan.x_row
    one = gemv_plan(p, 100, 300)
    assert one.m_pad == 112 and one.k_pad == p.row_words and len(one.tiles) == 1
    with pytest.raises(ValueError, match="K ="):
        gemv_plan(p, 16, p.rows * p.row_words)


def test_bad_shapes_are_value_errors():
    dev = Device(GoldenTransport(P))
    with pytest.raises(ValueError):
        dev.gemv(np.zeros((4, 8)), np.zeros(9))
    with pytest.raises(ValueError):
        dev.attention(np.zeros(16), np.zeros((64, 16)), np.zeros((64, 8)))
    with pytest.raises(TypeError):
        dev.gemv(np.zeros((4, 8), dtype=np.uint32), np.zeros(8))


@pytest.mark.parametrize("preset_name,tokens,dim", [("sim", 2048, 128), ("board", 512, 16), ("sim", 64, 16)])
def test_attention_layouts_on_the_golden_device(preset_name, tokens, dim):
    """Whole-row V chunks (T >= row_words, several chunks) and partial rows, against the golden device's own
    tile, which places data by docs/control_hub.md independently of pimhil.layout."""
    from pimhil.reference import attention_reference

    p = preset(preset_name)
    rng = np.random.default_rng(tokens + dim)
    q, k, v = rng.standard_normal(dim), rng.standard_normal((tokens, dim)), rng.standard_normal((tokens, dim))
    r = Device(GoldenTransport(p)).attention(q, k, v)
    assert np.array_equal(r.bits, attention_reference(q, k, v, p))
