"""The byte layout of trio_udpchat frames, and nothing else.

Every frame starts with a three-byte header::

    offset  size  field
    0       1     MAGIC 0xF9: a byte that cannot start a UTF-8 sequence
                  (0xF5-0xFF never can), so a frame is never mistaken for text
    1       1     VERSION, currently 4; any other version is dropped
    2       1     frame type, below

A *clear* frame follows with a body that depends on the type, and last a
CRC-32 (zlib's, u32) of everything before it, so a bit flip that slips past
UDP's 16-bit checksum is dropped rather than believed. Integers are big-endian;
``pn`` is the sender's packet number, one per datagram, strictly increasing;
``seq`` numbers the reliable packets of a session; both are sent modulo 2**32::

    type       code  body                                       meaning
    Hello      0x01  nonce u64, cookie 16 bytes,                client asks for a session;
                     proof (0 or 40 bytes)                      cookie all zero: none yet
    Welcome    0x02  nonce u64, session u64, expiry_ms u32      server grants one (echoes nonce);
                                                                it forgets sessions silent this long
    Data       0x03  session u64, pn u32, seq u32, flags u8,    one reliable packet: a message
                     payload (rest)                             or a fragment of one
    Ack        0x04  session u64, pn u32, next u32, bitmap u64, every seq below ``next`` arrived,
                     delay u32                                  and ``next + 1 + i`` per set bit i;
                                                                sent ``delay`` microseconds after
                                                                the last new packet arrived
    Bye        0x05  session u64, pn u32, next u32              client leaves; ``next`` acks
                                                                as in Ack
    Reset      0x06  session u64, next u32, known u8            server: I hold no such session;
                                                                if known == 1 it ended, and every
                                                                seq below ``next`` had arrived
    Challenge  0x07  nonce u64, cookie 16 bytes, keyed u8,      server: echo this cookie in your
                     salt 16 bytes                              hello; keyed == 1: the room has a
                                                                passphrase, derive its key with salt
    Denied     0x08  nonce u64                                  server: that hello's proof is wrong

Data flags: bit 0 MORE (more fragments of this message follow), bit 1
KEEPALIVE (an empty packet that only asks for an ack), bit 2 BUNDLE (the
payload is several whole messages, each a u16 length and its bytes; alone, never
with another flag). Other bits must be 0.

A *sealed* frame (type 0x10) is how a room with a passphrase sends Welcome,
Data, Ack, Bye and Reset: after the header come a 24-byte nonce and the
XChaCha20-Poly1305 encryption (with its 16-byte tag) of ``code u8 + body`` of
the clear frame, the header authenticated as associated data (``_sealed``).
A Hello's proof, in a room with a passphrase, is a seal of nothing with the
hello's first 27 bytes as associated data: the server checks that the client
knows the key before it grants a session. Hello, Challenge and Denied are
never sealed: they come before a key can be known or checked.

A datagram whose first byte is not MAGIC is plain text (see ``_plaintext``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ._errors import LocalProtocolError, RemoteProtocolError

MAGIC: Final = 0xF9
VERSION: Final = 4

FLAG_MORE: Final = 0x01
FLAG_KEEPALIVE: Final = 0x02
FLAG_BUNDLE: Final = 0x04
#: Every valid flags byte: a bundle holds whole messages, so it is never a fragment
#: or a keepalive too.
_VALID_FLAGS: Final = frozenset(
    {0, FLAG_MORE, FLAG_KEEPALIVE, FLAG_MORE | FLAG_KEEPALIVE, FLAG_BUNDLE}
)

_HEADER: Final = struct.Struct("!BBB")
_HELLO: Final = struct.Struct("!Q16s")
_CHALLENGE: Final = struct.Struct("!Q16sB16s")
_DENIED: Final = struct.Struct("!Q")
_WELCOME: Final = struct.Struct("!QQI")
_DATA: Final = struct.Struct("!QIIB")
_ACK: Final = struct.Struct("!QIIQI")
_BYE: Final = struct.Struct("!QII")
_RESET: Final = struct.Struct("!QIB")
_CRC: Final = struct.Struct("!I")
#: Each message in a bundle's payload starts with its length.
_PART: Final = struct.Struct("!H")
_SEALED_HEADER: Final = _HEADER.pack(MAGIC, VERSION, 0x10)
#: A whole Data header in one call (see encode_data).
_DATA_FRAME: Final = struct.Struct("!BBBQIIB")
#: A Data frame's code and fields, as a sealed frame encrypts them.
_DATA_INNER: Final = struct.Struct("!BQIIB")

HEADER_SIZE: Final = _HEADER.size
#: The type code of a sealed frame.
SEALED: Final = 0x10
#: Sizes of the AEAD's nonce and tag in a sealed frame.
AEAD_NONCE_SIZE: Final = 24
AEAD_TAG_SIZE: Final = 16
#: What sealing adds to a frame's code and body (header, nonce, tag).
SEALED_OVERHEAD: Final = _HEADER.size + AEAD_NONCE_SIZE + AEAD_TAG_SIZE
#: Bytes a clear Data frame spends besides its payload.
DATA_OVERHEAD: Final = _HEADER.size + _DATA.size + _CRC.size
#: Bytes a sealed Data frame spends besides its payload.
SEALED_DATA_OVERHEAD: Final = SEALED_OVERHEAD + 1 + _DATA.size
COOKIE_SIZE: Final = 16
#: A hello without a cookie carries these bytes in its place.
NO_COOKIE: Final = bytes(COOKIE_SIZE)
#: A hello's proof: a seal of nothing (nonce and tag).
PROOF_SIZE: Final = AEAD_NONCE_SIZE + AEAD_TAG_SIZE
SALT_SIZE: Final = 16
#: Bits in the Ack bitmap: how far past ``next`` an ack can report arrivals.
ACK_BITS: Final = 64

_U32: Final = 2**32 - 1
_U64: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Hello:
    """Client to server: please give me a session. ``nonce`` is echoed back;
    ``cookie`` is the one the server's :class:`Challenge` gave (or
    :data:`NO_COOKIE`); ``proof`` shows the client knows the room key (or is empty)."""

    nonce: int
    cookie: bytes = NO_COOKIE
    proof: bytes = b""


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
    """Which reliable packets of ``session`` arrived (see the layout table).

    ``delay`` is how long, in microseconds, the receiver held this ack after the
    last new packet arrived (acks may wait, see ``Config.ack_delay``): the sender
    subtracts it from its round-trip sample, as QUIC does (RFC 9002 §5.3).
    """

    session: int
    pn: int
    next: int
    bitmap: int
    delay: int = 0


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


@dataclass(frozen=True, slots=True)
class Challenge:
    """Server to client: echo ``cookie`` in a new hello (so your address is proven).
    ``salt`` is empty if the room has no passphrase, else the salt of its key."""

    nonce: int
    cookie: bytes
    salt: bytes = b""


@dataclass(frozen=True, slots=True)
class Denied:
    """Server to client: the hello with ``nonce`` did not prove the room key."""

    nonce: int


Frame: TypeAlias = Hello | Welcome | Data | Ack | Bye | Reset | Challenge | Denied
#: Frames sent sealed when the room has a passphrase.
SealableFrame: TypeAlias = Welcome | Data | Ack | Bye | Reset
#: Frames that belong to an established session and carry a packet number.
SessionFrame: TypeAlias = Data | Ack | Bye

_CODES: Final[dict[type[Frame], int]] = {
    Hello: 0x01,
    Welcome: 0x02,
    Data: 0x03,
    Ack: 0x04,
    Bye: 0x05,
    Reset: 0x06,
    Challenge: 0x07,
    Denied: 0x08,
}


_DATA_CODE: Final = _CODES[Data]


def is_frame(data: bytes) -> bool:
    """Whether ``data`` claims to be a frame (valid or not) rather than plain text."""
    return len(data) > 0 and data[0] == MAGIC


def _pack(layout: struct.Struct, *fields: int | bytes) -> bytes:
    try:
        return layout.pack(*fields)
    except struct.error as exc:
        raise LocalProtocolError(f"a frame field is out of range: {exc}") from None


def _check_flags(flags: int) -> None:
    if flags not in _VALID_FLAGS:
        raise LocalProtocolError(f"invalid data flags {flags:#04x}")


def encode_frame(frame: Frame) -> bytes:
    """Return the bytes of ``frame`` as a clear frame.

    Raises :class:`LocalProtocolError` if a field is out of range.
    """
    if isinstance(frame, Data):  # the hot path: one struct call
        return encode_data(frame.session, frame.pn, frame.seq, frame.flags, frame.payload)
    data = _HEADER.pack(MAGIC, VERSION, _CODES[type(frame)]) + _encode_body(frame)
    return data + _CRC.pack(zlib.crc32(data))


def encode_data(session: int, pn: int, seq: int, flags: int, payload: bytes) -> bytes:
    """``encode_frame(Data(session, pn, seq, flags, payload))``, without building the frame.

    A relay encodes one Data frame per member per packet (a message, or a bundle):
    this is its hot path, so the header is packed in one call.
    """
    _check_flags(flags)
    header = _pack(_DATA_FRAME, MAGIC, VERSION, _DATA_CODE, session, pn, seq, flags)
    return b"".join((header, payload, _CRC.pack(zlib.crc32(payload, zlib.crc32(header)))))


def encode_bundle(parts: Sequence[bytes]) -> bytes:
    """The payload of a ``FLAG_BUNDLE`` Data frame carrying ``parts``, whole messages."""
    pack = _PART.pack
    try:
        return b"".join([piece for part in parts for piece in (pack(len(part)), part)])
    except struct.error as exc:
        raise LocalProtocolError(f"a bundled message is too long: {exc}") from None


def bundle_overhead(count: int) -> int:
    """Bytes a bundle of ``count`` messages spends besides their own."""
    return count * _PART.size


def split_bundle(payload: bytes) -> list[bytes]:
    """The messages in a bundle's payload, in order.

    Raises :class:`RemoteProtocolError` (reason ``bad-bundle``) unless the lengths
    tile the payload exactly with at least one message.
    """
    parts = []
    size, end, offset = _PART.size, len(payload), 0
    unpack = _PART.unpack_from
    while offset < end:
        if offset + size > end:
            break
        (length,) = unpack(payload, offset)
        offset += size + length
        if offset > end:
            break
        parts.append(payload[offset - length : offset])
    if offset != end or not parts:
        raise RemoteProtocolError("bundle lengths do not fit its payload", reason="bad-bundle")
    return parts


def encode_data_inner(session: int, pn: int, seq: int, flags: int, payload: bytes) -> bytes:
    """``encode_inner(Data(session, pn, seq, flags, payload))``, without building the
    frame: a sealed relay's hot path, as :func:`encode_data` is a clear one's."""
    _check_flags(flags)
    return _pack(_DATA_INNER, _DATA_CODE, session, pn, seq, flags) + payload


def encode_inner(frame: Frame) -> bytes:
    """``code + body`` of ``frame``: what a sealed frame encrypts."""
    return bytes((_CODES[type(frame)],)) + _encode_body(frame)


def sealed_header() -> bytes:
    """The three header bytes of a sealed frame (its associated data)."""
    return _SEALED_HEADER


def _fixed_bytes(value: bytes, size: int, what: str) -> bytes:
    if len(value) != size:
        raise LocalProtocolError(f"{what} must have {size} bytes, not {len(value)}")
    return value


def _encode_body(frame: Frame) -> bytes:
    match frame:
        case Hello(nonce=nonce, cookie=cookie, proof=proof):
            if len(proof) not in (0, PROOF_SIZE):
                raise LocalProtocolError(f"a proof has 0 or {PROOF_SIZE} bytes")
            return _pack(_HELLO, nonce, _fixed_bytes(cookie, COOKIE_SIZE, "a cookie")) + proof
        case Welcome(nonce=nonce, session=session, expiry_ms=expiry_ms):
            return _pack(_WELCOME, nonce, session, expiry_ms)
        case Data(session=session, pn=pn, seq=seq, flags=flags, payload=payload):
            _check_flags(flags)
            return _pack(_DATA, session, pn, seq, flags) + payload
        case Ack(session=session, pn=pn, next=next_seq, bitmap=bitmap, delay=delay):
            return _pack(_ACK, session, pn, next_seq, bitmap, delay)
        case Bye(session=session, pn=pn, next=next_seq):
            return _pack(_BYE, session, pn, next_seq)
        case Reset(session=session, next=next_seq, known=known):
            return _pack(_RESET, session, next_seq, int(known))
        case Challenge(nonce=nonce, cookie=cookie, salt=salt):
            keyed = bool(salt)
            salt = _fixed_bytes(salt, SALT_SIZE, "a salt") if keyed else bytes(SALT_SIZE)
            cookie = _fixed_bytes(cookie, COOKIE_SIZE, "a cookie")
            return _pack(_CHALLENGE, nonce, cookie, int(keyed), salt)
        case Denied(nonce=nonce):
            return _pack(_DENIED, nonce)


def _fixed(name: str, body: bytes, layout: struct.Struct) -> tuple[Any, ...]:
    if len(body) != layout.size:
        raise RemoteProtocolError(
            f"{name} body has {len(body)} bytes, expected {layout.size}", reason="bad-length"
        )
    return layout.unpack(body)


def _decode_data(body: bytes) -> Data:
    if len(body) < _DATA.size:
        raise RemoteProtocolError("data frame is truncated", reason="truncated")
    session, pn, seq, flags = _DATA.unpack_from(body)
    if flags not in _VALID_FLAGS:
        raise RemoteProtocolError(f"invalid data flags {flags:#04x}", reason="bad-flags")
    return Data(session, pn, seq, flags, body[_DATA.size :])


def frame_type(data: bytes) -> int | None:
    """The type code of a frame (sealed: :data:`SEALED`), ``None`` if too short to say."""
    return data[2] if len(data) >= _HEADER.size else None


def decode_frame_untrusted(data: bytes) -> Frame:
    """Parse one clear frame from the network.

    Raises :class:`RemoteProtocolError` (and nothing else) if ``data`` is not a
    valid clear frame of our version; its ``reason`` says why, for counting.
    """
    if len(data) < _HEADER.size + _CRC.size:
        raise RemoteProtocolError(f"frame of {len(data)} bytes is truncated", reason="truncated")
    _check_header(data)
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(memoryview(data)[: -_CRC.size]) != crc:
        raise RemoteProtocolError("frame checksum does not match", reason="bad-checksum")
    return _decode_body(data[2], data[_HEADER.size : -_CRC.size])


def check_sealed_header_untrusted(data: bytes) -> None:
    """Raise :class:`RemoteProtocolError` unless ``data`` starts as a sealed frame of ours."""
    if len(data) < SEALED_OVERHEAD + 1:
        raise RemoteProtocolError(f"frame of {len(data)} bytes is truncated", reason="truncated")
    _check_header(data)
    if data[2] != SEALED:
        raise RemoteProtocolError("frame is not sealed", reason="not-sealed")


def decode_inner_untrusted(inner: bytes) -> Frame:
    """Parse the decrypted ``code + body`` of a sealed frame; only sealable types."""
    if not inner:
        raise RemoteProtocolError("sealed frame is empty", reason="truncated")
    frame = _decode_body(inner[0], inner[1:])
    if isinstance(frame, Hello | Challenge | Denied):
        raise RemoteProtocolError("a handshake frame is never sealed", reason="bad-type")
    return frame


def _check_header(data: bytes) -> None:
    magic, version, _ = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise RemoteProtocolError(f"first byte {magic:#04x} is not a frame", reason="not-a-frame")
    if version != VERSION:
        raise RemoteProtocolError(f"frame version {version} is not {VERSION}", reason="bad-version")


def _decode_body(code: int, body: bytes) -> Frame:
    if code == 0x03:  # the common case first
        return _decode_data(body)
    if code == 0x04:
        return Ack(*_fixed("ack", body, _ACK))
    if code == 0x01:
        return _decode_hello(body)
    if code == 0x02:
        return Welcome(*_fixed("welcome", body, _WELCOME))
    if code == 0x05:
        return Bye(*_fixed("bye", body, _BYE))
    if code == 0x06:
        session, next_seq, known = _fixed("reset", body, _RESET)
        if known > 1:
            raise RemoteProtocolError(f"reset flag {known} is not 0 or 1", reason="bad-flags")
        return Reset(session, next_seq, bool(known))
    if code == 0x07:
        nonce, cookie, keyed, salt = _fixed("challenge", body, _CHALLENGE)
        if keyed > 1 or (not keyed and any(salt)):
            raise RemoteProtocolError(
                "challenge flag is not 0 or 1 (0: no salt)", reason="bad-flags"
            )
        return Challenge(nonce, cookie, salt if keyed else b"")
    if code == 0x08:
        return Denied(*_fixed("denied", body, _DENIED))
    raise RemoteProtocolError(f"unknown frame type {code:#04x}", reason="bad-type")


def _decode_hello(body: bytes) -> Hello:
    if len(body) not in (_HELLO.size, _HELLO.size + PROOF_SIZE):
        raise RemoteProtocolError(
            f"hello body has {len(body)} bytes, expected {_HELLO.size}"
            f" or {_HELLO.size + PROOF_SIZE}",
            reason="bad-length",
        )
    nonce, cookie = _HELLO.unpack_from(body)
    return Hello(nonce, cookie, body[_HELLO.size :])
