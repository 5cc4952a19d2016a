"""Tier 1 and 2 tests of the chat message codec in ``trio_udpchat._chat``.

The golden table is written out byte by byte from the layout table in the
module docstring, never produced by the encoder it checks.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_udpchat._chat import (
    Act,
    AskWho,
    ChatMessage,
    Join,
    Named,
    Notice,
    Presence,
    PresenceKind,
    Quit,
    Refused,
    RefusedWhy,
    Rename,
    Roster,
    RosterEntry,
    Said,
    SaidKind,
    Say,
    Whisper,
    decode_chat_untrusted,
    encode_chat,
)
from trio_udpchat._errors import LocalProtocolError, RemoteProtocolError

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(300, settings().max_examples)

U32_MAX = 2**32 - 1

#: Every ``reason`` that ``decode_chat_untrusted`` gives a RemoteProtocolError.
KNOWN_REASONS = frozenset({"chat-truncated", "chat-malformed", "chat-type", "bad-utf8"})

#: Message kinds by code, from the layout table.
CODES = {
    Join: 0x10,
    Say: 0x11,
    Act: 0x12,
    Whisper: 0x13,
    Rename: 0x14,
    AskWho: 0x15,
    Quit: 0x16,
    Said: 0x20,
    Presence: 0x21,
    Roster: 0x22,
    Refused: 0x23,
    Named: 0x24,
    Notice: 0x25,
}

# Strings are a u32 length then UTF-8: "alice" 61 6c 69 63 65, "bob" 62 6f 62, "hi" 68 69,
# "é" c3 a9, "🎉" f0 9f 8e 89. Times are big-endian IEEE 754 doubles: 0.5 3fe0.., 1.5 3ff8..,
# 2.0 4000.., -2.0 c000.., 1_700_000_000.0 = 0x6553f100 = 1.58... * 2**30: 41d9 54fc 4000 0000.
GOLDEN: list[tuple[ChatMessage, str]] = [
    (
        Join("alice"),
        "10  00 00 00 05  61 6c 69 63 65  bf f0 00 00 00 00 00 00  00 00 00 00 00 00 00 00",
    ),
    (Join("", since=0.0), "10  00 00 00 00  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00"),
    (
        Join("bob", since=1.5, token=2**64 - 2),
        "10  00 00 00 03  62 6f 62  3f f8 00 00 00 00 00 00  ff ff ff ff ff ff ff fe",
    ),
    (Say("hi"), "11  00 00 00 02  68 69"),
    (Say("é🎉"), "11  00 00 00 06  c3 a9 f0 9f 8e 89"),
    (Act("waves"), "12  00 00 00 05  77 61 76 65 73"),
    (Whisper("bob", "hi"), "13  00 00 00 03  62 6f 62  00 00 00 02  68 69"),
    (Whisper("", ""), "13  00 00 00 00  00 00 00 00"),
    (Rename("Bob"), "14  00 00 00 03  42 6f 62"),
    (AskWho(), "15"),
    (Quit(""), "16  00 00 00 00"),
    (Quit("bye"), "16  00 00 00 03  62 79 65"),
    (
        Said("alice", "hi", 1.5),
        "20  00 00 00 05  61 6c 69 63 65  00 00 00 02  68 69  3f f8 00 00 00 00 00 00  00  00",
    ),
    (
        Said("server", "ok", 0.0, SaidKind.REPLY),
        "20  00 00 00 06  73 65 72 76 65 72  00 00 00 02  6f 6b  00 00 00 00 00 00 00 00  03  00",
    ),
    (
        Said("bob", "é", 1_700_000_000.0, SaidKind.ACT, history=True),
        "20  00 00 00 03  62 6f 62  00 00 00 02  c3 a9  41 d9 54 fc 40 00 00 00  01  01",
    ),
    (
        Said("a", "", -2.0, SaidKind.PRIVATE),
        "20  00 00 00 01  61  00 00 00 00  c0 00 00 00 00 00 00 00  02  00",
    ),
    (
        Presence(PresenceKind.JOINED, "alice", "", 2.0),
        "21  00  00 00 00 05  61 6c 69 63 65  00 00 00 00  40 00 00 00 00 00 00 00",
    ),
    (
        # "timed out": 74 69 6d 65 64 20 6f 75 74
        Presence(PresenceKind.LEFT, "bob", "timed out", 0.5),
        "21  01  00 00 00 03  62 6f 62  00 00 00 09  74 69 6d 65 64 20 6f 75 74"
        "  3f e0 00 00 00 00 00 00",
    ),
    (
        Presence(PresenceKind.RENAMED, "a", "b", 1.5),
        "21  02  00 00 00 01  61  00 00 00 01  62  3f f8 00 00 00 00 00 00",
    ),
    (Roster(()), "22  00 00"),
    (
        # idle 70000 = 0x00011170
        Roster((RosterEntry("server", 3, operator=True), RosterEntry("alice", 70000, server="h"))),
        "22  00 02  00 00 00 06  73 65 72 76 65 72  00 00 00 03  01  00 00 00 00"
        "  00 00 00 05  61 6c 69 63 65  00 01 11 70  00  00 00 00 01  68",
    ),
    (Roster((RosterEntry("", U32_MAX),)), "22  00 01  00 00 00 00  ff ff ff ff  00  00 00 00 00"),
    (Refused(RefusedWhy.NAME, "no"), "23  00  00 00 00 02  6e 6f"),
    (Refused(RefusedWhy.ROOM_FULL, "full"), "23  01  00 00 00 04  66 75 6c 6c"),
    (Refused(RefusedWhy.SLOW_DOWN, ""), "23  02  00 00 00 00"),
    (Refused(RefusedWhy.NO_SUCH_MEMBER, "?"), "23  03  00 00 00 01  3f"),
    (Refused(RefusedWhy.OTHER, "x"), "23  04  00 00 00 01  78"),
    (Named("🎉"), "24  00 00 00 04  f0 9f 8e 89"),
    (Notice("link lost"), "25  00 00 00 09  6c 69 6e 6b 20 6c 6f 73 74"),
]


def test_the_golden_table_covers_every_kind() -> None:
    assert {type(message) for message, _ in GOLDEN} == set(CODES)
    assert {bytes.fromhex(text)[0] for _, text in GOLDEN} == set(CODES.values())
    assert {m.kind for m, _ in GOLDEN if isinstance(m, Said)} == set(SaidKind)
    assert {m.what for m, _ in GOLDEN if isinstance(m, Presence)} == set(PresenceKind)
    assert {m.why for m, _ in GOLDEN if isinstance(m, Refused)} == set(RefusedWhy)


@pytest.mark.parametrize(("message", "golden"), GOLDEN)
def test_golden_encode(message: ChatMessage, golden: str) -> None:
    assert encode_chat(message) == bytes.fromhex(golden)


@pytest.mark.parametrize(("message", "golden"), GOLDEN)
def test_golden_decode(message: ChatMessage, golden: str) -> None:
    decoded = decode_chat_untrusted(bytes.fromhex(golden))
    assert decoded == message
    assert type(decoded) is type(message)


@pytest.mark.parametrize(
    ("idle", "wire"), [(-5, "00 00 00 00"), (2**32, "ff ff ff ff"), (10**12, "ff ff ff ff")]
)
def test_roster_idle_is_clamped_to_u32(idle: int, wire: str) -> None:
    data = encode_chat(Roster((RosterEntry("a", idle),)))
    assert data == bytes.fromhex(f"22  00 01  00 00 00 01  61  {wire}  00  00 00 00 00")


def test_text_that_is_not_utf8_encodable_is_our_error() -> None:
    with pytest.raises(LocalProtocolError, match="UTF-8"):
        encode_chat(Say("lone \ud800 surrogate"))
    with pytest.raises(LocalProtocolError):
        encode_chat(Roster((RosterEntry("\udfff", 0),)))


@pytest.mark.parametrize("time", [math.nan, math.inf, -math.inf])
def test_a_non_finite_time_is_our_error(time: float) -> None:
    with pytest.raises(LocalProtocolError):
        encode_chat(Said("a", "b", time))


def test_a_roster_too_long_for_its_count_is_our_error() -> None:
    entries = tuple(RosterEntry(f"m{n}", 0) for n in range(2**16))
    with pytest.raises(LocalProtocolError):
        encode_chat(Roster(entries))


# -- bad bytes -------------------------------------------------------------------

NAN = "7f f8 00 00 00 00 00 00"
INF = "7f f0 00 00 00 00 00 00"
NEG_INF = "ff f0 00 00 00 00 00 00"


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        pytest.param("", "chat-truncated", "truncated", id="empty"),
        pytest.param("15 00", "chat-malformed", "trailing", id="trailing-askwho"),
        pytest.param(
            "10 00 00 00 01 61" + " 00" * 17, "chat-malformed", "trailing", id="trailing-join"
        ),
        pytest.param("10 00 00 00 01 61", "chat-truncated", "truncated", id="join-no-since"),
        pytest.param("22 00 00 ff", "chat-malformed", "trailing", id="trailing-roster"),
        pytest.param("00", "chat-type", "unknown", id="kind-00"),
        pytest.param("17 00 00 00 00", "chat-type", "0x17", id="kind-17"),
        pytest.param("26", "chat-type", "0x26", id="kind-26"),
        pytest.param(
            "10 00 00 00 01 61" + " 00" * 8, "chat-truncated", "truncated", id="join-no-token"
        ),
        pytest.param("ff", "chat-type", "0xff", id="kind-ff"),
        pytest.param(
            "20 00000001 61 00000001 62 3ff8000000000000 04 00",
            "chat-malformed",
            "SaidKind",
            id="said-kind-4",
        ),
        pytest.param(
            "20 00000001 61 00000001 62 3ff8000000000000 00 02",
            "chat-malformed",
            "not 0 or 1",
            id="said-history-2",
        ),
        pytest.param(
            "21 03 00000001 61 00000000 3ff8000000000000",
            "chat-malformed",
            "PresenceKind",
            id="presence-what-3",
        ),
        pytest.param("23 05 00000000", "chat-malformed", "RefusedWhy", id="refused-why-5"),
        pytest.param(
            "22 0001 00000001 61 00000000 02", "chat-malformed", "not 0 or 1", id="roster-flag-2"
        ),
        pytest.param(
            f"20 00000001 61 00000001 62 {NAN} 00 00", "chat-malformed", "finite", id="said-nan"
        ),
        pytest.param(
            f"20 00000001 61 00000001 62 {INF} 00 00", "chat-malformed", "finite", id="said-inf"
        ),
        pytest.param(
            f"21 00 00000001 61 00000000 {NEG_INF}",
            "chat-malformed",
            "finite",
            id="presence-neg-inf",
        ),
        pytest.param("10 00000001 ff", "bad-utf8", "UTF-8", id="utf8-ff"),
        pytest.param("11 00000002 c3 28", "bad-utf8", "UTF-8", id="utf8-bad-continuation"),
        pytest.param("11 00000001 c3", "bad-utf8", "UTF-8", id="utf8-cut-short"),
        pytest.param("11 00000003 ed a0 80", "bad-utf8", "UTF-8", id="utf8-surrogate"),
        pytest.param("11 00000002 c0 af", "bad-utf8", "UTF-8", id="utf8-overlong"),
        pytest.param("13 00000001 61 00000001 80", "bad-utf8", "UTF-8", id="utf8-second-str"),
        pytest.param("10 00000005 61 62", "chat-truncated", "truncated", id="short-string"),
        pytest.param("10 ffffffff", "chat-truncated", "truncated", id="huge-length"),
        pytest.param("10 0000", "chat-truncated", "truncated", id="short-length"),
        pytest.param("20 00000001 61 00000000 3ff8", "chat-truncated", "truncated", id="short-f64"),
        pytest.param(
            "22 0002 00000001 61 00000000 00", "chat-truncated", "truncated", id="roster-short"
        ),
        pytest.param("23", "chat-truncated", "truncated", id="refused-no-why"),
    ],
)
def test_bad_bytes_are_rejected_with_a_reason(data: str, reason: str, words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=words) as caught:
        decode_chat_untrusted(bytes.fromhex(data))
    assert caught.value.reason == reason


# -- properties ------------------------------------------------------------------

texts = st.text(max_size=20)
times = st.floats(allow_nan=False, allow_infinity=False)
messages: st.SearchStrategy[ChatMessage] = st.one_of(
    st.builds(Join, texts, times, st.integers(0, 2**64 - 1)),
    st.builds(Say, texts),
    st.builds(Act, texts),
    st.builds(Whisper, texts, texts),
    st.builds(Rename, texts),
    st.just(AskWho()),
    st.builds(Quit, texts),
    st.builds(Said, texts, texts, times, st.sampled_from(SaidKind), st.booleans()),
    st.builds(Presence, st.sampled_from(PresenceKind), texts, texts, times),
    st.builds(
        Roster,
        st.lists(
            st.builds(RosterEntry, texts, st.integers(0, U32_MAX), st.booleans(), texts),
            max_size=5,
        ).map(tuple),
    ),
    st.builds(Refused, st.sampled_from(RefusedWhy), texts),
    st.builds(Named, texts),
    st.builds(Notice, texts),
)


@settings(max_examples=MORE_EXAMPLES)
@given(messages)
def test_round_trip(message: ChatMessage) -> None:
    data = encode_chat(message)
    assert data[0] == CODES[type(message)]
    decoded = decode_chat_untrusted(data)
    assert decoded == message
    if isinstance(message, Said | Presence):
        assert isinstance(decoded, Said | Presence)
        assert struct.pack("!d", decoded.time) == struct.pack("!d", message.time)  # even -0.0


@settings(max_examples=MORE_EXAMPLES)
@given(messages)
def test_every_proper_prefix_is_truncated(message: ChatMessage) -> None:
    data = encode_chat(message)
    for end in range(len(data)):
        with pytest.raises(RemoteProtocolError) as caught:
            decode_chat_untrusted(data[:end])
        assert caught.value.reason == "chat-truncated"


def check_untrusted(data: bytes) -> None:
    """Decoding ``data`` gives a message that encodes back to ``data``, or our error."""
    outcome: ChatMessage | RemoteProtocolError
    try:
        outcome = decode_chat_untrusted(data)
    except RemoteProtocolError as exc:  # anything else fails the test
        outcome = exc
    if isinstance(outcome, RemoteProtocolError):
        assert outcome.reason in KNOWN_REASONS
        assert str(outcome)
    else:
        assert type(outcome) in CODES
        assert encode_chat(outcome) == data  # one encoding per message


@settings(max_examples=MORE_EXAMPLES)
@given(st.binary(max_size=64))
def test_arbitrary_bytes(data: bytes) -> None:
    check_untrusted(data)


@settings(max_examples=MORE_EXAMPLES)
@given(st.sampled_from(sorted(CODES.values())), st.binary(max_size=64))
def test_arbitrary_bytes_after_a_known_kind(code: int, rest: bytes) -> None:
    check_untrusted(bytes([code]) + rest)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid message's bytes with a few bits flipped, bytes cut, inserted or dropped."""
    data = bytearray(encode_chat(draw(messages)))
    for _ in range(draw(st.integers(1, 4))):
        what = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        at = draw(st.integers(0, len(data)))
        if what == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif what == "insert":
            data.insert(at, draw(st.integers(0, 255)))
        elif what == "delete" and at < len(data):
            del data[at]
        elif what == "cut":
            del data[at:]
    return bytes(data)


@settings(max_examples=MORE_EXAMPLES)
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    check_untrusted(data)
