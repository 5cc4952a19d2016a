"""Events to the lines a person reads. The classic demo's strings live here.

``None`` means the event is not shown (the classic transcript stays as it was).
"""

from __future__ import annotations

from typing import Final

from ._colour import PLAIN, Style
from ._commands import Role
from ._events import (
    CommandRejected,
    Connecting,
    Event,
    HelpListed,
    Listening,
    MessageDelivered,
    MessageReceived,
    MessageTooLong,
    NameAssigned,
    NoRecipient,
    NotDelivered,
    NotEncrypted,
    PeerLeft,
    PendingListed,
    PresenceNoticed,
    RequestRefused,
    RoomMessage,
    RoomNotice,
    ServerAnswered,
    ServerRefused,
    ServerSilent,
    SessionLost,
    SessionStarted,
    StatsListed,
    WhoListed,
)
from ._names import show_address
from ._plaintext import clock
from ._safe import visible
from ._stats import StatsSummary

SERVER_PROMPT: Final = "Input message to send to client: "
CLIENT_PROMPT: Final = "Input message to send to server: "
LISTENING: Final = "Listening at {address!r}"
CLIENT_SAYS: Final = "The client at {address!r} says {text!r}"
SERVER_REPLIED: Final = "The server replied with {text!r}"

NOT_ENCRYPTED: Final = (
    "*** this chat is not encrypted: anyone on the network path can read and alter it"
    " (a shared passphrase: --key-file PATH or TRIO_UDPCHAT_KEY)"
)

PROMPTS: Final[dict[Role, str]] = {"server": SERVER_PROMPT, "client": CLIENT_PROMPT}


def _size(count: int) -> str:
    if count < 10_000:
        return f"{count} B"
    if count < 10_000_000:
        return f"{count / 1000:.1f} kB"
    return f"{count / 1_000_000:.1f} MB"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _rtt(summary: StatsSummary) -> str:
    measured = [trip for trip in summary.round_trips if trip.srtt is not None]
    if not summary.round_trips:
        return "rtt: no session"
    if not measured:
        return "rtt: not measured yet"
    if len(summary.round_trips) == 1:
        (trip,) = measured
        assert trip.srtt is not None
        return f"rtt {_ms(trip.srtt)} (variation {_ms(trip.rttvar)}, timeout {_ms(trip.rto)})"
    srtts = sorted(trip.srtt for trip in measured if trip.srtt is not None)
    return (
        f"rtt over {len(srtts)} sessions: min {_ms(srtts[0])},"
        f" median {_ms(srtts[len(srtts) // 2])}, max {_ms(srtts[-1])}"
    )


def stats_line(summary: StatsSummary) -> str:
    """One line summing up ``summary``: what /stats prints, and ``-v`` logs on exit."""
    s = summary
    parts = [
        f"sent {s.datagrams_out} datagrams ({_size(s.bytes_out)})",
        f"received {s.datagrams_in} ({_size(s.bytes_in)})",
        f"{s.retransmissions} retransmitted",
        "dropped: " + (", ".join(f"{why} {n}" for why, n in s.drops) if s.drops else "none"),
    ]
    if s.errors:
        parts.append("errors: " + ", ".join(f"{why} {n}" for why, n in s.errors))
    parts.append(_rtt(s))
    return "; ".join(parts)


def _said(name: str, text: str, kind: str) -> str:
    if kind == "act":
        return f"* {name} {text}"
    if kind == "private":
        return f"*{name}* {text}"
    return f"<{name}> {text}"


def _presence(what: str, name: str, detail: str) -> str:
    if what == "joined":
        return f"--> {name} joined"
    if what == "renamed":
        return f"--- {name} is now known as {detail}"
    return f"<-- {name} left" + (f" ({detail})" if detail else "")


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


#: Line starts that mark a notice (dimmed in colour); warnings (``!``) stay bright.
_NOTICES: Final = ("*** ", "--> ", "<-- ", "--- ")


