"""Tier 1 and 2 tests of safe display: ``visible()``, and the lines built with it.

Names and text from the network must never put a control character, an escape
sequence or an invisible format character on someone's terminal.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_udpchat._chat import (
    Presence,
    PresenceKind,
    Refused,
    RefusedWhy,
    Said,
    SaidKind,
    ServerMessage,
)
from trio_udpchat._commands import Role
from trio_udpchat._events import (
    Event,
    MessageReceived,
    NameAssigned,
    PresenceNoticed,
    RequestRefused,
    RoomMessage,
    RoomNotice,
    WhoListed,
)
from trio_udpchat._plaintext import plain_line
from trio_udpchat._render import render
from trio_udpchat._safe import visible

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(300, settings().max_examples)

#: What must never reach a terminal: controls, format characters (bidi overrides,
#: zero-width joiners), surrogates, private use, unassigned, line/paragraph separators.
UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})

#: 2023-11-14 22:13:20 UTC; shown as HH:MM in the local time zone.
TIME = 1_700_000_000.0


def unsafe_in(line: str) -> list[str]:
    return [char for char in line if unicodedata.category(char) in UNSAFE]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # OSC: retitles the terminal
        ("\x1b[2J", "\\x1b[2J"),  # CSI: clears the screen
        ("\x1bP+q\x1b\\", "\\x1bP+q\\x1b\\"),  # DCS
        ("\x9b2J", "\\x9b2J"),  # C1 CSI
        ("\x85", "\\x85"),  # C1 next line
        ("\x80\x9f", "\\x80\\x9f"),  # the ends of C1
        ("\x7f", "\\x7f"),  # DEL
        ("\x00", "\\x00"),
        ("a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"),
        ("\x08\x08\x08", "\\x08\\x08\\x08"),  # backspaces that would hide text
        ("safe\u202etxt.exe", "safe\\u202etxt.exe"),  # RTL override
        ("\u2066x\u2069", "\\u2066x\\u2069"),  # bidi isolates
        ("zero\u200dwidth", "zero\\u200dwidth"),  # zero-width joiner
        ("\u200b", "\\u200b"),  # zero-width space
        ("\ufeff", "\\ufeff"),  # byte order mark
        ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
        ("\U000e0041", "\\U000e0041"),  # a tag character
        ("\ue000", "\\ue000"),  # private use
        ("\U000f0000", "\\U000f0000"),  # private use, plane 15
        ("\u0378", "\\u0378"),  # unassigned
        ("\ud800", "\\ud800"),  # a lone surrogate
    ],
)
def test_unsafe_characters_are_escaped(text: str, shown: str) -> None:
    assert visible(text) == shown
    assert unsafe_in(visible(text)) == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello, world",
        "héllo wörld ça va",
        "日本語のテキスト",
        "Привет",
        "مرحبا",  # right-to-left letters are fine; only the overrides are not
        "🎉👍🏽",
        "e\u0301",  # a combining accent
        "a\u00a0b",  # a no-break space
        "tabs\\t and \\x1b written out",
        "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert visible(text) == text


#: Characters of every kind, with the terminal's favourite weapons weighted in.
HOSTILE = ["\x1b", "\x07", "\x9b", "\x7f", "\n", "\r", "\u202e", "\u200d", "\u2028", "\ufeff"]
hostile = st.text(
    st.one_of(st.sampled_from(HOSTILE), st.characters(exclude_categories=())), max_size=20
)
#: Wall-clock times a server would send (1970 to 2100).
times = st.floats(0.0, 4_102_444_800.0)


@settings(max_examples=MORE_EXAMPLES)
@given(hostile)
def test_visible_output_has_no_unsafe_character(text: str) -> None:
    shown = visible(text)
    assert unsafe_in(shown) == []
    assert "\x1b" not in shown
    # Safe characters survive, in order.
    rest = iter(shown)
    assert all(char in rest for char in text if unicodedata.category(char) not in UNSAFE)


@settings(max_examples=MORE_EXAMPLES)
@given(
    st.text(
        st.characters(exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"]), max_size=20
    )
)
def test_visible_leaves_safe_text_alone(text: str) -> None:
    assert visible(text) == text


events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        RoomMessage,
        hostile,
        hostile,
        times,
        st.sampled_from(["say", "act", "private", "reply"]),
        st.none(),
        st.booleans(),
    ),
    st.builds(
        PresenceNoticed, st.sampled_from(["joined", "left", "renamed"]), hostile, hostile, times
    ),
    st.builds(
        WhoListed,
        st.lists(
            st.tuples(hostile, st.integers(0, 2**32 - 1), st.booleans(), hostile), max_size=4
        ).map(tuple),
    ),
    st.builds(RoomNotice, hostile),
    st.builds(RequestRefused, hostile),
    st.builds(NameAssigned, hostile),
    st.builds(MessageReceived, st.just(("192.0.2.1", 40000)), hostile),
)


@settings(max_examples=MORE_EXAMPLES)
@given(events, st.sampled_from(["client", "server"]))
def test_rendered_lines_hold_no_unsafe_character(event: Event, role: Role) -> None:
    line = render(event, role)
    assert line is not None
    assert unsafe_in(line) == []


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            PresenceNoticed("joined", "\x1b]0;pwned\x07", "", TIME),
            "--> \\x1b]0;pwned\\x07 joined",
        ),
        (
            PresenceNoticed("left", "bob", "quit: \x1b[2J", TIME),
            "<-- bob left (quit: \\x1b[2J)",
        ),
        (
            PresenceNoticed("renamed", "a", "b\u202ec", TIME),
            "--- a is now known as b\\u202ec",
        ),
        (
            WhoListed((("server", 5, True, ""), ("e\x1bvil", 130, False, "h\x1b:1"))),
            "*** 2 here: server (operator, idle 5s), e\\x1bvil (idle 2m, on h\\x1b:1)",
        ),
        (RequestRefused("no \x07bell"), "! no \\x07bell"),
        (NameAssigned("z\u200dw"), "*** you are now known as z\\u200dw"),
    ],
)
def test_rendered_hostile_examples(event: Event, line: str) -> None:
    assert render(event, "client") == line
    assert render(event, "server") == line


@pytest.mark.parametrize(
    ("kind", "shape"),
    [
        ("say", r"\[\d\d:\d\d\] <e\\x1bvil> hi\\x07"),
        ("act", r"\[\d\d:\d\d\] \* e\\x1bvil hi\\x07"),
        ("private", r"\[\d\d:\d\d\] \*e\\x1bvil\* hi\\x07"),
    ],
)
def test_rendered_room_message(kind: str, shape: str) -> None:
    line = render(RoomMessage("e\x1bvil", "hi\x07", TIME, kind), "client")
    assert line is not None
    assert re.fullmatch(shape, line)
    history = render(RoomMessage("e\x1bvil", "hi\x07", TIME, kind, history=True), "client")
    assert history is not None
    assert re.fullmatch(shape.replace(r"\] ", r"\] \(history\) ", 1), history)


@pytest.mark.parametrize("time", [1e20, -1e13, 2.0**63])
def test_a_hostile_time_still_renders(time: float) -> None:
    # decode_chat_untrusted accepts any finite time; the client shows it as HH:MM.
    line = render(RoomMessage("alice", "hi", time), "client")
    assert line is not None
    assert line.endswith("<alice> hi")


# -- what plain-text peers get -----------------------------------------------------

plain_messages: st.SearchStrategy[ServerMessage] = st.one_of(
    st.builds(
        Said,
        hostile,
        hostile,
        times,
        st.sampled_from([SaidKind.SAY, SaidKind.ACT, SaidKind.PRIVATE]),
        st.booleans(),
    ),
    st.builds(Presence, st.sampled_from(PresenceKind), hostile, hostile, times),
    st.builds(Refused, st.sampled_from(RefusedWhy), hostile),
)


@settings(max_examples=MORE_EXAMPLES)
@given(plain_messages)
def test_plain_lines_hold_no_unsafe_character(message: ServerMessage) -> None:
    line = plain_line(message)
    assert line is not None
    assert unsafe_in(line) == []


@pytest.mark.parametrize(
    ("message", "shape"),
    [
        (Said("e\x1bvil", "hi\x07", TIME), r"\[\d\d:\d\d\] <e\\x1bvil> hi\\x07"),
        (Said("e\x1bvil", "hi\x07", TIME, SaidKind.ACT), r"\[\d\d:\d\d\] \* e\\x1bvil hi\\x07"),
        (
            Said("e\x1bvil", "hi\x07", TIME, SaidKind.PRIVATE),
            r"\[\d\d:\d\d\] \*e\\x1bvil\* hi\\x07",
        ),
        (Presence(PresenceKind.JOINED, "\u202eevil", "", TIME), r"--> \\u202eevil joined"),
        (
            Presence(PresenceKind.LEFT, "bob", "quit: \x1b[2J", TIME),
            r"<-- bob left \(quit: \\x1b\[2J\)",
        ),
        (Presence(PresenceKind.LEFT, "bob", "", TIME), r"<-- bob left"),
        (
            Presence(PresenceKind.RENAMED, "a\x00", "b\n", TIME),
            r"--- a\\x00 is now known as b\\x0a",
        ),
        (Refused(RefusedWhy.SLOW_DOWN, "slow\x1b"), r"\*\*\* slow\\x1b"),
    ],
)
def test_plain_line_examples(message: ServerMessage, shape: str) -> None:
    line = plain_line(message)
    assert line is not None
    assert re.fullmatch(shape, line)


def test_the_operators_reply_is_the_bare_text_as_in_the_classic_demo() -> None:
    # The operator typed it: it goes as it was, with no time or name around it.
    assert plain_line(Said("server", "Hi, client!", TIME, SaidKind.REPLY)) == "Hi, client!"
