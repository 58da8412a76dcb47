"""PCIe transports: XDMA character devices (through a fake that enforces the driver's rules) and the sysfs
BAR mmap (through a file standing in for resource0)."""

import mmap
import struct

import numpy as np
import pytest

from pimhil.contract import BANK_BASE, MAGIC, SCRATCH_BASE, Reg, preset
from pimhil.device import Device
from pimhil.errors import DeviceError, DeviceGone, DeviceMismatch
from pimhil.golden.device import GoldenDevice
from pimhil.reference import gemv_reference
from pimhil.transport.sysfs import SysfsBar, SysfsTransport
from pimhil.transport.xdma import XdmaFiles, XdmaTransport
from tests.fakes.xdma_files import FakeXdmaFS

P = preset("board")


@pytest.mark.parametrize("dma", [True, False], ids=["dma", "bar-only"])
def test_gemv_through_xdma_files(dma):
    fs = FakeXdmaFS(P, dma=dma)
    with XdmaTransport(XdmaFiles("/dev/xdma0", **fs.files())) as t:
        dev = Device(t, expect=P)
        rng = np.random.default_rng(3)
        w, x = rng.standard_normal((24, 300)), rng.standard_normal(300)
        r = dev.gemv(w, x)
        assert np.array_equal(r.bits, gemv_reference(w, x, P))
    assert (fs.calls["h2c"] > 0) == dma and (fs.calls["c2h"] > 0) == dma
    assert not fs.fds, "every character device is closed"


def test_registers_go_through_the_bar_and_data_by_dma():
    fs = FakeXdmaFS(P)
    t = XdmaTransport(XdmaFiles("/dev/xdma0_user", **fs.files()))
    t.read_word(Reg.MAGIC)
    assert fs.calls == {"user_read": 1, "user_write": 0, "h2c": 0, "c2h": 0}
    t.write(SCRATCH_BASE, list(range(64)))
    assert t.read(SCRATCH_BASE, 64) == list(range(64))
    assert fs.calls["h2c"] == 1 and fs.calls["c2h"] == 1 and fs.calls["user_write"] == 0
    t.close()


def test_card_gone_is_reported_as_device_gone():
    fs = FakeXdmaFS(P)
    t = XdmaTransport(XdmaFiles("/dev/xdma0", **fs.files()))
    fs.gone = True
    with pytest.raises(DeviceGone):
        t.read_word(Reg.STATUS)
    with pytest.raises(DeviceGone):
        t.write(BANK_BASE, [1, 2])
    fs.gone = False
    assert t.read_word(Reg.MAGIC) == MAGIC


def test_all_ones_value_with_a_live_card_is_data():
    fs = FakeXdmaFS(P, dma=False)
    t = XdmaTransport(XdmaFiles("/dev/xdma0", **fs.files()))
    t.write(SCRATCH_BASE, [0xFFFFFFFF])
    assert t.read(SCRATCH_BASE, 1) == [0xFFFFFFFF]


def test_dma_bus_error_is_a_device_error():
    fs = FakeXdmaFS(P)
    t = XdmaTransport(XdmaFiles("/dev/xdma0", **fs.files()))
    with pytest.raises(DeviceError):
        t.read(0x00800000, 8)          # unmapped: the AXI4 slave answers SLVERR, the engine fails


def test_fake_enforces_the_drivers_access_rules():
    fs = FakeXdmaFS(P)
    fd = fs.open("/dev/xdma0_user", 0)
    with pytest.raises(OSError):
        fs.pread(fd, 2, 0)
    with pytest.raises(OSError):
        fs.pread(fd, 4, 2)
    with pytest.raises(OSError):
        fs.pwrite(fd, b"\0" * 8, 0)


def test_missing_device_node_is_device_gone():
    with pytest.raises(DeviceGone):
        XdmaFiles("/dev/xdma9-does-not-exist")


def _bar_image(tmp_path, golden: GoldenDevice | None, size=1 << 17):
    """A file laid out like the BAR's register window (identity registers from a golden device)."""
    path = tmp_path / "resource0"
    data = bytearray(b"\xff" * size) if golden is None else bytearray(size)
    if golden is not None:
        for r in Reg:
            if r in (Reg.CONTROL,):
                continue
            struct.pack_into("<I", data, r, golden.read(r))
    path.write_bytes(bytes(data))
    return path


def test_sysfs_bar_identifies_the_device(tmp_path):
    path = _bar_image(tmp_path, GoldenDevice(P))
    with SysfsTransport(str(path)) as t:
        assert Device(t).params == P
        t.write(SCRATCH_BASE, [0x12345678, 0x9ABCDEF0])
        assert t.read(SCRATCH_BASE, 2) == [0x12345678, 0x9ABCDEF0]
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert struct.unpack_from("<I", mm, SCRATCH_BASE)[0] == 0x12345678


def test_sysfs_bar_of_a_vanished_card(tmp_path):
    with SysfsTransport(str(_bar_image(tmp_path, None))) as t:
        with pytest.raises(DeviceGone):
            Device(t)


def test_sysfs_bar_refuses_unaligned_and_out_of_range(tmp_path):
    bar = SysfsBar(str(_bar_image(tmp_path, GoldenDevice(P))))
    with pytest.raises(ValueError):
        bar.user_read(2)
    with pytest.raises(ValueError):
        bar.user_read(1 << 20)
    bar.close()


def test_wrong_identity_is_a_mismatch(tmp_path):
    golden = GoldenDevice(preset("sim"))
    with SysfsTransport(str(_bar_image(tmp_path, golden))) as t:
        with pytest.raises(DeviceMismatch, match="banks"):
            Device(t, expect=P)


def test_sysfs_file_that_is_not_a_bar_is_refused(tmp_path):
    path = tmp_path / "not-a-bar"
    path.write_bytes(b"root:x:0:0\n")
    with pytest.raises(DeviceGone, match="whole 32-bit words"):
        SysfsBar(str(path))
