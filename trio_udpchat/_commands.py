"""What a typed line means: chat to send, or a command for this program.

A line starting with ``/`` is a command; ``//`` escapes a literal ``/``.
Unknown or malformed commands get a hint and are never sent as chat.
Commands are one line: a multi-line message (a paste) is always text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from ._chat import Act, AskWho, ClientMessage, Rename, Say, Whisper

#: Which end a terminal belongs to.
Role = Literal["server", "client"]


@dataclass(frozen=True, slots=True)
class Send:
    """Client: send ``message``; ``text`` is the typed line, for reports."""

    message: ClientMessage
    text: str


@dataclass(frozen=True, slots=True)
class Leave:
    """Client: ``/quit [REASON]``."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Operator: a plain line, to the member that spoke last."""

    text: str


@dataclass(frozen=True, slots=True)
class ToAll:
    """Operator: ``/all TEXT``."""

    text: str


@dataclass(frozen=True, slots=True)
class ToOne:
    """Operator: ``/to NAME TEXT``."""

    name: str
    text: str


@dataclass(frozen=True, slots=True)
class ShowWho:
    """Operator: ``/who``."""


@dataclass(frozen=True, slots=True)
class ShowPending:
    """List the messages not yet acknowledged."""


@dataclass(frozen=True, slots=True)
class ShowHelp:
    """List the commands."""


@dataclass(frozen=True, slots=True)
class ShowStats:
    """Show the traffic counters and round-trip times."""


@dataclass(frozen=True, slots=True)
class BadCommand:
    """The line was an unknown or malformed command; ``hint`` says what to do."""

    hint: str


Command: TypeAlias = (
    Send | Leave | Reply | ToAll | ToOne | ShowWho | ShowPending | ShowHelp | ShowStats | BadCommand
)

#: Each role's commands: usage and what it does, for /help and usage hints.
COMMANDS: Final[dict[Role, dict[str, tuple[str, str]]]] = {
    "client": {
        "nick": ("/nick NEW", "change your name"),
        "me": ("/me ACTION", "say what you do"),
        "msg": ("/msg NAME TEXT", "a private message"),
        "who": ("/who", "who is here"),
        "quit": ("/quit [REASON]", "leave"),
        "pending": ("/pending", "your messages not yet acknowledged"),
        "stats": ("/stats", "traffic, retransmissions, drops, round-trip time"),
        "help": ("/help", "this list"),
    },
    "server": {
        "all": ("/all TEXT", "speak to the whole room"),
        "to": ("/to NAME TEXT", "speak to one member"),
        "who": ("/who", "who is here"),
        "pending": ("/pending", "your messages not yet acknowledged"),
        "stats": ("/stats", "traffic, retransmissions, drops, round-trip time"),
        "help": ("/help", "this list"),
    },
}


def parse_line(line: str, role: Role = "client") -> Command:
    """Interpret one typed line on a ``role`` terminal."""
    if not line.startswith("/") or "\n" in line:
        return _plain(line, role)
    if line.startswith("//"):
        return _plain(line[1:], role)
    name, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    usage, _ = COMMANDS[role].get(name, ("", ""))
    if not usage:
        return BadCommand(f"unknown command /{name} (try /help; start with // to send a '/')")
    words = rest.split(maxsplit=1)
    command = _command(name, rest, words, line, role)
    return command if command is not None else BadCommand(f"usage: {usage}")


def _plain(text: str, role: Role) -> Command:
    return Send(Say(text), text) if role == "client" else Reply(text)


def _command(name: str, rest: str, words: list[str], line: str, role: Role) -> Command | None:
    """The command, or ``None`` if its arguments do not fit its usage."""
    if name in ("who", "pending", "stats", "help"):
        if rest:
            return None
        if name == "pending":
            return ShowPending()
        if name == "stats":
            return ShowStats()
        if name == "help":
            return ShowHelp()
        return Send(AskWho(), line) if role == "client" else ShowWho()
    if name == "quit":
        return Leave(rest)
    if name in ("me", "all") and rest:
        return Send(Act(rest), line) if name == "me" else ToAll(rest)
    if name == "nick" and len(words) == 1:
        return Send(Rename(words[0]), line)
    if name in ("msg", "to") and len(words) == 2:
        return Send(Whisper(words[0], words[1]), line) if name == "msg" else ToOne(*words)
    return None
