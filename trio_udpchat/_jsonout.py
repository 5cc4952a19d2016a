"""``--json``: one JSON object per event on stdout, for bots and scripts.

Every object has ``"type"`` and ``"time"`` (Unix seconds, when the event was
shown; for a room message, when it was said). The fields by type are listed in
the README; a new field may appear, an existing one keeps its meaning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from ._commands import Role
from ._events import (
    Address,
    Connecting,
    Event,
    Listening,
    MessageDelivered,
    MessageReceived,
    MessageTooLong,
    NameAssigned,
    NoRecipient,
    NotDelivered,
    PeerJoined,
    PeerLeft,
    PeerMoved,
    PresenceNoticed,
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
from ._render import render


def _address(address: Address) -> list[Any]:
    return list(show_address(address))


def _fields(event: Event, role: Role) -> dict[str, Any] | None:
    """The type-specific fields of ``event``'s object (``None``: the rendered text)."""
    match event:
        case MessageReceived(sender=sender, text=text, plain=plain):
            who = "server" if role == "client" else f"{sender[0]}:{sender[1]}"
            return {
                "type": "message",
                "from": who,
                "text": text,
                "kind": "say",
                "address": _address(sender),
                "plain": plain,
            }
        case RoomMessage(name=name, text=text, kind=kind, address=address, history=history):
            fields: dict[str, Any] = {"type": "message", "from": name, "text": text, "kind": kind}
            if address is not None:
                fields["address"] = _address(address)
            return fields | {"history": history}
        case PresenceNoticed(what=what, name=name, detail=detail):
            return {"type": "presence", "what": what, "name": name, "detail": detail}
        case NotDelivered(text=text, reason=reason):
            return {"type": "delivery_failed", "text": text, "reason": reason}
        case MessageTooLong(text=text, size=size, limit=limit):
            reason = f"too long: {size} bytes, at most {limit}"
            return {"type": "delivery_failed", "text": text, "reason": reason}
        case NoRecipient(text=text):
            return {"type": "delivery_failed", "text": text, "reason": "nobody to reply to"}
        case MessageDelivered(text=text):
            return {"type": "delivered", "text": text}
        case Listening(address=address, workers=workers):
            fields = {"type": "status", "state": "listening", "address": _address(address)}
            return fields if workers == 1 else fields | {"workers": workers}
        case Connecting(server=server):
            return {"type": "status", "state": "connecting", "address": _address(server)}
        case SessionStarted(server=server, reconnect=reconnect):
            state = "reconnected" if reconnect else "connected"
            return {"type": "status", "state": state, "address": _address(server)}
        case ServerSilent(server=server, seconds=seconds):
            return {
                "type": "status",
                "state": "silent",
                "address": _address(server),
                "seconds": round(seconds, 3),
            }
        case ServerRefused(server=server):
            return {"type": "status", "state": "refused", "address": _address(server)}
        case ServerAnswered(server=server):
            return {"type": "status", "state": "answering", "address": _address(server)}
        case SessionLost(server=server):
            return {"type": "status", "state": "session_lost", "address": _address(server)}
        case PeerJoined(address=address):
            return {"type": "peer", "what": "joined", "address": _address(address)}
        case PeerLeft(address=address, reason=reason):
            return {"type": "peer", "what": "left", "address": _address(address), "reason": reason}
        case PeerMoved(old=old, new=new):
            return {
                "type": "peer",
                "what": "moved",
                "address": _address(new),
                "from": _address(old),
            }
        case NameAssigned(name=name):
            return {"type": "name", "name": name}
        case RoomNotice(text=text):
            return {"type": "notice", "text": text}
        case WhoListed(entries=entries):
            members = [
                {"name": name, "idle": idle, "operator": operator, "server": server}
                for name, idle, operator, server in entries
            ]
            return {"type": "who", "members": members}
        case StatsListed(summary=summary):
            stats = asdict(summary)
            stats["drops"] = dict(summary.drops)
            stats["errors"] = dict(summary.errors)
            return {"type": "stats"} | stats
        case _:
            return None


def json_formatter(
    role: Role, clock: Callable[[], float] = time.time, *, extra: Mapping[str, Any] | None = None
) -> Callable[[Event], str]:
    """A formatter for :class:`~trio_udpchat._terminal.StdioTerminal`: events as JSON lines.

    Events without fields of their own (help, /pending, hints, ...) become
    ``{"type": "notice", "text": ...}`` with the line a person would read.
    ``extra`` fields go into every object (a worker's ``{"worker": 2}``).
    """
    added = dict(extra or {})

    def format_event(event: Event) -> str:
        fields = _fields(event, role)
        if fields is None:
            text = render(event, role, receipts=True, status=True)
            fields = {"type": "notice", "text": text or type(event).__name__}
        when = event.time if isinstance(event, RoomMessage | PresenceNoticed) else clock()
        ordered = {"type": fields.pop("type"), "time": round(when, 3), **fields, **added}
        return json.dumps(ordered, ensure_ascii=False)

    return format_event
