"""Tier 1 and 2 tests of the frame codec in ``trio_udpchat._wire``.

The golden table is written out byte by byte from the layout table in the
module docstring, never produced by the encoder it checks.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_udpchat._errors import LocalProtocolError, RemoteProtocolError
from trio_udpchat._wire import (
    HEADER_SIZE,
    MAGIC,
    TEXT_OVERHEAD,
    VERSION,
    Bye,
    Frame,
    Hello,
    Reset,
    Text,
    Welcome,
    decode_frame_untrusted,
    encode_frame,
    is_frame,
)

U64_MAX = 2**64 - 1

#: Every ``reason`` that ``decode_frame_untrusted`` gives a RemoteProtocolError.
KNOWN_REASONS = frozenset(
    {"truncated", "not-a-frame", "bad-version", "bad-type", "bad-length", "bad-utf8"}
)

GOLDEN: list[tuple[Frame, str]] = [
    (Hello(nonce=0x0102030405060708), "f9 01 01  01 02 03 04 05 06 07 08"),
    (Hello(nonce=0), "f9 01 01  00 00 00 00 00 00 00 00"),
    (
        Welcome(nonce=1, session=U64_MAX),
        "f9 01 02  00 00 00 00 00 00 00 01  ff ff ff ff ff ff ff ff",
    ),
    (Text(session=42, text=""), "f9 01 03  00 00 00 00 00 00 00 2a"),
    (Text(session=7, text="hi"), "f9 01 03  00 00 00 00 00 00 00 07  68 69"),
    (
        # h, é (c3 a9), l, l, o, space, 🎉 U+1F389 (f0 9f 8e 89)
        Text(session=U64_MAX, text="héllo 🎉"),
        "f9 01 03  ff ff ff ff ff ff ff ff  68 c3 a9 6c 6c 6f 20 f0 9f 8e 89",
    ),
    (Text(session=1, text="a\nb"), "f9 01 03  00 00 00 00 00 00 00 01  61 0a 62"),
    (Bye(session=0xDEADBEEF), "f9 01 04  00 00 00 00 de ad be ef"),
    (Reset(session=0x8000000000000000), "f9 01 05  80 00 00 00 00 00 00 00"),
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
        assert isinstance(outcome, Hello | Welcome | Text | Bye | Reset)
        assert encode_frame(outcome) == data


def _reason(data: bytes) -> str:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame_untrusted(data)
    return info.value.reason


# -- golden vectors ------------------------------------------------------------


@pytest.mark.parametrize(("frame", "hex_bytes"), GOLDEN)
def test_golden_encode(frame: Frame, hex_bytes: str) -> None:
    assert encode_frame(frame) == bytes.fromhex(hex_bytes)


@pytest.mark.parametrize(("frame", "hex_bytes"), GOLDEN)
def test_golden_decode(frame: Frame, hex_bytes: str) -> None:
    assert decode_frame_untrusted(bytes.fromhex(hex_bytes)) == frame


def test_golden_table_covers_every_frame_type() -> None:
    assert {type(frame) for frame, _ in GOLDEN} == {Hello, Welcome, Text, Bye, Reset}


def test_layout_constants() -> None:
    assert (MAGIC, VERSION, HEADER_SIZE, TEXT_OVERHEAD) == (0xF9, 1, 3, 11)


# -- hypothesis: round trip ------------------------------------------------------

u64 = st.integers(min_value=0, max_value=U64_MAX)
#: Any text UTF-8 can carry: every code point except the lone surrogates.
utf8_text = st.text(st.characters(codec="utf-8"))
frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(Hello, u64),
    st.builds(Welcome, u64, u64),
    st.builds(Text, u64, utf8_text),
    st.builds(Bye, u64),
    st.builds(Reset, u64),
)


@given(frames)
def test_round_trip(frame: Frame) -> None:
    data = encode_frame(frame)
    assert is_frame(data)
    assert decode_frame_untrusted(data) == frame


@given(u64, utf8_text)
def test_text_frame_size_is_overhead_plus_utf8(session: int, text: str) -> None:
    assert len(encode_frame(Text(session, text))) == TEXT_OVERHEAD + len(text.encode("utf-8"))


@given(u64, st.text(), st.characters(categories=["Cs"]), st.text())
def test_lone_surrogate_is_local_error(session: int, pre: str, lone: str, post: str) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(Text(session, pre + lone + post))


@pytest.mark.parametrize(
    "frame",
    [
        Hello(-1),
        Hello(2**64),
        Welcome(2**64, 0),
        Welcome(0, -1),
        Text(2**64, "x"),
        Bye(-5),
        Reset(2**70),
    ],
)
def test_out_of_range_u64_is_local_error(frame: Frame) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(frame)


# -- hypothesis: untrusted input ---------------------------------------------------

header = st.sampled_from([bytes([MAGIC, VERSION, code]) for code in range(7)])
#: Mostly-garbage bytes, half of them behind a plausible header so the body parsers run.
untrusted_bytes = st.one_of(
    st.binary(max_size=40),
    st.builds(bytes.__add__, header, st.binary(max_size=24)),
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


@given(st.sampled_from([Hello(1), Welcome(1, 2), Bye(3), Reset(4)]), st.binary(min_size=1))
def test_fixed_body_frames_reject_any_extra_byte(frame: Frame, extra: bytes) -> None:
    assert _reason(encode_frame(frame) + extra) == "bad-length"


# -- specific bad input --------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_unknown_version(version: int) -> None:
    data = bytes([MAGIC, version, 0x01]) + bytes(8)
    assert _reason(data) == "bad-version"


@pytest.mark.parametrize("code", [0x00, 0x06, 0x7F, 0xFF])
def test_unknown_type(code: int) -> None:
    assert _reason(bytes([MAGIC, VERSION, code]) + bytes(16)) == "bad-type"


@pytest.mark.parametrize("data", [b"", b"\xf9", b"\xf9\x01"])
def test_truncated_header(data: bytes) -> None:
    assert _reason(data) == "truncated"


@pytest.mark.parametrize("body_size", [0, 7])
def test_truncated_text_session(body_size: int) -> None:
    assert _reason(bytes([MAGIC, VERSION, 0x03]) + bytes(body_size)) == "truncated"


@pytest.mark.parametrize(("code", "good_size"), [(0x01, 8), (0x02, 16), (0x04, 8), (0x05, 8)])
@pytest.mark.parametrize("delta", [-8, -1, 1, 8])
def test_wrong_fixed_body_length(code: int, good_size: int, delta: int) -> None:
    data = bytes([MAGIC, VERSION, code]) + bytes(good_size + delta)
    assert _reason(data) == "bad-length"


@pytest.mark.parametrize(
    "bad_utf8",
    [
        b"\xff",
        b"\xc3",  # truncated two-byte sequence
        b"\xc0\xaf",  # overlong encoding of '/'
        b"\xed\xa0\x80",  # an encoded surrogate
        b"ok\x80",  # a lone continuation byte
    ],
)
def test_invalid_utf8_text(bad_utf8: bytes) -> None:
    data = bytes([MAGIC, VERSION, 0x03]) + bytes(8) + bad_utf8
    assert _reason(data) == "bad-utf8"


def test_not_a_frame() -> None:
    assert _reason(b"hello") == "not-a-frame"


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
