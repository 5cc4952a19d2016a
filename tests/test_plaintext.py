"""Tests of plain-text datagrams: ``split_plaintext`` and ``PlainStyle``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_udpchat._plaintext import PlainStyle, split_plaintext

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(200, settings().max_examples)


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"Hello, server!", ["Hello, server!"]),
        (b"", [""]),
        (b"\n", [""]),
        (b"a\nb\n", ["a", "b"]),
        (b"a\nb", ["a", "b"]),
        (b"a\n\n", ["a", ""]),
        (b"\n\n", ["", ""]),
        (b"a\r\nb\r\n", ["a", "b"]),
        (b"a\r\n", ["a"]),
        (b"a\rb", ["a\rb"]),  # a CR inside a line is kept
        ("héllo 🎉\n".encode(), ["héllo 🎉"]),
        (b"tab\there", ["tab\there"]),
    ],
)
def test_classic_cases(data: bytes, lines: list[str]) -> None:
    assert split_plaintext(data) == lines


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"\xff", ["\ufffd"]),
        (b"caf\xc3", ["caf\ufffd"]),
        (b"a\xffb\nc\x80\n", ["a\ufffdb", "c\ufffd"]),
        (b"\xf9\x01\x03", ["\ufffd\x01\x03"]),  # looks like a frame header: still text here
    ],
)
def test_invalid_utf8_is_replaced(data: bytes, lines: list[str]) -> None:
    assert split_plaintext(data) == lines


@settings(max_examples=MORE_EXAMPLES)
@given(st.binary(max_size=64))
def test_never_raises_and_lines_hold_no_newline(data: bytes) -> None:
    lines = split_plaintext(data)
    assert lines
    assert all("\n" not in line for line in lines)


line_text = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=8)


@st.composite
def lines_in_datagrams(draw: st.DrawFn) -> tuple[list[str], list[bytes]]:
    """Lines, and datagrams that carry them in order, grouped arbitrarily.

    A group of two or more lines whose last line is empty must end in a
    newline: ``"a\\n"`` reads as the line ``a`` ended by its newline, never as
    ``a`` followed by an empty line (see ``test_trailing_newline_ends_the_line``).
    """
    lines = draw(st.lists(line_text, max_size=12))
    datagrams = []
    start = 0
    while start < len(lines):
        end = draw(st.integers(start + 1, len(lines)))
        group = lines[start:end]
        ambiguous = len(group) > 1 and group[-1] == ""
        newline = ambiguous or draw(st.booleans())
        datagrams.append(("\n".join(group) + ("\n" if newline else "")).encode("utf-8"))
        start = end
    return lines, datagrams


@settings(max_examples=MORE_EXAMPLES)
@given(lines_in_datagrams())
def test_any_grouping_gives_back_the_lines(case: tuple[list[str], list[bytes]]) -> None:
    lines, datagrams = case
    assert [line for data in datagrams for line in split_plaintext(data)] == lines


def test_trailing_newline_ends_the_line() -> None:
    # The ambiguity the property above steers around, pinned down.
    assert split_plaintext(b"a\n") == ["a"]
    assert split_plaintext(b"a\n\n") == ["a", ""]


# -- PlainStyle --------------------------------------------------------------------


def test_style_starts_without_newline() -> None:
    assert PlainStyle().encode("hi") == b"hi"


@pytest.mark.parametrize(
    ("seen", "reply"),
    [
        (b"hello", b"pong"),
        (b"hello\n", b"pong\n"),
        (b"hello\r\n", b"pong\r\n"),
        (b"", b"pong"),
        (b"\n", b"pong\n"),
    ],
)
def test_style_mirrors_trailing_newline(seen: bytes, reply: bytes) -> None:
    style = PlainStyle()
    style.observe(seen)
    assert style.encode("pong") == reply


def test_style_follows_the_latest_datagram() -> None:
    style = PlainStyle()
    style.observe(b"x\n")
    assert style.encode("a") == b"a\n"
    style.observe(b"y")
    assert style.encode("a") == b"a"


def test_style_encodes_utf8_and_replaces_lone_surrogates() -> None:
    style = PlainStyle(ending="\n")
    assert style.encode("héllo 🎉") == "héllo 🎉\n".encode()
    assert style.encode("a\udcffb") == b"a?b\n"


@given(
    st.text(st.characters(codec="utf-8", exclude_characters="\n\r")),
    st.sampled_from(["", "\n", "\r\n"]),
)
def test_style_output_splits_back_to_the_text(text: str, ending: str) -> None:
    assert split_plaintext(PlainStyle(ending=ending).encode(text)) == [text]
