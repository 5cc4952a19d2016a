"""Plain-text datagrams: what the classic scripts, ``nc -u`` and ``socat`` speak.

Datagram boundaries are line boundaries: a datagram holds one line (the
classic scripts send no newline) or several newline-terminated lines (netcat
sends what it read, often ``"line\\n"``). A peer that ends its datagrams with a
newline gets its replies the same way, so both kinds of program display them
well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ._chat import Presence, PresenceKind, Refused, Said, SaidKind, ServerMessage
from ._safe import visible


def split_plaintext(data: bytes) -> list[str]:
    """Decode ``data`` as UTF-8 (undecodable bytes replaced) and split it into lines.

    One trailing newline ends the last line rather than starting an empty one,
    and a ``"\\r\\n"`` ending counts as a newline. An empty datagram is one empty
    line, as the classic server shows it.
    """
    text = data.decode("utf-8", errors="replace")
    text = text.removesuffix("\n")
    return [line.removesuffix("\r") for line in text.split("\n")]


@dataclass(slots=True)
class PlainStyle:
    """How one plain-text peer ends its datagrams (``""``, ``"\n"`` or ``"\r\n"``), so we
    answer alike."""

    ending: str = ""

    def observe(self, data: bytes) -> None:
        """Learn the peer's style from a datagram it sent."""
        if data.endswith(b"\r\n"):
            self.ending = "\r\n"
        elif data.endswith(b"\n"):
            self.ending = "\n"
        else:
            self.ending = ""

    def text_limit(self, max_datagram: int) -> int:
        """The most bytes of text one datagram to this peer can carry."""
        return max_datagram - len(self.ending)

    def encode(self, text: str) -> bytes:
        """The datagram that carries ``text`` to this peer."""
        return (text + self.ending).encode("utf-8", errors="replace")


def clock(time: float) -> str:
    """``HH:MM`` of a wall-clock ``time``, in the local time zone (``??:??`` if it is
    beyond what the platform can show: a time from the network may be anything)."""
    try:
        return datetime.fromtimestamp(time).strftime("%H:%M")
    except (OverflowError, OSError, ValueError):
        return "??:??"


def plain_line(message: ServerMessage) -> str | None:
    """The text line a plain-text peer gets for ``message`` (``None``: nothing).

    The operator's reply is the bare text, as the classic server sent it.
    """
    match message:
        case Said(kind=SaidKind.REPLY, text=text):
            return text
        case Said(sender=sender, text=text, time=time, kind=kind):
            who = visible(sender)
            body = visible(text)
            if kind == SaidKind.ACT:
                return f"[{clock(time)}] * {who} {body}"
            if kind == SaidKind.PRIVATE:
                return f"[{clock(time)}] *{who}* {body}"
            return f"[{clock(time)}] <{who}> {body}"
        case Presence(what=PresenceKind.JOINED, name=name):
            return f"--> {visible(name)} joined"
        case Presence(what=PresenceKind.LEFT, name=name, detail=detail):
            return f"<-- {visible(name)} left" + (f" ({visible(detail)})" if detail else "")
        case Presence(what=PresenceKind.RENAMED, name=name, detail=detail):
            return f"--- {visible(name)} is now known as {visible(detail)}"
        case Refused(text=text):
            return f"*** {visible(text)}"
        case _:
            return None
