"""The client's sans-IO core: get a session, keep it alive, send and hear text.

States: ``idle`` until :meth:`ClientCore.start` (and after a refusal); ``connecting`` (hellos go out
with exponential backoff until a welcome arrives; typed messages wait in a
bounded queue); ``connected`` (a reliable session); and ``closed``. A session
that fails (no acknowledgement within the retry budget) or that the server no
longer knows (it restarted) sends the client back to ``connecting`` by itself.
In plain mode there is no session: text goes out as bare UTF-8 datagrams.

Connecting takes two hellos: the first gets a :class:`Challenge` with a cookie
(and, in a room with a passphrase, the salt of its key); the second echoes the
cookie (and proves the key) and gets the welcome. A client with a passphrase
(``keyed``) talks only to a server with one, and only in sealed frames.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from typing import Final, Literal, NamedTuple

from ._chat import (
    ClientMessage,
    Join,
    Named,
    Notice,
    Presence,
    Refused,
    RefusedWhy,
    Rename,
    Roster,
    Said,
    SaidKind,
    Say,
    decode_chat_untrusted,
    encode_chat,
)
from ._config import Config
from ._crypto import Sealer
from ._endpoint import Endpoint
from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import (
    Address,
    KeyNeeded,
    MessageReceived,
    MessageTooLong,
    NameAssigned,
    NotDelivered,
    PresenceNoticed,
    RequestRefused,
    RoomMessage,
    RoomNotice,
    ServerAnswered,
    ServerRefused,
    ServerSilent,
    SessionLost,
    SessionStarted,
    WhoListed,
)
from ._names import show_address
from ._plaintext import PlainStyle, split_plaintext
from ._room import KINDS, PRESENCE
from ._rtt import RttEstimator
from ._sealed import prove
from ._session import Session
from ._wire import (
    NO_COOKIE,
    Ack,
    Bye,
    Challenge,
    Data,
    Denied,
    Hello,
    Reset,
    Welcome,
    is_frame,
)

#: What a client with a passphrase says when the server cannot check it.
WRONG_KEY = "wrong passphrase or not a trio_udpchat server at {address!r}"

State = Literal["idle", "connecting", "connected", "closed"]


class Transition(NamedTuple):
    """One edge of the client's state machine: in ``state``, ``trigger`` leads to ``next``."""

    state: State
    trigger: str
    next: State
    #: What the client does on the way.
    does: str


#: Every change of :attr:`ClientCore.state` in framed mode (a plain-text client starts
#: ``connected`` and stays there until ``close()``). The documentation's state table
#: is generated from this, and ``tests/test_transitions.py`` drives a core along each
#: edge, so the table and the code cannot disagree.
TRANSITIONS: Final[tuple[Transition, ...]] = (
    Transition("idle", "start()", "connecting", "sends a hello without a cookie"),
    Transition(
        "connecting", "timer: a hello is due", "connecting", "sends the hello again, backing off"
    ),
    Transition(
        "connecting",
        "Challenge with our nonce",
        "connecting",
        "keeps the cookie (and salt); sends a hello that echoes it",
    ),
    Transition(
        "connecting",
        "Challenge that disagrees on the passphrase",
        "idle",
        "gives up for good: sets refusal",
    ),
    Transition(
        "connecting",
        "Denied with our nonce (with a passphrase)",
        "idle",
        "gives up for good: wrong passphrase",
    ),
    Transition(
        "connecting",
        "Welcome with our nonce",
        "connected",
        "starts the session; sends Join and the queued messages",
    ),
    Transition(
        "connected",
        "Reset of our session",
        "connecting",
        "requeues what was not acknowledged; says hello again",
    ),
    Transition(
        "connected",
        "timer: a packet ran out of retries",
        "connecting",
        "reports the unacknowledged messages not delivered; says hello again",
    ),
    Transition("idle", "close()", "closed", "reports queued messages not delivered"),
    Transition("connecting", "close()", "closed", "reports queued messages not delivered"),
    Transition("connected", "close()", "closed", "sends Bye; reports unacknowledged messages"),
)


