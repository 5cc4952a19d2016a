"""Plain-text datagrams: what the classic scripts, ``nc -u`` and ``socat`` speak.

Datagram boundaries are line boundaries: a datagram holds one line (the
classic scripts send no newline) or several newline-terminated lines (netcat
sends what it read, often ``"line\\n"``). A peer that ends its datagrams with a
newline gets its replies the same way, so both kinds of program display them
well.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def encode(self, text: str) -> bytes:
        """The datagram that carries ``text`` to this peer."""
        return (text + self.ending).encode("utf-8", errors="replace")
