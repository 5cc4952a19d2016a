"""Room events as they travel on the bus between servers: one JSON object each.

JSON, not the chat codec: the bus is read by servers only, a field added
later is ignored by an older server, and ``redis-cli`` shows it readably.
Members are named by their bus-wide key (``"server/local-id"``); the
operator of a server, by the empty key. Every envelope carries the server it
comes from, how people see that server, and its number there (so a server
knows its own events when the bus hands them back)::

    {"from": server id, "label": str, "n": int, "event": "said" | "presence" | "whisper", ...}
      said      "sender": key, "name": str, "text": str, "time": float, "kind": int,
                "owner": str
      presence  "subject": key, "what": int, "name": str, "detail": str, "time": float,
                "crowd": int, "owner": str, "quiet": bool
      whisper   "to": key, "name": str, "text": str, "time": float
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._chat import PresenceKind, SaidKind
from ._errors import RemoteProtocolError
from ._room import MemberId, Origin, RoomEvent, RoomPresence, RoomSaid, RoomWhisper


@dataclass(frozen=True, slots=True)
class Envelope:
    """A room event from ``origin``, its ``number`` there."""

    origin: Origin
    number: int
    event: RoomEvent


def encode_envelope(envelope: Envelope, key: Callable[[MemberId], str]) -> bytes:
    """The bytes of ``envelope``; ``key`` names the sender's local members on the bus."""
    head: dict[str, Any] = {
        "from": envelope.origin.server,
        "label": envelope.origin.label,
        "n": envelope.number,
    }
    match envelope.event:
        case RoomSaid(sender=sender, name=name, text=text, time=time, kind=kind, owner=owner):
            sender_key = "" if sender is None else key(sender)
            body: dict[str, Any] = {"event": "said", "sender": sender_key, "name": name}
            body |= {"text": text, "time": time, "kind": int(kind), "owner": owner}
        case RoomPresence() as presence:
            body = {
                "event": "presence",
                "subject": key(presence.subject),
                "what": int(presence.what),
                "name": presence.name,
                "detail": presence.detail,
                "time": presence.time,
                "crowd": presence.crowd,
                "owner": presence.owner,
                "quiet": presence.quiet,
            }
        case RoomWhisper(to=to, name=name, text=text, time=time):
            body = {"event": "whisper", "to": to, "name": name, "text": text, "time": time}
    return json.dumps(head | body, ensure_ascii=False, separators=(",", ":")).encode()


class _Fields:
    """Typed reads off a decoded JSON object; anything amiss is a RemoteProtocolError."""

    __slots__ = ("_data",)

    def __init__(self, data: object) -> None:
        if not isinstance(data, dict):
            raise _malformed("not an object")
        self._data = data

    def _get(self, name: str, kind: type | tuple[type, ...]) -> Any:
        value = self._data.get(name)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise _malformed(f"field {name!r} is missing or not {kind}")
        return value

    def text(self, name: str) -> str:
        return str(self._get(name, str))

    def whole(self, name: str) -> int:
        return int(self._get(name, int))

    def flag(self, name: str) -> bool:
        return bool(self._get(name, bool))

    def time(self, name: str) -> float:
        value = float(self._get(name, (int, float)))
        if not math.isfinite(value):
            raise _malformed(f"field {name!r} is not a finite number")
        return value

    def enum(self, name: str, kind: type[SaidKind] | type[PresenceKind]) -> Any:
        try:
            return kind(self.whole(name))
        except ValueError:
            raise _malformed(f"field {name!r} is not a {kind.__name__}") from None


def _malformed(why: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"bus message: {why}", reason="bus-malformed")


def decode_envelope_untrusted(data: bytes) -> Envelope:
    """Parse one envelope; raises :class:`RemoteProtocolError` and nothing else.

    Members of the sending server keep their keys (strings) in the event.
    """
    try:
        fields = _Fields(json.loads(data))
    except (ValueError, RecursionError):
        raise _malformed("not JSON") from None
    origin = Origin(fields.text("from"), fields.text("label"))
    number = fields.whole("n")
    event: RoomEvent
    match fields.text("event"):
        case "said":
            sender = fields.text("sender") or None
            name, text, time = fields.text("name"), fields.text("text"), fields.time("time")
            kind = fields.enum("kind", SaidKind)
            event = RoomSaid(sender, name, text, time, kind, fields.text("owner"))
        case "presence":
            event = RoomPresence(
                fields.text("subject"),
                fields.enum("what", PresenceKind),
                fields.text("name"),
                fields.text("detail"),
                fields.time("time"),
                fields.whole("crowd"),
                fields.text("owner"),
                fields.flag("quiet"),
            )
        case "whisper":
            to, name = fields.text("to"), fields.text("name")
            event = RoomWhisper(to, name, fields.text("text"), fields.time("time"))
        case other:
            raise _malformed(f"unknown event {other!r}")
    return Envelope(origin, number, event)
