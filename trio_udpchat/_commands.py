"""What a typed line means: text to send, or a command for this program.

A line starting with ``/`` is a command; ``//`` escapes a literal ``/``.
Unknown commands are never sent as chat. Commands are one line: a multi-line
message (a paste) is always text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias


@dataclass(frozen=True, slots=True)
class Say:
    """Send ``text`` (to the server, or from the operator to the last speaker)."""

    text: str


@dataclass(frozen=True, slots=True)
class ShowPending:
    """List the messages not yet acknowledged."""


@dataclass(frozen=True, slots=True)
class ShowHelp:
    """List the commands."""


@dataclass(frozen=True, slots=True)
class BadCommand:
    """The line was an unknown or malformed command; ``hint`` says what to do."""

    hint: str


Command: TypeAlias = Say | ShowPending | ShowHelp | BadCommand

#: Command names and what they do, for /help.
COMMANDS: Final = {
    "pending": "list your messages that are not yet acknowledged",
    "help": "show this list",
}


def parse_line(line: str) -> Command:
    """Interpret one typed line."""
    if not line.startswith("/") or "\n" in line:
        return Say(line)
    if line.startswith("//"):
        return Say(line[1:])
    name, _, rest = line[1:].partition(" ")
    if name == "pending" and not rest.strip():
        return ShowPending()
    if name == "help" and not rest.strip():
        return ShowHelp()
    if name in COMMANDS:
        return BadCommand(f"/{name} takes no arguments")
    return BadCommand(f"unknown command /{name} (try /help; start with // to send a '/')")
