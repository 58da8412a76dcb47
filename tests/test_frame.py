"""UART frame codec (host/pimhil/frame.py) against the format in docs/uart_link.md."""

import pytest

from pimhil.contract import Frame, FrameCmd, FrameStatus
from pimhil.frame import (FrameError, crc16, decode_response, encode_raw_request, encode_request,
                          encode_response, response_length)


def test_crc_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1          # the catalogue check value of CRC-16/CCITT-FALSE


def test_documented_example_bytes():
    f = encode_request(0x07, FrameCmd.WRITE, 0x00010000, words=[0x11223344, 0xDEADBEEF])
    assert f.hex(" ") == "a5 07 02 02 00 00 00 01 00 44 33 22 11 ef be ad de 4a 51"
    assert encode_response(0x08, 0, [0x50494D31]).hex(" ") == "5a 08 00 01 00 31 4d 49 50 82 44"


def test_response_roundtrip_and_length():
    r = encode_response(9, FrameStatus.OK, list(range(256)))
    assert response_length(r[:Frame.RESP_HEADER]) == len(r)
    d = decode_response(r)
    assert (d.seq, d.status, d.words) == (9, FrameStatus.OK, tuple(range(256)))
    assert d.nbytes == len(r)


@pytest.mark.parametrize("mutate,needle", [
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "CRC"),
    (lambda b: b"\x00" + b[1:], "sync"),
    (lambda b: b[:-1], "expected"),
])
def test_bad_responses_raise(mutate, needle):
    with pytest.raises(FrameError, match=needle):
        decode_response(mutate(encode_response(1, 0, [1, 2, 3])))


def test_request_limits():
    with pytest.raises(FrameError, match="length"):
        encode_request(1, FrameCmd.WRITE, 0, words=[0] * (Frame.MAX_WORDS + 1))
    with pytest.raises(FrameError, match="length"):
        encode_request(1, FrameCmd.READ, 0, count=0)
    raw = encode_raw_request(1, 0x77, 0, 0)
    assert raw[2] == 0x77 and crc16(raw[1:-2]) == int.from_bytes(raw[-2:], "big")
