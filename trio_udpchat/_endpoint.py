"""What the server and client cores share: an outbox, an event queue, counters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ._config import Config
from ._crypto import Sealer
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import Address, Event, MessageDelivered
from ._reliable import Message
from ._rtt import RttEstimator
from ._sealed import CLEAR, Encoder, open_frame_untrusted, sealing
from ._session import Session
from ._stats import StatsSummary, summarize
from ._wire import (
    DATA_OVERHEAD,
    SEALED,
    SEALED_DATA_OVERHEAD,
    Challenge,
    Denied,
    Frame,
    Hello,
    decode_frame_untrusted,
    encode_frame,
    frame_type,
)

#: Frames that are always clear: they come before a key can be known or checked.
HandshakeFrame = Hello | Challenge | Denied


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
        #: The room key, once known; with ``_sealed_only``, clear session frames are
        #: refused (a room with a passphrase never trusts an unauthenticated one).
        self._key: bytes | None = None
        self._sealed_only = False
        self._encode: Encoder = CLEAR
        self._data_overhead = DATA_OVERHEAD

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

    def stats_summary(self) -> StatsSummary:
        """A read-only summary of :attr:`stats` and the open sessions' round-trip times."""
        return summarize(self.stats, self._round_trips())

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` wants to run next, or ``None`` for never."""
        return None

    def handle_timer(self, now: float) -> None:
        """Do whatever was due at or before ``now``."""

    def _collect(self, now: float, out: list[tuple[bytes, Address]]) -> None:
        """Append what the sessions want to send at ``now`` (subclasses)."""

    def _round_trips(self) -> list[RttEstimator]:
        """The RTT estimators of the open sessions (subclasses)."""
        return []

    def _count_in(self, data: bytes) -> None:
        self.stats["datagrams_in"] += 1
        self.stats["bytes_in"] += len(data)

    def _drop(self, reason: str) -> None:
        self.stats["dropped:" + reason] += 1

    def _decode(self, data: bytes) -> Frame | None:
        """The frame in ``data``, opened with the room key if sealed; ``None`` (and
        counted) if it is invalid, does not authenticate, or should have been sealed."""
        try:
            if frame_type(data) == SEALED:
                if self._key is None:
                    raise RemoteProtocolError("a sealed frame, and no key here", reason="no-key")
                return open_frame_untrusted(data, self._key)
            frame = decode_frame_untrusted(data)
            if self._sealed_only and not isinstance(frame, HandshakeFrame):
                raise RemoteProtocolError("a clear frame in a room with a key", reason="not-sealed")
            return frame
        except RemoteProtocolError as exc:
            self._drop(exc.reason)
            return None

    def _send(self, data: bytes, addr: Address) -> None:
        self._outbox.append((data, addr))

    def _use_key(self, key: bytes, sealer: Sealer) -> None:
        """Seal session frames under ``key`` from now on (``sealer`` draws the nonces)."""
        self._key = key
        self._encode = sealing(sealer)
        self._data_overhead = SEALED_DATA_OVERHEAD

    def _new_session(self, session_id: int, peer: Address, now: float) -> Session:
        """A session that encodes frames as this endpoint does (sealed or clear)."""
        return Session(
            session_id, peer, self.config, now, self.stats, self._encode, self._data_overhead
        )

    def _send_frame(self, frame: Frame, addr: Address) -> None:
        """Send ``frame``: sealed if the room has a key, unless it is a handshake frame."""
        clear = isinstance(frame, HandshakeFrame)
        self._send(encode_frame(frame) if clear else self._encode.frame(frame), addr)

    @staticmethod
    def _utf8(text: str) -> bytes:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(f"text is not encodable as UTF-8: {exc}") from None

    def _delivered(self, messages: Sequence[Message]) -> None:
        for message in messages:
            if message.text is not None:
                self._emit(MessageDelivered(message.text))

    def _emit(self, event: Event) -> None:
        self._events.append(event)
