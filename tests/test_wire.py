"""Tier 1 and 2 tests of the frame codec in ``trio_udpchat._wire``.

The golden table is written out byte by byte from the layout table in the
module docstring, never produced by the encoder it checks.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core_helpers import checksummed
from trio_udpchat._errors import LocalProtocolError, RemoteProtocolError
from trio_udpchat._wire import (
    ACK_BITS,
    DATA_OVERHEAD,
    FLAG_BUNDLE,
    FLAG_KEEPALIVE,
    FLAG_MORE,
    HEADER_SIZE,
    MAGIC,
    SEALED_DATA_OVERHEAD,
    VERSION,
    Ack,
    Bye,
    Challenge,
    Data,
    Denied,
    Frame,
    Hello,
    Reset,
    Welcome,
    bundle_overhead,
    decode_frame_untrusted,
    encode_bundle,
    encode_data,
    encode_data_inner,
    encode_frame,
    encode_inner,
    is_frame,
    split_bundle,
)

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
FRAME_TYPES = (Hello, Welcome, Data, Ack, Bye, Reset, Challenge, Denied)
ZERO16 = " ".join(["00"] * 16)
COOKIE = bytes(range(0xC0, 0xD0))
COOKIE_HEX = COOKIE.hex(" ")
PROOF = bytes(range(40))
SALT = bytes(range(0x50, 0x60))

#: Every ``reason`` that ``decode_frame_untrusted`` gives a RemoteProtocolError.
KNOWN_REASONS = frozenset(
    {
        "truncated",
        "not-a-frame",
        "bad-version",
        "bad-checksum",
        "bad-type",
        "bad-length",
        "bad-flags",
    }
)

#: Each frame's bytes before its CRC-32 trailer, written out from the layout table;
#: the trailer is computed by zlib (an implementation independent of ours).
GOLDEN: list[tuple[Frame, str]] = [
    (Hello(nonce=0x0102030405060708), "f9 04 01  01 02 03 04 05 06 07 08  " + ZERO16),
    (Hello(nonce=0), "f9 04 01  00 00 00 00 00 00 00 00  " + ZERO16),
    (Hello(nonce=3, cookie=COOKIE), "f9 04 01  00 00 00 00 00 00 00 03  " + COOKIE_HEX),
    (
        Hello(nonce=3, cookie=COOKIE, proof=PROOF),
        "f9 04 01  00 00 00 00 00 00 00 03  " + COOKIE_HEX + "  " + PROOF.hex(" "),
    ),
    (
        Challenge(nonce=U64_MAX, cookie=COOKIE),
        "f9 04 07  ff ff ff ff ff ff ff ff  " + COOKIE_HEX + "  00  " + ZERO16,
    ),
    (
        Challenge(nonce=9, cookie=COOKIE, salt=SALT),
        "f9 04 07  00 00 00 00 00 00 00 09  " + COOKIE_HEX + "  01  " + SALT.hex(" "),
    ),
    (Denied(nonce=0x0102030405060708), "f9 04 08  01 02 03 04 05 06 07 08"),
    (
        Welcome(nonce=1, session=U64_MAX, expiry_ms=60_000),
        "f9 04 02  00 00 00 00 00 00 00 01  ff ff ff ff ff ff ff ff  00 00 ea 60",
    ),
    (
        Data(session=42, pn=0, seq=0, flags=0, payload=b""),
        "f9 04 03  00 00 00 00 00 00 00 2a  00 00 00 00  00 00 00 00  00",
    ),
    (
        Data(session=7, pn=1, seq=2, flags=0, payload=b"hi"),
        "f9 04 03  00 00 00 00 00 00 00 07  00 00 00 01  00 00 00 02  00  68 69",
    ),
    (
        # A first fragment (MORE): h, é (c3 a9), l, l, o, space, 🎉 U+1F389 (f0 9f 8e 89)
        Data(
            session=U64_MAX,
            pn=U32_MAX,
            seq=0x80000000,
            flags=FLAG_MORE,
            payload="héllo 🎉".encode(),
        ),
        "f9 04 03  ff ff ff ff ff ff ff ff  ff ff ff ff  80 00 00 00  01"
        "  68 c3 a9 6c 6c 6f 20 f0 9f 8e 89",
    ),
    (
        Data(
            session=0x0102030405060708,
            pn=0x0A0B0C0D,
            seq=0x11223344,
            flags=FLAG_KEEPALIVE,
            payload=b"",
        ),
        "f9 04 03  01 02 03 04 05 06 07 08  0a 0b 0c 0d  11 22 33 44  02",
    ),
    (
        # Payloads are opaque bytes: a fragment may end inside a UTF-8 sequence.
        Data(session=1, pn=2, seq=3, flags=FLAG_MORE | FLAG_KEEPALIVE, payload=b"\xc3\x00\xff"),
        "f9 04 03  00 00 00 00 00 00 00 01  00 00 00 02  00 00 00 03  03  c3 00 ff",
    ),
    (
        # A bundle of two whole messages, "hi" and "", each after its u16 length.
        Data(session=1, pn=2, seq=3, flags=FLAG_BUNDLE, payload=b"\x00\x02hi\x00\x00"),
        "f9 04 03  00 00 00 00 00 00 00 01  00 00 00 02  00 00 00 03  04  00 02 68 69  00 00",
    ),
    (
        Ack(session=5, pn=3, next=0x10, bitmap=0b1011),
        "f9 04 04  00 00 00 00 00 00 00 05  00 00 00 03  00 00 00 10  00 00 00 00 00 00 00 0b"
        "  00 00 00 00",
    ),
    (
        # Held 25 ms (25,000 us = 0x61a8) after the newest packet it reports arrived.
        Ack(session=U64_MAX, pn=0, next=U32_MAX, bitmap=0x8000000000000001, delay=25_000),
        "f9 04 04  ff ff ff ff ff ff ff ff  00 00 00 00  ff ff ff ff  80 00 00 00 00 00 00 01"
        "  00 00 61 a8",
    ),
    (
        Ack(session=1, pn=2, next=3, bitmap=0, delay=U32_MAX),
        "f9 04 04  00 00 00 00 00 00 00 01  00 00 00 02  00 00 00 03  00 00 00 00 00 00 00 00"
        "  ff ff ff ff",
    ),
    (
        Bye(session=0xDEADBEEF, pn=9, next=0x0102),
        "f9 04 05  00 00 00 00 de ad be ef  00 00 00 09  00 00 01 02",
    ),
    (Reset(session=0x8000000000000000), "f9 04 06  80 00 00 00 00 00 00 00  00 00 00 00  00"),
    (
        Reset(session=7, next=0x01020304, known=True),
        "f9 04 06  00 00 00 00 00 00 00 07  01 02 03 04  01",
    ),
]

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(300, settings().max_examples)


def _check_untrusted(data: bytes) -> None:
    """Decode ``data``: a frame must re-encode to the same bytes, an error must be known."""
    outcome: Frame | RemoteProtocolError
    try:
        outcome = decode_frame_untrusted(data)
    except RemoteProtocolError as exc:
        outcome = exc
    if isinstance(outcome, RemoteProtocolError):
        assert outcome.reason in KNOWN_REASONS, outcome.reason
        assert str(outcome)
    else:
        assert isinstance(outcome, FRAME_TYPES)
        assert encode_frame(outcome) == data


def _reason(data: bytes) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame_untrusted(data)
    return info.value.reason


def _frame_bytes(code: int, body_size: int) -> bytes:
    return checksummed(bytes([MAGIC, VERSION, code]) + bytes(body_size))


# -- golden vectors ------------------------------------------------------------


def with_crc(hex_bytes: str) -> bytes:
    data = bytes.fromhex(hex_bytes)
    return data + zlib.crc32(data).to_bytes(4, "big")


@pytest.mark.parametrize(("frame", "hex_bytes"), GOLDEN)
def test_golden_encode(frame: Frame, hex_bytes: str) -> None:
    assert encode_frame(frame) == with_crc(hex_bytes)


@pytest.mark.parametrize(("frame", "hex_bytes"), GOLDEN)
def test_golden_decode(frame: Frame, hex_bytes: str) -> None:
    assert decode_frame_untrusted(with_crc(hex_bytes)) == frame


def test_a_known_crc_vector() -> None:
    # CRC-32 of b"123456789" is 0xCBF43926 (the standard check value).
    assert zlib.crc32(b"123456789") == 0xCBF43926


@pytest.mark.parametrize(("frame", "hex_bytes"), GOLDEN)
def test_any_single_bit_flip_is_caught(frame: Frame, hex_bytes: str) -> None:
    data = with_crc(hex_bytes)
    for bit in range(3 * 8, len(data) * 8):  # past the header, which has its own checks
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(RemoteProtocolError) as caught:
            decode_frame_untrusted(bytes(flipped))
        assert caught.value.reason == "bad-checksum"


def test_golden_table_covers_every_frame_type_and_flag() -> None:
    assert {type(frame) for frame, _ in GOLDEN} == set(FRAME_TYPES)
    flags = {frame.flags for frame, _ in GOLDEN if isinstance(frame, Data)}
    assert flags == {0, FLAG_MORE, FLAG_KEEPALIVE, FLAG_MORE | FLAG_KEEPALIVE, FLAG_BUNDLE}
    assert any(isinstance(frame, Ack) and frame.bitmap >> 63 for frame, _ in GOLDEN)


def test_layout_constants() -> None:
    assert (MAGIC, VERSION, HEADER_SIZE, DATA_OVERHEAD, ACK_BITS) == (0xF9, 4, 3, 24, 64)
    # Sealed: header 3, nonce 24, tag 16, then the code 1 and the fields 17.
    assert SEALED_DATA_OVERHEAD == 61
    assert (FLAG_MORE, FLAG_KEEPALIVE, FLAG_BUNDLE) == (0x01, 0x02, 0x04)


# -- hypothesis: round trip ------------------------------------------------------

u32 = st.integers(min_value=0, max_value=U32_MAX)
u64 = st.integers(min_value=0, max_value=U64_MAX)
known_flags = st.sampled_from(
    [0, FLAG_MORE, FLAG_KEEPALIVE, FLAG_MORE | FLAG_KEEPALIVE, FLAG_BUNDLE]
)
cookies = st.binary(min_size=16, max_size=16)
frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(Hello, u64, cookies, st.sampled_from([b"", PROOF])),
    st.builds(Challenge, u64, cookies, st.sampled_from([b"", SALT])),
    st.builds(Denied, u64),
    st.builds(Welcome, u64, u64, u32),
    st.builds(Data, u64, u32, u32, known_flags, st.binary(max_size=64)),
    st.builds(Ack, u64, u32, u32, u64, u32),
    st.builds(Bye, u64, u32, u32),
    st.builds(Reset, u64, u32, st.booleans()),
)


@given(frames)
def test_round_trip(frame: Frame) -> None:
    data = encode_frame(frame)
    assert is_frame(data)
    assert decode_frame_untrusted(data) == frame


@given(u64, u32, u32, known_flags, st.binary(max_size=1200))
def test_data_frame_size_is_overhead_plus_payload(
    session: int, pn: int, seq: int, flags: int, payload: bytes
) -> None:
    assert len(encode_frame(Data(session, pn, seq, flags, payload))) == DATA_OVERHEAD + len(payload)


@given(u64, u32, u32, known_flags, st.binary(max_size=1200))
def test_the_fast_data_encoder_is_the_data_frame(
    session: int, pn: int, seq: int, flags: int, payload: bytes
) -> None:
    # Sessions call encode_data directly (the relay's hot path): same bytes, same frame.
    data = encode_data(session, pn, seq, flags, payload)
    assert decode_frame_untrusted(data) == Data(session, pn, seq, flags, payload)


@given(u64, u32, u32, known_flags, st.binary(max_size=1200))
def test_the_fast_inner_encoder_is_the_data_frame_sealed_frames_encrypt(
    session: int, pn: int, seq: int, flags: int, payload: bytes
) -> None:
    inner = encode_data_inner(session, pn, seq, flags, payload)
    assert inner == encode_inner(Data(session, pn, seq, flags, payload))


@pytest.mark.parametrize("encode", [encode_data, encode_data_inner])
@pytest.mark.parametrize(
    "fields", [(2**64, 0, 0, 0), (0, 2**32, 0, 0), (0, 0, -1, 0), (0, 0, 0, 8), (0, 0, 0, 5)]
)
def test_the_fast_data_encoders_refuse_what_encode_frame_refuses(
    encode: Callable[..., bytes], fields: tuple[int, int, int, int]
) -> None:
    with pytest.raises(LocalProtocolError):
        encode(*fields, b"")


@pytest.mark.parametrize("flags", [0x05, 0x06, 0x08, 0x80, 0xFC, 0xFF])
def test_invalid_flags_cannot_be_encoded(flags: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(Data(1, 2, 3, flags, b""))


@pytest.mark.parametrize(
    "frame",
    [
        Hello(-1),
        Hello(2**64),
        Welcome(2**64, 0, 60_000),
        Welcome(0, -1, 60_000),
        Data(2**64, 0, 0, 0, b"x"),
        Data(0, 2**32, 0, 0, b""),
        Data(0, 0, -1, 0, b""),
        Ack(0, 0, 2**32, 0),
        Ack(0, -1, 0, 0),
        Ack(0, 0, 0, 2**64),
        Ack(0, 0, 0, 0, 2**32),
        Ack(0, 0, 0, 0, -1),
        Bye(-5, 0, 0),
        Bye(0, 2**32, 0),
        Bye(0, 0, 2**32),
        Reset(2**70),
        Hello(1, cookie=b"short"),
        Hello(1, proof=b"x" * 39),
        Challenge(1, cookie=bytes(17)),
        Challenge(1, cookie=COOKIE, salt=bytes(15)),
        Denied(-1),
    ],
)
def test_out_of_range_field_is_local_error(frame: Frame) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(frame)


# -- hypothesis: untrusted input ---------------------------------------------------

header = st.sampled_from([bytes([MAGIC, VERSION, code]) for code in [*range(10), 0x10]])
#: Mostly-garbage bytes, half of them behind a plausible header so the body parsers run.
untrusted_bytes = st.one_of(
    st.binary(max_size=40),
    st.builds(bytes.__add__, header, st.binary(max_size=32)),
)


@settings(max_examples=MORE_EXAMPLES)
@given(untrusted_bytes)
def test_arbitrary_bytes_decode_or_remote_error(data: bytes) -> None:
    _check_untrusted(data)


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A valid frame, then bit-flipped, truncated or extended."""
    data = bytearray(encode_frame(draw(frames)))
    how = draw(st.sampled_from(["flip", "truncate", "extend"]))
    if how == "flip":
        bit = draw(st.integers(0, len(data) * 8 - 1))
        data[bit // 8] ^= 1 << (bit % 8)
    elif how == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    else:
        data += draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@settings(max_examples=MORE_EXAMPLES)
@given(mutated_frames())
def test_mutated_frames_decode_or_remote_error(data: bytes) -> None:
    _check_untrusted(data)


@given(
    st.sampled_from(
        [
            Welcome(1, 2, 60_000),
            Ack(1, 2, 3, 4),
            Bye(3, 4, 5),
            Reset(4),
            Challenge(1, COOKIE, SALT),
            Denied(5),
        ]
    ),
    st.binary(min_size=1),
)
def test_fixed_body_frames_reject_any_extra_byte(frame: Frame, extra: bytes) -> None:
    assert _reason(checksummed(encode_frame(frame)[:-4] + extra)) == "bad-length"


@given(st.binary(min_size=1).filter(lambda extra: len(extra) != len(PROOF)))
def test_a_hello_has_a_proof_of_40_bytes_or_none(extra: bytes) -> None:
    assert _reason(checksummed(encode_frame(Hello(1))[:-4] + extra)) == "bad-length"


@given(st.binary(max_size=32))
def test_data_takes_any_trailing_bytes_as_payload(extra: bytes) -> None:
    frame = decode_frame_untrusted(checksummed(encode_frame(Data(1, 2, 3, 0, b""))[:-4] + extra))
    assert frame == Data(1, 2, 3, 0, extra)


@given(st.binary(max_size=32))
def test_any_tail_change_fails_the_checksum(extra: bytes) -> None:
    assert _reason(encode_frame(Data(1, 2, 3, 0, b"")) + extra + b"!") == "bad-checksum"


# -- specific bad input --------------------------------------------------------------


# 2: before acks carried a delay; 3: before bundles
@pytest.mark.parametrize("version", [0, 1, 2, 3, 5, 0xFF])
def test_unknown_version(version: int) -> None:
    assert _reason(bytes([MAGIC, version, 0x01]) + bytes(8)) == "bad-version"


@pytest.mark.parametrize("code", [0x00, 0x09, 0x10, 0x7F, 0xFF])
def test_unknown_type(code: int) -> None:
    assert _reason(_frame_bytes(code, 24)) == "bad-type"


@pytest.mark.parametrize("data", [b"", b"\xf9", b"\xf9\x01"])
def test_truncated_header(data: bytes) -> None:
    assert _reason(data) == "truncated"


@pytest.mark.parametrize("body_size", [0, 8, 12, 16])
def test_truncated_data(body_size: int) -> None:
    assert _reason(_frame_bytes(0x03, body_size)) == "truncated"


@pytest.mark.parametrize(
    ("code", "good_size"),
    [(0x01, 24), (0x02, 20), (0x04, 24), (0x05, 16), (0x06, 13), (0x07, 41), (0x08, 8)],
)
@pytest.mark.parametrize("delta", [-8, -1, 1, 8])
def test_wrong_fixed_body_length(code: int, good_size: int, delta: int) -> None:
    assert _reason(_frame_bytes(code, good_size + delta)) == "bad-length"


# A bundle holds whole messages: never a fragment (0x05) or a keepalive (0x06) too.
@pytest.mark.parametrize("flags", [0x08, 0x10, 0x80, 0x05, 0x06, 0x07, 0xFF])
def test_invalid_data_flags(flags: int) -> None:
    data = checksummed(bytes([MAGIC, VERSION, 0x03]) + bytes(16) + bytes([flags]) + b"payload")
    assert _reason(data) == "bad-flags"


def test_reset_flag_other_than_0_or_1() -> None:
    assert _reason(checksummed(bytes([MAGIC, VERSION, 0x06]) + bytes(12) + b"\x02")) == "bad-flags"


def test_challenge_flag_other_than_0_or_1() -> None:
    body = bytes(8) + COOKIE + b"\x02" + SALT
    assert _reason(checksummed(bytes([MAGIC, VERSION, 0x07]) + body)) == "bad-flags"


def test_a_challenge_without_a_key_carries_no_salt() -> None:
    body = bytes(8) + COOKIE + b"\x00" + SALT  # one encoding per frame: zeros only
    assert _reason(checksummed(bytes([MAGIC, VERSION, 0x07]) + body)) == "bad-flags"


def test_not_a_frame() -> None:
    assert _reason(b"hello, world") == "not-a-frame"


# -- magic byte ------------------------------------------------------------------------


def test_magic_cannot_start_utf8() -> None:
    assert 0xF5 <= MAGIC <= 0xFF


@given(frames)
def test_frame_bytes_never_decode_as_utf8(frame: Frame) -> None:
    with pytest.raises(UnicodeDecodeError):
        encode_frame(frame).decode("utf-8")


@given(st.binary(max_size=16))
def test_is_frame_iff_first_byte_is_magic(data: bytes) -> None:
    assert is_frame(data) == (data[:1] == bytes([MAGIC]))
    assert is_frame(bytes([MAGIC]) + data)


def test_is_frame_examples() -> None:
    assert not is_frame(b"")
    assert not is_frame(b"Hello, server!")
    assert not is_frame("é".encode())
    assert is_frame(b"\xf9")


# -- bundles ----------------------------------------------------------------------


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_bundle_round_trip(parts: list[bytes]) -> None:
    payload = encode_bundle(parts)
    assert len(payload) == sum(map(len, parts)) + bundle_overhead(len(parts))
    assert split_bundle(payload) == parts


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # no message at all
        b"\x00",  # half a length
        b"\x00\x03hi",  # a length past the end
        b"\x00\x02hi\x00",  # a whole message, then half a length
        b"\x00\x01hi",  # a byte left over
    ],
)
def test_a_bundle_whose_lengths_do_not_tile_it_is_refused(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        split_bundle(payload)
    assert caught.value.reason == "bad-bundle"


@given(st.binary(max_size=64))
def test_splitting_any_bytes_returns_messages_that_tile_them_or_refuses(payload: bytes) -> None:
    try:
        parts = split_bundle(payload)
    except RemoteProtocolError as exc:
        reason = exc.reason
    else:
        assert encode_bundle(parts) == payload
        return
    assert reason == "bad-bundle"


def test_a_message_too_long_for_a_length_is_refused_locally() -> None:
    with pytest.raises(LocalProtocolError):
        encode_bundle([bytes(2**16)])
