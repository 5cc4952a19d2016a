"""The client's sans-IO core: get a session, send text, hear replies.

States: ``idle`` until :meth:`ClientCore.start`; ``connecting`` (hellos go out
with exponential backoff until a welcome arrives; typed messages wait in a
bounded queue); ``connected``; and ``closed``. In plain mode there is no
session: text goes out as bare UTF-8.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Final, Literal

from ._config import Config
from ._endpoint import Endpoint
from ._errors import LocalProtocolError
from ._events import (
    Address,
    MessageReceived,
    MessageTooLong,
    NotDelivered,
    ServerAnswered,
    ServerRefused,
    ServerSilent,
    SessionLost,
    SessionStarted,
)
from ._plaintext import PlainStyle, split_plaintext
from ._wire import TEXT_OVERHEAD, Bye, Hello, Reset, Text, Welcome, encode_frame, is_frame

State = Literal["idle", "connecting", "connected", "closed"]

_NO_SESSION: Final = "the server never answered"


class ClientCore(Endpoint):
    """Talks to one server at ``server``.

    Call :meth:`start` once, then feed it datagrams, lines and timer ticks.
    """

    def __init__(
        self,
        server: Address,
        config: Config | None = None,
        *,
        plain: bool = False,
        randbits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        super().__init__(config or Config())
        self.server = server
        self.plain = plain
        self._randbits = randbits
        self.state: State = "connected" if plain else "idle"
        self._style = PlainStyle()
        self._session = 0
        self._nonce = 0
        self._queue: list[str] = []
        # Hello schedule while connecting.
        self._hello_at = 0.0
        self._hello_interval = 0.0
        self._silent_since = 0.0
        self._reported = False  # told the user the server is silent or refused

    # -- inputs -------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin: send the first hello (framed mode)."""
        if self.state == "idle":
            self._begin_connecting(now)

    def send_text(self, text: str, now: float) -> None:
        """Send ``text`` to the server, or queue it until we have a session."""
        if self.state == "closed":
            raise LocalProtocolError("send_text() after close()")
        data = self._encode_text(text)
        if data is None:
            return
        if self.state == "connected":
            self._send(data, self.server)
        elif len(self._queue) >= self.config.max_queued_messages:
            self._emit(NotDelivered(text, "the send queue is full"))
        else:
            self._queue.append(text)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Take in one datagram; only the server's are considered."""
        self._count_in(data)
        if addr != self.server:
            self._drop("not-from-server")
            return
        if self.plain or not is_frame(data):
            if self.plain:
                self._answered()
            self._style.observe(data)
            for line in split_plaintext(data):
                self._emit(MessageReceived(addr, line, plain=True))
            return
        match self._decode(data):
            case Welcome(nonce=nonce, session=session):
                if self.state == "connecting" and nonce == self._nonce:
                    self._welcomed(session)
                else:
                    self._drop("stale-welcome")
            case Text(session=session, text=text):
                if self.state == "connected" and session == self._session:
                    self._emit(MessageReceived(addr, text))
                else:
                    self._drop("unknown-session")
            case Reset(session=session):
                if self.state == "connected" and session == self._session:
                    self._emit(SessionLost(self.server))
                    self._begin_connecting(now)
                else:
                    self._drop("unknown-session")
            case Hello() | Bye():
                self._drop("unexpected")
            case None:
                pass

    def note_unreachable(self, now: float) -> None:
        """The OS says nothing listens at the server's port (ICMP unreachable)."""
        if self.state == "closed":
            return
        if self.state == "connected" and not self.plain:
            self._begin_connecting(now)
        if not self._reported:
            self._reported = True
            self._emit(ServerRefused(self.server))

    def close(self, now: float) -> None:
        """Say goodbye; whatever is still queued is reported not delivered."""
        if self.state == "connected" and not self.plain:
            self._send_frame(Bye(self._session), self.server)
        for text in self._queue:
            self._emit(NotDelivered(text, _NO_SESSION))
        self._queue.clear()
        self.state = "closed"

    def has_queued(self) -> bool:
        """Whether typed messages are waiting for a session."""
        return bool(self._queue)

    # -- timers -------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When the next hello or silence report is due, if connecting."""
        if self.state != "connecting":
            return None
        if self._reported:
            return self._hello_at
        return min(self._hello_at, self._silent_since + self.config.server_silent_after)

    def handle_timer(self, now: float) -> None:
        """Retransmit the hello and report silence when due."""
        if self.state != "connecting":
            return
        # Compare against the very deadline get_timer() gave, so float rounding
        # can never leave a due timer unhandled (and the I/O layer spinning).
        if not self._reported and now >= self._silent_since + self.config.server_silent_after:
            self._reported = True
            self._emit(ServerSilent(self.server, now - self._silent_since))
        if now >= self._hello_at:
            self._hello_interval = min(self._hello_interval * 2, self.config.hello_retry_cap)
            self._send_hello(now)

    # -- internals ----------------------------------------------------------

    def _encode_text(self, text: str) -> bytes | None:
        if self.plain:
            data = self._style.encode(text)
            overhead = len(data) - len(text.encode("utf-8", errors="replace"))
        else:
            data = encode_frame(Text(self._session, text))
            overhead = TEXT_OVERHEAD
        if len(data) > self.config.max_datagram:
            self._emit(
                MessageTooLong(text, len(data) - overhead, self.config.max_datagram - overhead)
            )
            return None
        return data

    def _answered(self) -> None:
        if self._reported:
            self._reported = False
            self._emit(ServerAnswered(self.server))

    def _begin_connecting(self, now: float) -> None:
        self.state = "connecting"
        self._nonce = self._randbits(64)
        self._silent_since = now
        self._hello_interval = self.config.hello_retry_initial
        self._send_hello(now)

    def _send_hello(self, now: float) -> None:
        self._send_frame(Hello(self._nonce), self.server)
        self._hello_at = now + self._hello_interval

    def _welcomed(self, session: int) -> None:
        self.state = "connected"
        self._session = session
        self._emit(SessionStarted(self.server))
        self._answered()
        queued, self._queue = self._queue, []
        for text in queued:
            self._send_frame(Text(session, text), self.server)
