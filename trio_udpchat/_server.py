"""The server's sans-IO core: sessions with framed clients, plain-text peers, and
the room they share (``_room``), with the operator taking part."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable

from ._budget import AmplificationBudget, TokenBucket
from ._bus import BusCommand, BusResult
from ._chat import (
    Act,
    ClientMessage,
    Join,
    Refused,
    RefusedWhy,
    Said,
    Say,
    ServerMessage,
    Whisper,
    decode_chat_untrusted,
    encode_chat,
)
from ._config import Config
from ._cookie import CookieJar
from ._crypto import RoomKey, Sealer
from ._endpoint import Endpoint
from ._errors import RemoteProtocolError
from ._events import (
    Address,
    MessageTooLong,
    NoRecipient,
    NotDelivered,
    PeerJoined,
    PeerLeft,
    PeerMoved,
    WhoListed,
)
from ._plaintext import PlainStyle, plain_line, split_plaintext
from ._room import MemberId, Room
from ._roombus import BusLink
from ._rtt import RttEstimator
from ._sealed import proven
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


class _PlainPeer:
    """A plain-text peer: how it ends its lines, and what we may send it."""

    __slots__ = ("budget", "style")

    def __init__(self, config: Config) -> None:
        self.style = PlainStyle()
        factor = config.plain_budget_factor
        self.budget = (
            None if factor is None else AmplificationBudget(factor, config.plain_budget_window)
        )


class _Client:
    """A framed client: its session and the nonce of the hello that opened it."""

    __slots__ = ("nonce", "session")

    def __init__(self, session: Session, nonce: int) -> None:
        self.session = session
        self.nonce = nonce


class ServerCore(Endpoint):
    """Serves framed clients and plain-text peers on one socket.

    The operator's :meth:`reply` goes to whoever spoke last, as in the classic
    demo. Sessions expire after ``config.session_expiry`` of silence; at most
    ``config.max_peers`` sessions are held (a hello beyond that is refused) and
    as many plain peers remembered (the least recently heard forgotten first).

    A hello first gets a stateless :class:`Challenge` with a cookie; only a hello
    that echoes a valid cookie (its sender receives at its address) gets a
    session. With a ``key`` (the room passphrase), that hello must also prove
    the key, every session frame is sealed, and plain text is refused unless
    ``allow_plain``.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        name: str = "server",
        wall_offset: float = 0.0,
        randbits: Callable[[int], int] = secrets.randbits,
        key: RoomKey | None = None,
        allow_plain: bool = False,
    ) -> None:
        super().__init__(config or Config())
        self._randbits = randbits
        self._cookies = CookieJar(randbits, self.config.cookie_rotation)
        self._room_key = key
        self._allow_plain = key is None or allow_plain
        if key is not None:
            self._sealed_only = True
            self._use_key(key.key, Sealer(key.key, randbits))
        #: The room; ``name`` is the operator's name in it, and ``now + wall_offset``
        #: the wall-clock time shown with messages.
        self.room = Room(self.config, name, wall_offset)
        self._clients: OrderedDict[int, _Client] = OrderedDict()  # least recently heard first
        self._by_addr: dict[Address, int] = {}
        self._plain: OrderedDict[Address, _PlainPeer] = OrderedDict()
        #: Hellos, and plain-text datagrams, per IP address: the least recent forgotten.
        self._hellos: OrderedDict[str, TokenBucket] = OrderedDict()
        self._plain_rates: OrderedDict[str, TokenBucket] = OrderedDict()
        #: Recently ended sessions: id -> (the receiver's next seq, when it ended).
        self._ended: OrderedDict[int, tuple[int, float]] = OrderedDict()
        self._dirty: set[int] = set()  # sessions that may have something to send
        #: Sessions with timers: packets in flight, or an ack held back (``Receiver``).
        self._busy: set[int] = set()
        self._last_speaker: int | Address | None = None  # session id, or a plain address
        self._last_address: Address | None = None
        #: The bus joining this server's room to others' (see :meth:`join_bus`).
        self.link: BusLink | None = None

    # -- the bus (implements _bus.BusPort) ------------------------------------

    def join_bus(self, server_id: str, label: str) -> BusLink:
        """Share the room with other servers through a bus, as ``server_id`` (seen
        as ``label``); the Trio layer then drives this core as a ``BusPort``."""
        self.link = BusLink(self.room, server_id, label, self.config)
        return self.link

    @property
    def server_id(self) -> str:
        """This server's id on the bus."""
        return self._bus().origin.server

    def bus_commands(self) -> list[BusCommand]:
        """What the bus should do, oldest first."""
        return self._bus().take_commands()

    def bus_connected(self, now: float) -> None:
        """The link to the bus is up."""
        self._from_bus(lambda link: link.connected(now), now)

    def bus_lost(self, now: float) -> None:
        """The link to the bus is down: the room goes on here alone."""
        self._from_bus(lambda link: link.lost(now), now)

    def bus_message(self, epoch: str, seq: int, payload: bytes, now: float) -> None:
        """The room's broadcast ``(epoch, seq, payload)``."""
        self._from_bus(lambda link: link.message(epoch, seq, payload, now), now)

    def bus_direct(self, payload: bytes, now: float) -> None:
        """A private message for a member here."""
        self._from_bus(lambda link: link.direct(payload, now), now)

    def bus_result(self, result: BusResult, now: float) -> None:
        """A bus command's answer."""
        self._from_bus(lambda link: link.result(result, now), now)

    def _from_bus(self, act: Callable[[BusLink], None], now: float) -> None:
        """Let the link ``act`` on what the bus sent (counting what it could not
        read), then send what the room decided."""
        link = self._bus()
        before = link.malformed
        act(link)
        if link.malformed > before:
            self._drop("bus-malformed")
        self._after_room(now)

    def _bus(self) -> BusLink:
        if self.link is None:
            raise RuntimeError("this server has not joined a bus (see join_bus)")
        return self.link

    @property
    def _expiry_ms(self) -> int:
        return min(round(self.config.session_expiry * 1000), 2**32 - 1)

    @property
    def encrypted(self) -> bool:
        """Whether the room has a passphrase (sessions sealed under its key)."""
        return self._room_key is not None

    @property
    def peer_count(self) -> int:
        """How many framed clients and plain peers the server currently remembers."""
        return len(self._clients) + len(self._plain)

    @property
    def session_count(self) -> int:
        """How many framed sessions are open."""
        return len(self._clients)

    def _round_trips(self) -> list[RttEstimator]:
        return [client.session.sender.rtt for client in self._clients.values()]

    # -- inputs -------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Take in one datagram from ``addr``; never raises on bad bytes."""
        self._count_in(data)
        if not is_frame(data):
            if self._allow_plain:
                self._receive_plain(data, addr, now)
            else:
                self._drop("plain-refused")  # a room with a passphrase (see --allow-plain)
            return
        match self._decode(data):
            case Hello() as hello:
                self._receive_hello(hello, addr, now)
            case Data() | Ack() | Bye() as frame:
                client = self._clients.get(frame.session)
                if client is None:
                    self._drop("unknown-session")
                    if not isinstance(frame, Bye):
                        # No larger than what triggered it: cannot amplify.
                        self._send_frame(self._reset_for(frame.session, now), addr)
                    return
                self._receive_session_frame(client, frame, addr, now)
            case Welcome() | Reset() | Challenge() | Denied():
                self._drop("unexpected")
            case None:
                pass

    def reply(self, text: str, now: float) -> None:
        """Send the operator's ``text`` to the member that spoke last (the classic rule)."""
        target = self._last_speaker
        if target is None:
            self._emit(NoRecipient(text))
        elif target not in self.room.members:
            self._emit(NoRecipient(text, left=self._last_address))
        elif self._fits(target, text):
            self.room.operator_reply(target, text, now)
            self._after_room(now)

    def say_all(self, text: str, now: float) -> None:
        """``/all``: the operator speaks to the whole room."""
        if self._fits(None, text):
            self.room.operator_all(text, now)
            self._after_room(now)

    def say_to(self, name: str, text: str, now: float) -> None:
        """``/to NAME TEXT``: the operator speaks to one member."""
        if self._fits(None, text):
            self.room.operator_to(name, text, now)
            self._after_room(now)

    def who(self, now: float) -> None:
        """``/who``: list the room to the operator."""
        entries = self.room.roster(now).entries
        self._emit(WhoListed(tuple((e.name, e.idle, e.operator, e.server) for e in entries)))

    def has_room(self) -> bool:
        """Whether a reply sent now would be taken without waiting in a queue for long."""
        target = self._last_speaker
        client = self._clients.get(target) if isinstance(target, int) else None
        return client is None or client.session.sender.queued == 0

    def pending(self) -> list[str]:
        """Replies sent to framed clients and not yet acknowledged."""
        return [
            message.text
            for client in self._clients.values()
            for message in client.session.sender.unacknowledged()
            if message.text is not None
        ]

    def send_held_acks(self, now: float) -> None:
        """Make every ack held back (``Config.ack_delay``) go with the next
        :meth:`datagrams_to_send`: before the server stops, so each client learns
        that its last messages arrived (they were shown here)."""
        for session_id in self._busy:
            session = self._clients[session_id].session
            if session.receiver.ack_deadline() is not None:
                session.receiver.hurry(now)
                self._dirty.add(session_id)

    # -- timers -------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest retransmission, give-up or expiry among the sessions."""
        deadlines = [self._expiry_deadline(), self.room.next_plain_expiry()]
        if self.link is not None:
            deadlines.append(self.link.get_timer())
        for session_id in list(self._busy):
            deadline = self._clients[session_id].session.deadline()
            if deadline is None:
                self._busy.discard(session_id)
            else:
                deadlines.append(deadline)
        found = [d for d in deadlines if d is not None]
        return min(found) if found else None

    def handle_timer(self, now: float) -> None:
        """Expire silent sessions, give up on unresponsive ones, schedule retransmissions."""
        if self.link is not None:
            self.link.handle_timer(now)
        self.room.expire_plain(now)
        self._after_room(now)
        while self._clients:
            oldest = next(iter(self._clients.values()))
            if oldest.session.last_heard + self.config.session_expiry > now:
                break
            self._end(oldest, "timed out", "the client timed out", now)
        for session_id in list(self._busy):
            session = self._clients[session_id].session
            if session.sender.failed(now):
                client = self._clients[session_id]
                self._end(client, "not answering", "no acknowledgement", now)
            else:
                self._dirty.add(session_id)

    # -- internals ----------------------------------------------------------

    def _collect(self, now: float, out: list[tuple[bytes, Address]]) -> None:
        for session_id in self._dirty:
            client = self._clients.get(session_id)
            if client is None:
                continue
            session = client.session
            out.extend((data, session.peer) for data in session.datagrams(now))
            if session.sender.in_flight or session.receiver.ack_deadline() is not None:
                self._busy.add(session_id)
        self._dirty.clear()

    def _expiry_deadline(self) -> float | None:
        if not self._clients:
            return None
        oldest = next(iter(self._clients.values()))
        return oldest.session.last_heard + self.config.session_expiry

    def _receive_plain(self, data: bytes, addr: Address, now: float) -> None:
        config = self.config
        if not self._per_ip_allowed(
            self._plain_rates, addr, config.plain_rate, config.plain_burst, now
        ):
            # Every port is a new plain member: without a per-address limit, one host
            # could flood the room (and every member's queue) from many ports.
            self._drop("plain-rate")
            return
        peer = self._plain.get(addr)
        if peer is None:
            peer = self._plain[addr] = _PlainPeer(self.config)
            if len(self._plain) > self.config.max_peers:
                forgotten, _ = self._plain.popitem(last=False)
                self.room.leave(forgotten, "forgotten", now)
                self.stats["peers_evicted"] += 1
        else:
            self._plain.move_to_end(addr)
        peer.style.observe(data)
        if peer.budget is not None:
            peer.budget.received(len(data), now)
        for line in split_plaintext(data):
            if not self.room.plain_line(addr, line, now):
                self._drop("room-full")
                full = f"*** the room is full ({self.config.max_clients} members)"
                self._send_plain(addr, peer, full, now)
                break
            self._last_speaker = self._last_address = addr
        self._after_room(now)

    def _send_plain(self, addr: Address, peer: _PlainPeer, line: str, now: float) -> bool:
        """Send ``line`` to a plain-text peer, within what its address has earned;
        ``False`` if (some of) it was held back."""
        sent_all = True
        for chunk in _chunks(peer.style.encode(line), self.config.max_datagram):
            if peer.budget is not None and not peer.budget.spend(len(chunk), now):
                self.stats["dropped-out:amplification"] += 1
                sent_all = False
                continue
            self._send(chunk, addr)
        return sent_all

    def _per_ip_allowed(
        self,
        table: OrderedDict[str, TokenBucket],
        addr: Address,
        rate: float,
        burst: int,
        now: float,
    ) -> bool:
        """One token bucket per IP address (whatever the port), least recent forgotten."""
        host = str(addr[0])
        bucket = table.get(host)
        if bucket is None:
            bucket = table[host] = TokenBucket(rate, burst, now)
            if len(table) > 4 * self.config.max_peers:
                table.popitem(last=False)
        else:
            table.move_to_end(host)
        return bucket.allow(now)

    def _receive_hello(self, hello: Hello, addr: Address, now: float) -> None:
        config = self.config
        if not self._per_ip_allowed(self._hellos, addr, config.hello_rate, config.hello_burst, now):
            self._drop("hello-rate")
            return
        nonce = hello.nonce
        if hello.cookie == NO_COOKIE or not self._cookies.check(addr, nonce, hello.cookie, now):
            if hello.cookie != NO_COOKIE:
                self._drop("stale-cookie")  # expired, or made for another address or nonce
            # Stateless, and no larger than a hello (31 bytes) times three: a spoofed
            # source gets nothing stored and cannot use us to amplify.
            salt = b"" if self._room_key is None else self._room_key.salt
            self._send_frame(Challenge(nonce, self._cookies.make(addr, nonce, now), salt), addr)
            return
        if self._room_key is not None and not proven(hello, self._room_key.key):
            # The address is proven, so this small answer goes to whoever asked.
            self._drop("wrong-key")
            self._send_frame(Denied(nonce), addr)
            return
        known_id = self._by_addr.get(addr)
        known = None if known_id is None else self._clients[known_id]
        if known is not None and known.nonce == nonce:
            # A retransmitted hello: our welcome was lost, so send the same one again.
            self._send_frame(Welcome(nonce, known.session.id, self._expiry_ms), addr)
            return
        if known is not None:
            self._end(known, "reconnected", "the client reconnected", now)
        if len(self._clients) >= self.config.max_peers:
            # Full: refuse the newcomer rather than evict a member (a flood of hellos
            # must not push out the people already here).
            self._drop("sessions-full")
            return
        session_id = self._randbits(64)
        while session_id in self._clients:
            session_id = self._randbits(64)
        self._clients[session_id] = _Client(self._new_session(session_id, addr, now), nonce)
        self._by_addr[addr] = session_id
        self._emit(PeerJoined(addr))
        self._send_frame(Welcome(nonce, session_id, self._expiry_ms), addr)

    def _receive_session_frame(
        self, client: _Client, frame: Data | Ack | Bye, addr: Address, now: float
    ) -> None:
        session = client.session
        old_peer = session.peer
        arrivals = session.accept(frame, addr, now)
        if arrivals.replayed:
            self._drop("replayed")
            return
        self._clients.move_to_end(session.id)
        if session.peer != old_peer:
            if self._by_addr.get(old_peer) == session.id:
                del self._by_addr[old_peer]
            self._by_addr[session.peer] = session.id
            self.room.moved(session.id, session.peer)
            self._emit(PeerMoved(old_peer, session.peer))
        self._delivered(arrivals.delivered)
        if arrivals.bad_ack:
            self._drop("bad-ack")
        for payload in arrivals.messages:
            self._receive_chat(client.session, payload, now)
        if isinstance(frame, Bye):
            self._end(client, "quit", "the client left before it was acknowledged", now)
            return
        self._dirty.add(session.id)
        if arrivals.messages:  # most frames are acks: the room has nothing new then
            self._after_room(now)

    def _receive_chat(self, session: Session, payload: bytes, now: float) -> None:
        try:
            message = decode_chat_untrusted(payload)
        except RemoteProtocolError as exc:
            self._drop(exc.reason)
            return
        if isinstance(message, ServerMessage):
            self._drop("unexpected")
            return
        text = message.text if isinstance(message, Say | Act | Whisper) else ""
        if len(text.encode("utf-8", errors="replace")) > self.config.max_message:
            # Only a modified client sends this: relayed with a name added, it could
            # exceed what the other members accept.
            self._drop("too-long")
            return
        if session.id not in self.room.members:
            joined = message if isinstance(message, Join) else Join("")
            if not self.room.join(
                session.id, session.peer, joined.name, now, since=joined.since, token=joined.token
            ):
                self._room_full(session, now)
                return
            if isinstance(message, Join):
                return
        self.room.receive(session.id, message, now)
        if _speaks(message):
            self._last_speaker = session.id
            self._last_address = session.peer

    def _room_full(self, session: Session, now: float) -> None:
        self._drop("room-full")
        text = f"the room is full ({self.config.max_clients} members); try again later"
        session.send(None, encode_chat(Refused(RefusedWhy.ROOM_FULL, text)))
        self._dirty.add(session.id)

    def _after_room(self, now: float) -> None:
        """Send what the room decided, and show the operator what it should see."""
        if self.link is not None:
            self.link.pump(now)
        deliveries = self.room.take_deliveries()
        if deliveries:
            self._deliver(deliveries, now)
        for event in self.room.take_events():
            self._emit(event)
        for member_id in self.room.take_evicted():
            client = self._clients.get(member_id) if isinstance(member_id, int) else None
            if client is not None:
                why = "moved to another server"
                self._end(client, why, "the client moved to another server", now)

    def _deliver(self, deliveries: list[tuple[MemberId, ServerMessage]], now: float) -> None:
        """Queue each delivery the room decided on for its member.

        The room hands one message to many members in a row: it is encoded (and
        looked at) once per run, not once per member, which was a tenth of a
        relay's time.
        """
        clients = self._clients
        dirty = self._dirty
        current: ServerMessage | None = None
        payload = b""
        mine: str | None = None  # reports (not delivered, --receipts): the operator's text
        queued = 0
        for member_id, message in deliveries:
            if not isinstance(member_id, int):
                if isinstance(member_id, tuple):
                    self._deliver_plain(member_id, message, now)
                continue
            client = clients.get(member_id)
            if client is None:
                continue
            if message is not current:
                current, payload = message, encode_chat(message)
                mine = self._typed_by_operator(message)
            queued += 1
            if client.session.send(mine, payload) is None:
                self.stats["send-queue-full"] += 1
                if mine is not None:
                    self._emit(NotDelivered(mine, "the send queue is full"))
            dirty.add(member_id)
        if queued:
            self.stats["deliveries"] += queued  # room messages queued for framed members

    def _deliver_plain(self, address: Address, message: ServerMessage, now: float) -> None:
        peer = self._plain.get(address)
        line = plain_line(message)
        if peer is None or line is None or self._send_plain(address, peer, line, now):
            return
        mine = self._typed_by_operator(message)
        if mine is not None:
            why = "an unverified address gets at most 3x what it sent (--trust-plain)"
            self._emit(NotDelivered(mine, why))

    def _typed_by_operator(self, message: ServerMessage) -> str | None:
        """The text, if ``message`` is something the operator typed (a replay of /all
        in a newcomer's history is not the operator speaking again)."""
        if (
            isinstance(message, Said)
            and message.sender == self.room.operator
            and not message.history
        ):
            return message.text
        return None

    def _fits(self, target: MemberId | None, text: str) -> bool:
        """Whether the operator's ``text`` can be sent; if not, say so."""
        size = len(self._utf8(text))
        if isinstance(target, tuple):
            peer = self._plain.get(target)
            limit = (peer.style if peer else PlainStyle()).text_limit(self.config.max_datagram)
        else:
            limit = self.config.max_message
        if size > limit:
            self._emit(MessageTooLong(text, size, limit))
            return False
        return True

    def _reset_for(self, session_id: int, now: float) -> Reset:
        """A Reset that says how far an ended session's receiver got, if we remember."""
        ended = self._ended.get(session_id)
        if ended is None or now - ended[1] >= self.config.session_expiry:
            return Reset(session_id)
        return Reset(session_id, ended[0] % 2**32, known=True)

    def _end(self, client: _Client, why: str, undelivered: str, now: float) -> None:
        session = client.session
        del self._clients[session.id]
        # A tombstone: a client still retransmitting into this session learns what
        # arrived, and resends only the rest (no message shown twice).
        self._ended[session.id] = (session.receiver.next_seq, now)
        self._ended.move_to_end(session.id)
        if len(self._ended) > self.config.max_peers:
            self._ended.popitem(last=False)
        if self._by_addr.get(session.peer) == session.id:
            del self._by_addr[session.peer]
        self._busy.discard(session.id)
        self._dirty.discard(session.id)
        for message in session.sender.unacknowledged():
            if message.text is not None:
                self._emit(NotDelivered(message.text, undelivered))
        self._emit(PeerLeft(session.peer, why))
        self.room.leave(session.id, why, now)
        self._after_room(now)


def _speaks(message: ClientMessage) -> bool:
    """Whether ``message`` makes its sender the one the operator's next line answers."""
    return isinstance(message, Say | Act)


def _chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into datagrams of at most ``size`` bytes, at UTF-8 boundaries."""
    out = []
    while len(data) > size:
        cut = size
        while cut > 0 and data[cut] & 0xC0 == 0x80:  # not inside a character
            cut -= 1
        out.append(data[:cut])
        data = data[cut:]
    return [*out, data]
