"""Named exceptions of the host driver. Every failure a caller can see is one of these, never a silent zero."""


class PimError(Exception):
    """Base of every driver error."""


class LinkTimeout(PimError):
    """No (complete) answer within the deadline."""


class LinkError(PimError):
    """The link delivered something wrong: bad CRC, bad framing, a sequence number out of order."""


class DeviceGone(LinkError):
    """The device has left: a PCIe read of all ones, or the connection closed."""


class DeviceError(PimError):
    """The device refused: `code` is its error or frame status code, `op` the opcode where known."""

    def __init__(self, message: str, *, code: int = 0, op: int | None = None, addr: int | None = None):
        super().__init__(message)
        self.code = code
        self.op = op
        self.addr = addr


class DeviceMismatch(PimError):
    """The device is not the one the driver was built for (magic, contract version or parameters)."""


class DeviceTimeout(PimError):
    """Queued commands did not complete within their deadline (the link still answers)."""