#: Messages remembered so that one handed over twice is shown once.
_RECENT = 256


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
        name: str = "",
        randbits: Callable[[int], int] = secrets.randbits,
        keyed: bool = False,
        token: int | None = None,
    ) -> None:
        super().__init__(config or Config())
        self.server = server
        self.plain = plain
        self._sealed_only = keyed
        self._cookie = NO_COOKIE
        self._salt = b""  # the salt the server gave, and whose key we have or await
        self._sealer: Sealer | None = None
        #: Our name in the room: asked for on every (re)join, updated when the server
        #: names us. Empty: the server names us by our address.
        self.name = name
        #: What the room calls us now (it may differ from ``name``, if that was taken).
        self.current_name = ""
        #: Set when the server turned us away for good (the room is full): why.
        self.refusal: str | None = None
        self._renaming = False
        self._seen = -1.0  # the time of the newest message seen (-1: none), for a rejoin
        self._recent: set[Said] = set()  # the last _RECENT messages shown
        self._recent_order: deque[Said] = deque()
        self._randbits = randbits
        #: The same in every join of this run, so a room spanning servers knows us
        #: when we land on another one (never 0, which means "none"). Not drawn
        #: from ``randbits``, whose sequence the tests follow.
        self.token = token if token is not None else secrets.randbits(64) or 1
        self.state: State = "connected" if plain else "idle"
        self._style = PlainStyle()
        self._session: Session | None = None
        self._had_session = False
        self._nonce = 0
        self._queue: deque[tuple[str, bytes]] = deque()  # (text, payload) without a session
        # Hello schedule while connecting.
        self._hello_at = 0.0
        self._hello_interval = 0.0
        self._silent_since = 0.0
        self._reported = False  # told the user the server is silent or refused
        self._keepalive = self.config.keepalive_after

    # -- inputs -------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin: send the first hello (framed mode)."""
        if self.state == "idle" and not self.plain:
            self._begin_connecting(now)

    def send_text(self, text: str, now: float) -> None:
        """Say ``text`` to the room, or queue it until we have a session."""
        if self.plain:
            if self.state == "closed":
                raise LocalProtocolError("send_text() after close()")
            self._send_plain(text)
            return
        self.send(Say(text), text, now)

    def send(self, message: ClientMessage, text: str, now: float) -> None:
        """Send a chat message (``text``: the line typed, for reports)."""
        if self.state == "closed":
            raise LocalProtocolError("send() after close()")
        if self.plain:
            raise LocalProtocolError("a plain-text client sends only text")
        size = len(self._utf8(text))
        if size > self.config.max_message:
            self._emit(MessageTooLong(text, size, self.config.max_message))
            return
        if isinstance(message, Rename):
            self._renaming = True
        payload = encode_chat(message)
        if self._session is not None:
            if self._session.send(text, payload) is None:
                self._emit(NotDelivered(text, "the send queue is full"))
        elif len(self._queue) >= self.config.max_queued_messages:
            self._emit(NotDelivered(text, "the send queue is full"))
        else:
            self._queue.append((text, payload))

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Take in one datagram; only the server's are considered."""
        self._count_in(data)
        if addr != self.server:
            self._drop("not-from-server")
            return
        if self.keyed and not is_frame(data):
            self._drop("plain-refused")  # unauthenticated: never shown in a keyed chat
            return
        if self.plain or not is_frame(data):
            if self.plain:
                self._answered()
            self._style.observe(data)
            for line in split_plaintext(data):
                self._emit(MessageReceived(addr, line, plain=True))
            return
        match self._decode(data):
            case Welcome(nonce=nonce, session=session_id, expiry_ms=expiry_ms):
                if self.state == "connecting" and nonce == self._nonce:
                    # Keep alive well within the server's expiry, whatever ours says.
                    self._keepalive = min(self.config.keepalive_after, max(expiry_ms / 4000, 0.5))
                    self._welcomed(session_id, now)
                else:
                    self._drop("stale-welcome")
            case Data() | Ack() as frame:
                if self._session is not None and frame.session == self._session.id:
                    self._receive_session_frame(self._session, frame, now)
                else:
                    self._drop("unknown-session")
            case Reset(session=session_id, next=next_seq, known=known):
                if self._session is not None and session_id == self._session.id:
                    self._lost_session(next_seq if known else None, now)
                else:
                    self._drop("unknown-session")
            case Challenge(nonce=nonce, cookie=cookie, salt=salt):
                if self.state == "connecting" and nonce == self._nonce:
                    self._challenged(cookie, salt, now)
                else:
                    self._drop("stale-challenge")
            case Denied(nonce=nonce):
                if self.state == "connecting" and nonce == self._nonce and self.keyed:
                    self._refuse(WRONG_KEY.format(address=show_address(self.server)))
                else:
                    self._drop("stale-denied")
            case Hello() | Bye():
                self._drop("unexpected")
            case None:
                pass

    def provide_key(self, salt: bytes, key: bytes, now: float) -> None:
        """The room key for ``salt`` (after :class:`KeyNeeded`): seal with it from now on."""
        if salt != self._salt or self.state == "closed":
            return  # a key for a salt the server no longer uses
        self._sealer = Sealer(key, self._randbits)
        self._use_key(key, self._sealer)
        if self.state == "connecting" and self._cookie != NO_COOKIE:
            self._send_hello(now)

    def note_unreachable(self, now: float) -> None:
        """The OS says nothing listens at the server's port (ICMP unreachable)."""
        if self.state == "closed":
            return
        if not self._reported:
            self._reported = True
            self._emit(ServerRefused(self.server))

    def close(self, now: float) -> None:
        """Say goodbye; whatever was not acknowledged is reported not delivered."""
        if self._session is not None:
            self._send(self._session.bye(), self.server)
            for message in self._session.sender.unacknowledged():
                if message.text is not None:
                    self._emit(NotDelivered(message.text, "not acknowledged before exit"))
            self._session = None
        for text, _ in self._queue:
            self._emit(NotDelivered(text, "the server never answered"))
        self._queue.clear()
        self.state = "closed"

    @property
    def keyed(self) -> bool:
        """We have a passphrase: the server must have one too, and frames go sealed."""
        return self._sealed_only

    def pending(self) -> list[str]:
        """Texts typed but not yet acknowledged by the server, oldest first."""
        sent = [] if self._session is None else self._session.sender.unacknowledged()
        return [m.text for m in sent if m.text is not None] + [text for text, _ in self._queue]

    def has_pending(self) -> bool:
        """Whether anything typed still waits for a session or an acknowledgement."""
        return bool(self.pending())

    def has_room(self) -> bool:
        """Whether a message sent now would be taken without waiting in a queue for long."""
        if self._session is None:
            return len(self._queue) < self.config.max_queued_messages
        return self._session.sender.queued == 0

    def _round_trips(self) -> list[RttEstimator]:
        return [] if self._session is None else [self._session.sender.rtt]

    # -- timers -------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When the next hello, retransmission, delayed ack, keepalive or silence report is due.

        Valid after :meth:`datagrams_to_send`, which the I/O layer calls after every input.
        """
        if self.state == "connecting":
            if self._reported:
                return self._hello_at
            return min(self._hello_at, self._silent_since + self.config.server_silent_after)
        session = self._session
        if session is None:
            return None
        deadline = session.sender.deadline()
        if deadline is None:
            deadline = session.last_sent + self._keepalive
        else:
            silent_at = self._silent_deadline(session)
            deadline = deadline if silent_at is None else min(deadline, silent_at)
        acking = session.receiver.ack_deadline()  # an ack held back (see Receiver)
        return deadline if acking is None else min(deadline, acking)

    def handle_timer(self, now: float) -> None:
        """Retransmit, keep alive, report silence, or give up, as due."""
        if self.state == "connecting":
            # Compare against the very deadline get_timer() gave, so float rounding
            # can never leave a due timer unhandled (and the I/O layer spinning).
            if not self._reported and now >= self._silent_since + self.config.server_silent_after:
                self._reported = True
                self._emit(ServerSilent(self.server, now - self._silent_since))
            if now >= self._hello_at:
                self._hello_interval = min(self._hello_interval * 2, self.config.hello_retry_cap)
                self._send_hello(now)
            return
        session = self._session
        if session is None:
            return
        if session.sender.failed(now):
            for message in session.sender.unacknowledged():
                if message.text is not None:
                    self._emit(NotDelivered(message.text, "the server did not acknowledge it"))
            self._session = None
            self._begin_connecting(now)
            return
        silent_at = self._silent_deadline(session)
        if silent_at is not None and now >= silent_at:
            self._reported = True
            since = silent_at - self.config.server_silent_after
            self._emit(ServerSilent(self.server, now - since))
        if session.sender.in_flight == 0 and now >= session.last_sent + self._keepalive:
            session.sender.keepalive()

    # -- internals ----------------------------------------------------------

    def _collect(self, now: float, out: list[tuple[bytes, Address]]) -> None:
        if self._session is not None:
            out.extend((data, self.server) for data in self._session.datagrams(now))

    def _silent_deadline(self, session: Session) -> float | None:
        """When to report silence: packets unanswered for ``server_silent_after``."""
        oldest = session.sender.oldest_unacked()
        if self._reported or oldest is None:
            return None
        return max(oldest, session.last_heard) + self.config.server_silent_after

    def _send_plain(self, text: str) -> None:
        size = len(text.encode("utf-8", errors="replace"))
        limit = self._style.text_limit(self.config.max_datagram)
        if size > limit:
            self._emit(MessageTooLong(text, size, limit))
        else:
            self._send(self._style.encode(text), self.server)

    def _receive_session_frame(self, session: Session, frame: Data | Ack, now: float) -> None:
        arrivals = session.accept(frame, self.server, now)
        if arrivals.replayed:
            self._drop("replayed")  # says nothing about the server now
            return
        self._answered()
        self._delivered(arrivals.delivered)
        if arrivals.bad_ack:
            self._drop("bad-ack")
        for payload in arrivals.messages:
            try:
                message = decode_chat_untrusted(payload)
            except RemoteProtocolError as exc:
                self._drop(exc.reason)
                continue
            self._receive_chat(message)

    def _receive_chat(self, message: object) -> None:
        if isinstance(message, Said):
            # A room spanning servers can hand one message over twice when a split
            # heals while we move between its servers: the server's time tells.
            if message in self._recent:
                self._drop("duplicate-message")
                return
            self._recent.add(message)
            self._recent_order.append(message)
            if len(self._recent_order) > _RECENT:
                self._recent.discard(self._recent_order.popleft())
            self._seen = max(self._seen, message.time)
        match message:
            case Said(kind=SaidKind.REPLY, text=text):
                self._emit(MessageReceived(self.server, text))
            case Said(sender=sender, text=text, time=time, kind=kind, history=history):
                self._emit(RoomMessage(sender, text, time, KINDS[kind], None, history))
            case Presence(what=what, name=name, detail=detail, time=time):
                self._emit(PresenceNoticed(PRESENCE[what], name, detail, time))
            case Roster(entries=entries):
                listed = tuple((e.name, e.idle, e.operator, e.server) for e in entries)
                self._emit(WhoListed(listed))
            case Notice(text=text):
                self._emit(RoomNotice(text))
            case Refused(why=RefusedWhy.ROOM_FULL, text=text):
                self.refusal = text
            case Refused(why=why, text=text):
                if why == RefusedWhy.NAME:
                    self._renaming = False
                self._emit(RequestRefused(text))
            case Named(name=name):
                # After a /nick the name is ours; after a join that could not have the
                # name we wanted, we keep asking for it on every rejoin.
                if self._renaming:
                    self.name = name
                    self._emit(NameAssigned(name))
                self._renaming = False
                self.current_name = name
            case _:
                self._drop("unexpected")

    def _answered(self) -> None:
        if self._reported:
            self._reported = False
            self._emit(ServerAnswered(self.server))

    def _lost_session(self, next_seq: int | None, now: float) -> None:
        """The server ended our session, or restarted: resend what it did not receive.

        If it remembers the session, it says what arrived (``next_seq``): exactly
        once. After a restart nothing is known, so everything unacknowledged goes
        again; a message shown just before the crash whose ack was lost is shown
        twice (at least once, never lost).
        """
        assert self._session is not None
        if next_seq is not None:
            self._delivered(self._session.sender.on_ack(next_seq, 0, now) or [])
        unacked = [
            (message.text, message.payload)
            for message in self._session.sender.unacknowledged()
            if message.text is not None  # not the old session's join
        ]
        self._queue.extendleft(reversed(unacked))
        while len(self._queue) > self.config.max_queued_messages:
            self._emit(NotDelivered(self._queue.pop()[0], "the send queue is full"))
        self._session = None
        self._emit(SessionLost(self.server))
        self._begin_connecting(now)

    def _begin_connecting(self, now: float) -> None:
        self.state = "connecting"
        self._cookie = NO_COOKIE
        self._nonce = self._randbits(64)
        self._silent_since = now
        self._hello_interval = self.config.hello_retry_initial
        self._send_hello(now)

    def _send_hello(self, now: float) -> None:
        hello = Hello(self._nonce, self._cookie)
        if self._cookie == NO_COOKIE or not self.keyed:
            self._send_frame(hello, self.server)
        elif self._sealer is not None:
            self._send_frame(prove(hello, self._sealer), self.server)
        # else: the key is being derived; provide_key() sends this hello.
        self._hello_at = now + self._hello_interval

    def _challenged(self, cookie: bytes, salt: bytes, now: float) -> None:
        """The server asked us to prove our address (and, with ``salt``, the key)."""
        shown = show_address(self.server)
        if self.keyed and not salt:
            self._refuse(f"the server at {shown!r} has no passphrase; refusing to chat unencrypted")
            return
        if salt and not self.keyed:
            self._refuse(
                f"the server at {shown!r} needs the room passphrase"
                " (--key-file PATH, or TRIO_UDPCHAT_KEY)"
            )
            return
        self._cookie = cookie
        if salt and salt != self._salt:
            # A new server (or a restarted one): its key must be derived again.
            self._salt = salt
            self._key = self._sealer = None
            self._emit(KeyNeeded(salt))
        self._send_hello(now)

    def _refuse(self, why: str) -> None:
        """Give up for good: the CLI shows ``why`` and exits. Back to ``idle``, so no
        more hellos go out (and a line typed meanwhile just waits)."""
        self.refusal = why
        self.state = "idle"

    def _welcomed(self, session_id: int, now: float) -> None:
        self.state = "connected"
        session = self._session = self._new_session(session_id, self.server, now)
        if self._had_session:
            self._reported = False  # "reconnected" says it all
        self._emit(SessionStarted(self.server, reconnect=self._had_session))
        self._had_session = True
        self._answered()
        session.send(None, encode_chat(Join(self.name, self._seen, self.token)))
        queued, self._queue = self._queue, deque()
        for text, payload in queued:
            if session.send(text, payload) is None:
                self._emit(NotDelivered(text, "the send queue is full"))
