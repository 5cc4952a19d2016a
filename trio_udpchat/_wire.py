"""The byte layout of trio_udpchat frames, and nothing else.

Every frame starts with a three-byte header::

    offset  size  field
    0       1     MAGIC 0xF9: a byte that cannot start a UTF-8 sequence
                  (0xF5-0xFF never can), so a frame is never mistaken for text
    1       1     VERSION, currently 1; any other version is dropped
    2       1     frame type, below

followed by a body that depends on the type (integers are big-endian)::

    type          code  body                           meaning
    Hello         0x01  nonce u64                      client asks for a session
    Welcome       0x02  nonce u64, session u64         server grants one, echoing the nonce
    Text          0x03  session u64, text UTF-8 (rest) a chat message
    Bye           0x04  session u64                    client leaves
    Reset         0x05  session u64                    server: I hold no such session

A datagram whose first byte is not MAGIC is plain text (see ``_plaintext``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, TypeAlias

from ._errors import LocalProtocolError, RemoteProtocolError

MAGIC: Final = 0xF9
VERSION: Final = 1

_HEADER: Final = struct.Struct("!BBB")
_U64: Final = struct.Struct("!Q")
_U64_U64: Final = struct.Struct("!QQ")
_U64_MAX: Final = 2**64 - 1

HEADER_SIZE: Final = _HEADER.size
#: Bytes a Text frame spends before its text starts.
TEXT_OVERHEAD: Final = _HEADER.size + _U64.size


@dataclass(frozen=True, slots=True)
class Hello:
    """Client to server: please give me a session. ``nonce`` is echoed back."""

    nonce: int


@dataclass(frozen=True, slots=True)
class Welcome:
    """Server to client: your hello with ``nonce`` now owns session ``session``."""

    nonce: int
    session: int


@dataclass(frozen=True, slots=True)
class Text:
    """A chat message within ``session``, in either direction."""

    session: int
    text: str


@dataclass(frozen=True, slots=True)
class Bye:
    """Client to server: session ``session`` is over."""

    session: int


@dataclass(frozen=True, slots=True)
class Reset:
    """Server to client: I hold no session ``session`` (I restarted, or it expired)."""

    session: int


Frame: TypeAlias = Hello | Welcome | Text | Bye | Reset

_CODES: Final[dict[type[Frame], int]] = {
    Hello: 0x01,
    Welcome: 0x02,
    Text: 0x03,
    Bye: 0x04,
    Reset: 0x05,
}


def is_frame(data: bytes) -> bool:
    """Whether ``data`` claims to be a frame (valid or not) rather than plain text."""
    return len(data) > 0 and data[0] == MAGIC


def _check_u64(name: str, value: int) -> None:
    if not 0 <= value <= _U64_MAX:
        raise LocalProtocolError(f"{name} {value} does not fit in 64 bits")


def encode_frame(frame: Frame) -> bytes:
    """Return the bytes of ``frame``.

    Raises :class:`LocalProtocolError` if a field is out of range.
    """
    header = _HEADER.pack(MAGIC, VERSION, _CODES[type(frame)])
    match frame:
        case Hello(nonce=nonce):
            _check_u64("nonce", nonce)
            return header + _U64.pack(nonce)
        case Welcome(nonce=nonce, session=session):
            _check_u64("nonce", nonce)
            _check_u64("session", session)
            return header + _U64_U64.pack(nonce, session)
        case Text(session=session, text=text):
            _check_u64("session", session)
            try:
                body = text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise LocalProtocolError(f"text is not encodable as UTF-8: {exc}") from None
            return header + _U64.pack(session) + body
        case Bye(session=session) | Reset(session=session):
            _check_u64("session", session)
            return header + _U64.pack(session)


def _fixed_body(name: str, body: bytes, layout: struct.Struct) -> tuple[int, ...]:
    if len(body) != layout.size:
        raise RemoteProtocolError(
            f"{name} body has {len(body)} bytes, expected {layout.size}", reason="bad-length"
        )
    return layout.unpack(body)


def decode_frame_untrusted(data: bytes) -> Frame:
    """Parse one datagram from the network into a frame.

    Raises :class:`RemoteProtocolError` (and nothing else) if ``data`` is not a
    valid frame of our version; its ``reason`` says why, for counting.
    """
    if len(data) < _HEADER.size:
        raise RemoteProtocolError(f"frame of {len(data)} bytes is truncated", reason="truncated")
    magic, version, code = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise RemoteProtocolError(f"first byte {magic:#04x} is not a frame", reason="not-a-frame")
    if version != VERSION:
        raise RemoteProtocolError(f"frame version {version} is not {VERSION}", reason="bad-version")
    body = data[_HEADER.size :]
    if code == 0x01:
        (nonce,) = _fixed_body("hello", body, _U64)
        return Hello(nonce)
    if code == 0x02:
        nonce, session = _fixed_body("welcome", body, _U64_U64)
        return Welcome(nonce, session)
    if code == 0x03:
        if len(body) < _U64.size:
            raise RemoteProtocolError("text frame is truncated", reason="truncated")
        (session,) = _U64.unpack_from(body)
        try:
            text = body[_U64.size :].decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteProtocolError("text is not valid UTF-8", reason="bad-utf8") from None
        return Text(session, text)
    if code == 0x04:
        (session,) = _fixed_body("bye", body, _U64)
        return Bye(session)
    if code == 0x05:
        (session,) = _fixed_body("reset", body, _U64)
        return Reset(session)
    raise RemoteProtocolError(f"unknown frame type {code:#04x}", reason="bad-type")
