"""Tier 1 and 2 tests of typed-line parsing (``trio_udpchat._commands.parse_line``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_udpchat._chat import Act, AskWho, Rename, Say, Whisper
from trio_udpchat._commands import (
    COMMANDS,
    BadCommand,
    Command,
    Leave,
    Reply,
    Role,
    Send,
    ShowHelp,
    ShowPending,
    ShowStats,
    ShowWho,
    ToAll,
    ToOne,
    parse_line,
)

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(200, settings().max_examples)


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("hello", Send(Say("hello"), "hello")),
        ("", Send(Say(""), "")),
        (" /nick bob", Send(Say(" /nick bob"), " /nick bob")),  # not at the start: text
        ("/nick bob", Send(Rename("bob"), "/nick bob")),
        ("/nick   bob  ", Send(Rename("bob"), "/nick   bob  ")),
        ("/me waves", Send(Act("waves"), "/me waves")),
        ("/me waves at  everyone", Send(Act("waves at  everyone"), "/me waves at  everyone")),
        ("/msg bob hi", Send(Whisper("bob", "hi"), "/msg bob hi")),
        ("/msg bob hi  there", Send(Whisper("bob", "hi  there"), "/msg bob hi  there")),
        ("/who", Send(AskWho(), "/who")),
        ("/who ", Send(AskWho(), "/who ")),
        ("/quit", Leave("")),
        ("/quit   ", Leave("")),
        ("/quit off to bed", Leave("off to bed")),
        ("/quit  bye ", Leave("bye")),
        ("/help", ShowHelp()),
        ("/pending", ShowPending()),
        ("/stats", ShowStats()),
        ("//", Send(Say("/"), "/")),
        ("//nick bob", Send(Say("/nick bob"), "/nick bob")),
        ("///", Send(Say("//"), "//")),
        ("// hi", Send(Say("/ hi"), "/ hi")),
    ],
)
def test_client_lines(line: str, command: Command) -> None:
    assert parse_line(line, "client") == command


def test_client_is_the_default_role() -> None:
    assert parse_line("/nick bob") == Send(Rename("bob"), "/nick bob")
    assert parse_line("hi") == Send(Say("hi"), "hi")


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("hello", Reply("hello")),
        ("", Reply("")),
        ("/all hello room", ToAll("hello room")),
        ("/all  spaced  out ", ToAll("spaced  out")),
        ("/to bob psst", ToOne("bob", "psst")),
        ("/to bob two  words", ToOne("bob", "two  words")),
        ("/who", ShowWho()),
        ("/help", ShowHelp()),
        ("/pending", ShowPending()),
        ("/stats", ShowStats()),
        ("//all", Reply("/all")),
        ("//", Reply("/")),
    ],
)
def test_server_lines(line: str, command: Command) -> None:
    assert parse_line(line, "server") == command


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("/nick", "/nick NEW"),
        ("/nick a b", "/nick NEW"),
        ("/me", "/me ACTION"),
        ("/me   ", "/me ACTION"),
        ("/msg", "/msg NAME TEXT"),
        ("/msg bob", "/msg NAME TEXT"),
        ("/msg bob   ", "/msg NAME TEXT"),
        ("/who me", "/who"),
        ("/help me", "/help"),
        ("/pending now", "/pending"),
    ],
)
def test_client_usage_hints(line: str, usage: str) -> None:
    assert parse_line(line, "client") == BadCommand(f"usage: {usage}")


@pytest.mark.parametrize(
    ("line", "usage"),
    [
        ("/all", "/all TEXT"),
        ("/all   ", "/all TEXT"),
        ("/to", "/to NAME TEXT"),
        ("/to bob", "/to NAME TEXT"),
        ("/who all", "/who"),
        ("/help x", "/help"),
        ("/pending x", "/pending"),
    ],
)
def test_server_usage_hints(line: str, usage: str) -> None:
    assert parse_line(line, "server") == BadCommand(f"usage: {usage}")


@pytest.mark.parametrize(
    ("line", "role", "name"),
    [
        ("/frobnicate", "client", "/frobnicate"),
        ("/frobnicate now", "client", "/frobnicate"),
        ("/", "client", "/"),
        ("/ nick", "client", "/"),
        ("/NICK bob", "client", "/NICK"),
        ("/all hi", "client", "/all"),  # the operator's commands are not the client's
        ("/to bob hi", "client", "/to"),
        ("/me waves", "server", "/me"),  # nor the other way round
        ("/msg bob hi", "server", "/msg"),
        ("/nick bob", "server", "/nick"),
        ("/quit", "server", "/quit"),
    ],
)
def test_unknown_commands_get_a_hint(line: str, role: Role, name: str) -> None:
    command = parse_line(line, role)
    assert isinstance(command, BadCommand)
    assert f"unknown command {name} " in command.hint
    assert "/help" in command.hint
    assert "//" in command.hint


@pytest.mark.parametrize(
    "line", ["/nick a\nb", "/quit\n", "/who\nis here", "/me\nwaves", "hello\nworld", "/\n/"]
)
@pytest.mark.parametrize("role", ["client", "server"])
def test_multi_line_input_is_always_text(line: str, role: Role) -> None:
    expected = Send(Say(line), line) if role == "client" else Reply(line)
    assert parse_line(line, role) == expected


def test_every_command_has_a_usage_and_a_description() -> None:
    client = {"nick", "me", "msg", "who", "quit", "pending", "stats", "help"}
    assert set(COMMANDS["client"]) == client
    assert set(COMMANDS["server"]) == {"all", "to", "who", "pending", "stats", "help"}
    for role, commands in COMMANDS.items():
        for name, (usage, what) in commands.items():
            assert usage.startswith(f"/{name}")
            assert what
            # Each command's bare usage either parses or gets that very usage back.
            bare = parse_line(f"/{name}", role)
            assert not isinstance(bare, BadCommand) or bare.hint == f"usage: {usage}"


lines = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=MORE_EXAMPLES)
@given(lines, st.sampled_from(["client", "server"]))
def test_nothing_unknown_is_ever_sent(line: str, role: Role) -> None:
    command = parse_line(line, role)
    if isinstance(command, Send) and isinstance(command.message, Say):
        # Chat text: a line not starting with "/", a "//" escape, or several lines.
        assert (
            not line.startswith("/")
            or "\n" in line
            or (line.startswith("//") and command.message.text == line[1:])
        )
    if isinstance(command, Reply):
        assert role == "server"
        assert not line.startswith("/") or "\n" in line or line.startswith("//")
    if line.startswith("/") and not line.startswith("//") and "\n" not in line:
        # A command line: a command of this role, or a hint; never chat.
        assert not isinstance(command, Reply)
        assert not (isinstance(command, Send) and isinstance(command.message, Say))
        name = line[1:].split(" ", 1)[0]
        if name not in COMMANDS[role]:
            assert isinstance(command, BadCommand)
            assert command.hint.startswith("unknown command")
