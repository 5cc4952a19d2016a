"""The byte layout of trio_udpchat frames, and nothing else.

Every frame starts with a three-byte header::

    offset  size  field
    0       1     MAGIC 0xF9: a byte that cannot start a UTF-8 sequence
                  (0xF5-0xFF never can), so a frame is never mistaken for text
    1       1     VERSION, currently 1; any other version is dropped
    2       1     frame type, below

then a body that depends on the type, and last a CRC-32 (zlib's, u32) of
everything before it, so a bit flip that slips past UDP's 16-bit checksum is
dropped rather than believed. Integers are big-endian; ``pn``
is the sender's packet number, one per datagram, strictly increasing; ``seq``
numbers the reliable packets of a session; both are sent modulo 2**32)::

    type     code  body                                       meaning
    Hello    0x01  nonce u64                                  client asks for a session
    Welcome  0x02  nonce u64, session u64, expiry_ms u32      server grants one (echoes nonce);
                                                              it forgets sessions silent this long
    Data     0x03  session u64, pn u32, seq u32, flags u8,    one reliable packet: a message
                   payload (rest)                             or a fragment of one
    Ack      0x04  session u64, pn u32, next u32, bitmap u64  every seq below ``next`` arrived,
                                                              and ``next + 1 + i`` per set bit i
    Bye      0x05  session u64, pn u32, next u32              client leaves; ``next`` acks as in Ack
    Reset    0x06  session u64, next u32, known u8            server: I hold no such session;
                                                              if known == 1 it ended, and every
                                                              seq below ``next`` had arrived

Data flags: bit 0 MORE (more fragments of this message follow), bit 1
KEEPALIVE (an empty packet that only asks for an ack). Other bits must be 0.

A datagram whose first byte is not MAGIC is plain text (see ``_plaintext``).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Final, TypeAlias

from ._errors import LocalProtocolError, RemoteProtocolError

MAGIC: Final = 0xF9
VERSION: Final = 1

FLAG_MORE: Final = 0x01
FLAG_KEEPALIVE: Final = 0x02
_KNOWN_FLAGS: Final = FLAG_MORE | FLAG_KEEPALIVE

_HEADER: Final = struct.Struct("!BBB")
_HELLO: Final = struct.Struct("!Q")
_WELCOME: Final = struct.Struct("!QQI")
_DATA: Final = struct.Struct("!QIIB")
_ACK: Final = struct.Struct("!QIIQ")
_BYE: Final = struct.Struct("!QII")
_RESET: Final = struct.Struct("!QIB")
_CRC: Final = struct.Struct("!I")
#: A whole Data header in one call (see encode_data).
_DATA_FRAME: Final = struct.Struct("!BBBQIIB")

HEADER_SIZE: Final = _HEADER.size
#: Bytes a Data frame spends besides its payload.
DATA_OVERHEAD: Final = _HEADER.size + _DATA.size + _CRC.size
#: Bits in the Ack bitmap: how far past ``next`` an ack can report arrivals.
ACK_BITS: Final = 64

_U32: Final = 2**32 - 1
_U64: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Hello:
    """Client to server: please give me a session. ``nonce`` is echoed back."""

    nonce: int


@dataclass(frozen=True, slots=True)
class Welcome:
    """Server to client: your hello with ``nonce`` now owns session ``session``; the
    server forgets a session silent for ``expiry_ms`` milliseconds."""

    nonce: int
    session: int
    expiry_ms: int


@dataclass(frozen=True, slots=True)
class Data:
    """One reliable packet of ``session``: a message, or a fragment of one."""

    session: int
    pn: int
    seq: int
    flags: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    """Which reliable packets of ``session`` arrived (see the layout table)."""

    session: int
    pn: int
    next: int
    bitmap: int


@dataclass(frozen=True, slots=True)
class Bye:
    """Client to server: session ``session`` is over; every seq below ``next`` arrived
    (so the last acks, if lost, do not make delivered messages look undelivered)."""

    session: int
    pn: int
    next: int


@dataclass(frozen=True, slots=True)
class Reset:
    """Server to client: I hold no session ``session``. If ``known``, it ended here
    recently and every packet below ``next`` had arrived; otherwise (a restart)
    nothing is known of it."""

    session: int
    next: int = 0
    known: bool = False


Frame: TypeAlias = Hello | Welcome | Data | Ack | Bye | Reset
#: Frames that belong to an established session and carry a packet number.
SessionFrame: TypeAlias = Data | Ack | Bye

_CODES: Final[dict[type[Frame], int]] = {
    Hello: 0x01,
    Welcome: 0x02,
    Data: 0x03,
    Ack: 0x04,
    Bye: 0x05,
    Reset: 0x06,
}


def is_frame(data: bytes) -> bool:
    """Whether ``data`` claims to be a frame (valid or not) rather than plain text."""
    return len(data) > 0 and data[0] == MAGIC


def _pack(layout: struct.Struct, *fields: int) -> bytes:
    try:
        return layout.pack(*fields)
    except struct.error as exc:
        raise LocalProtocolError(f"a frame field is out of range: {exc}") from None


def encode_frame(frame: Frame) -> bytes:
    """Return the bytes of ``frame``.

    Raises :class:`LocalProtocolError` if a field is out of range.
    """
    header = _HEADER.pack(MAGIC, VERSION, _CODES[type(frame)])
    match frame:
        case Hello(nonce=nonce):
            body = _pack(_HELLO, nonce)
        case Welcome(nonce=nonce, session=session, expiry_ms=expiry_ms):
            body = _pack(_WELCOME, nonce, session, expiry_ms)
        case Data(session=session, pn=pn, seq=seq, flags=flags, payload=payload):
            return encode_data(session, pn, seq, flags, payload)
        case Ack(session=session, pn=pn, next=next_seq, bitmap=bitmap):
            body = _pack(_ACK, session, pn, next_seq, bitmap)
        case Bye(session=session, pn=pn, next=next_seq):
            body = _pack(_BYE, session, pn, next_seq)
        case Reset(session=session, next=next_seq, known=known):
            body = _pack(_RESET, session, next_seq, int(known))
    data = header + body
    return data + _CRC.pack(zlib.crc32(data))


def encode_data(session: int, pn: int, seq: int, flags: int, payload: bytes) -> bytes:
    """``encode_frame(Data(session, pn, seq, flags, payload))``, without building the frame.

    A relay encodes one Data frame per member per message: this is its hot path,
    so the header is packed in one call.
    """
    if flags & ~_KNOWN_FLAGS:
        raise LocalProtocolError(f"unknown data flags {flags:#04x}")
    data = _pack(_DATA_FRAME, MAGIC, VERSION, _CODES[Data], session, pn, seq, flags) + payload
    return data + _CRC.pack(zlib.crc32(data))


def _fixed(name: str, body: bytes, layout: struct.Struct) -> tuple[int, ...]:
    if len(body) != layout.size:
        raise RemoteProtocolError(
            f"{name} body has {len(body)} bytes, expected {layout.size}", reason="bad-length"
        )
    return layout.unpack(body)


def _decode_data(body: bytes) -> Data:
    if len(body) < _DATA.size:
        raise RemoteProtocolError("data frame is truncated", reason="truncated")
    session, pn, seq, flags = _DATA.unpack_from(body)
    if flags & ~_KNOWN_FLAGS:
        raise RemoteProtocolError(f"unknown data flags {flags:#04x}", reason="bad-flags")
    return Data(session, pn, seq, flags, body[_DATA.size :])


def decode_frame_untrusted(data: bytes) -> Frame:
    """Parse one datagram from the network into a frame.

    Raises :class:`RemoteProtocolError` (and nothing else) if ``data`` is not a
    valid frame of our version; its ``reason`` says why, for counting.
    """
    if len(data) < _HEADER.size + _CRC.size:
        raise RemoteProtocolError(f"frame of {len(data)} bytes is truncated", reason="truncated")
    magic, version, code = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise RemoteProtocolError(f"first byte {magic:#04x} is not a frame", reason="not-a-frame")
    if version != VERSION:
        raise RemoteProtocolError(f"frame version {version} is not {VERSION}", reason="bad-version")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(memoryview(data)[: -_CRC.size]) != crc:
        raise RemoteProtocolError("frame checksum does not match", reason="bad-checksum")
    body = data[_HEADER.size : -_CRC.size]
    if code == 0x03:  # the common case first
        return _decode_data(body)
    if code == 0x04:
        return Ack(*_fixed("ack", body, _ACK))
    if code == 0x01:
        return Hello(*_fixed("hello", body, _HELLO))
    if code == 0x02:
        return Welcome(*_fixed("welcome", body, _WELCOME))
    if code == 0x05:
        return Bye(*_fixed("bye", body, _BYE))
    if code == 0x06:
        session, next_seq, known = _fixed("reset", body, _RESET)
        if known > 1:
            raise RemoteProtocolError(f"reset flag {known} is not 0 or 1", reason="bad-flags")
        return Reset(session, next_seq, bool(known))
    raise RemoteProtocolError(f"unknown frame type {code:#04x}", reason="bad-type")
