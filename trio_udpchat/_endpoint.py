"""What the server and client cores share: an outbox, an event queue, counters."""

from __future__ import annotations

from collections import Counter

from ._config import Config
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import Address, Event, MessageDelivered
from ._reliable import Message
from ._wire import Frame, decode_frame_untrusted, encode_frame


class Endpoint:
    """Base of the sans-IO cores.

    Inputs are method calls that take ``now``; outputs are collected here until
    the I/O layer drains them with :meth:`datagrams_to_send` and :meth:`pop_events`.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        #: Counters by name: ``datagrams_in``, ``bytes_out``, ``retransmissions``,
        #: ``dropped:<reason>``, ...
        self.stats: Counter[str] = Counter()
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: list[Event] = []

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Take the datagrams that should go out at ``now``, oldest first."""
        out, self._outbox = self._outbox, []
        self._collect(now, out)
        if out:  # counted once per call, not per datagram: a relay sends many per call
            self.stats["datagrams_out"] += len(out)
            self.stats["bytes_out"] += sum(len(data) for data, _ in out)
        return out

    def pop_events(self) -> list[Event]:
        """Take the events that happened since the last call, oldest first."""
        out, self._events = self._events, []
        return out

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` wants to run next, or ``None`` for never."""
        return None

    def handle_timer(self, now: float) -> None:
        """Do whatever was due at or before ``now``."""

    def _collect(self, now: float, out: list[tuple[bytes, Address]]) -> None:
        """Append what the sessions want to send at ``now`` (subclasses)."""

    def _count_in(self, data: bytes) -> None:
        self.stats["datagrams_in"] += 1
        self.stats["bytes_in"] += len(data)

    def _drop(self, reason: str) -> None:
        self.stats["dropped:" + reason] += 1

    def _decode(self, data: bytes) -> Frame | None:
        try:
            return decode_frame_untrusted(data)
        except RemoteProtocolError as exc:
            self._drop(exc.reason)
            return None

    def _send(self, data: bytes, addr: Address) -> None:
        self._outbox.append((data, addr))

    def _send_frame(self, frame: Frame, addr: Address) -> None:
        self._send(encode_frame(frame), addr)

    @staticmethod
    def _utf8(text: str) -> bytes:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(f"text is not encodable as UTF-8: {exc}") from None

    def _delivered(self, messages: list[Message]) -> None:
        for message in messages:
            if message.text is not None:
                self._emit(MessageDelivered(message.text))

    def _emit(self, event: Event) -> None:
        self._events.append(event)