def render(
    event: Event,
    role: Role,
    *,
    receipts: bool = False,
    status: bool = False,
    style: Style = PLAIN,
) -> str | None:
    """The line to print for ``event`` on a ``role`` terminal, or ``None``.

    With ``receipts``, acknowledged messages are confirmed too; with ``status``,
    the first connection (connecting, connected) is announced as well, which the
    classic transcript does not show. ``style`` colours names and dims notices
    (the classic lines are never coloured).
    """
    if isinstance(event, RoomMessage):
        said = _said(style.name(visible(event.name)), visible(event.text), event.kind)
        stamp = style.dim(f"[{clock(event.time)}]")
        return f"{stamp} " + ("(history) " if event.history else "") + said
    if isinstance(event, PresenceNoticed):
        name = style.name(visible(event.name))
        return style.dim(_presence(event.what, name, visible(event.detail)))
    line = _line(event, role, receipts=receipts, status=status)
    if line is not None and line.startswith(_NOTICES):
        return style.dim(line)
    return line


def _line(event: Event, role: Role, *, receipts: bool, status: bool) -> str | None:
    match event:
        case Listening(address=address, workers=workers):
            line = LISTENING.format(address=show_address(address))
            return line if workers == 1 else f"{line} with {workers} workers"
        case MessageReceived(sender=sender, text=text):
            if role == "server":
                return CLIENT_SAYS.format(address=show_address(sender), text=text)
            return SERVER_REPLIED.format(text=text)
        case NoRecipient(left=None):
            return "*** nobody to reply to yet: no client has spoken, so nothing was sent"
        case NoRecipient(left=left) if left is not None:
            return f"*** the client at {show_address(left)!r} has left, so nothing was sent"
        case MessageTooLong(size=size, limit=limit):
            return f"! message too long: {size} bytes, at most {limit} can go; nothing was sent"
        case NotDelivered(text=text, reason=reason):
            return f"! not delivered: {text!r} ({reason})"
        case ServerSilent(server=server, seconds=seconds):
            return (
                f"! no answer from the server at {show_address(server)!r} for {seconds:.0f} s"
                " (is it running?); still trying, and your messages wait"
            )
        case ServerRefused(server=server):
            return (
                f"! nothing is listening at {show_address(server)!r} (connection refused);"
                " is the server running?"
            )
        case ServerAnswered(server=server):
            return f"*** the server at {show_address(server)!r} is answering now"
        case SessionLost(server=server):
            return (
                f"*** the server at {show_address(server)!r} no longer has this session"
                " (it restarted, or gave up on us); reconnecting, and resending what it missed"
            )
        case SessionStarted(server=server, reconnect=True):
            return f"*** reconnected to the server at {show_address(server)!r}"
        case Connecting(server=server) if status:
            return f"*** connecting to the server at {show_address(server)!r}"
        case SessionStarted(server=server) if status:
            return f"*** connected to the server at {show_address(server)!r}"
        case StatsListed(summary=summary):
            return "*** stats: " + stats_line(summary)
        case MessageDelivered(text=text) if receipts:
            return f"*** delivered: {text!r}"
        case PeerLeft(address=address, reason=reason) if reason in ("timed out", "not answering"):
            return f"*** the client at {show_address(address)!r} {reason}; its session is closed"
        case PendingListed(texts=()):
            return "*** nothing is waiting for an acknowledgement"
        case PendingListed(texts=texts):
            waiting = ", ".join(repr(text) for text in texts)
            return f"*** {len(texts)} waiting for an acknowledgement: {waiting}"
        case HelpListed(commands=commands):
            listed = "; ".join(f"{usage}: {what}" for usage, what in commands)
            return f"*** commands: {listed}; start a line with // to send a '/'"
        case CommandRejected(hint=hint):
            return f"! {hint}"
        case WhoListed(entries=entries):
            here = ", ".join(
                f"{visible(name)} ({'operator, ' if operator else ''}idle {_duration(idle)}"
                f"{f', on {visible(server)}' if server else ''})"
                for name, idle, operator, server in entries
            )
            return f"*** {len(entries)} here: {here}"
        case RoomNotice(text=text):
            return f"*** {visible(text)}"
        case RequestRefused(text=text):
            return f"! {visible(text)}"
        case NameAssigned(name=name):
            return f"*** you are now known as {visible(name)}"
        case NotEncrypted():
            return NOT_ENCRYPTED
        case _:
            return None
