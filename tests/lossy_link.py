"""A seeded, lossy, in-memory link between one ``ClientCore`` and one ``ServerCore``.

No sockets and no clock: addresses are plain tuples, ``now`` is a float the
simulation advances, and every datagram a core produces waits in
:attr:`Link.in_flight` until the test delivers, drops, duplicates or corrupts it.
:class:`Simulation` owns both cores, pumps them after every input (as the Trio
layer does), keeps per-side logs of what happened, and checks the invariants
the stateful test and the deterministic tests share.

The client sits behind a NAT: its datagrams come from :attr:`Simulation.client_addr`,
and :meth:`Simulation.roam` rebinds it to a new port; datagrams still addressed
to an old binding are lost, as a NAT drops them.

The session carries chat messages: the client joins the server's room on every
session, and the operator's replies go through the room. While the room holds
one member the operator sees the classic MessageReceived; an abandoned session
(after a roam) can linger as a second member until it expires, and then the
operator sees the same text as a RoomMessage: both count as received.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Final

from trio_udpchat._client import ClientCore
from trio_udpchat._config import Config
from trio_udpchat._errors import RemoteProtocolError
from trio_udpchat._events import (
    Address,
    Event,
    MessageDelivered,
    MessageReceived,
    MessageTooLong,
    NoRecipient,
    NotDelivered,
    RoomMessage,
    SessionLost,
)
from trio_udpchat._server import ServerCore
from trio_udpchat._session import Session
from trio_udpchat._wire import MAGIC, decode_frame_untrusted, is_frame

SERVER_ADDR: Final[Address] = ("10.0.0.1", 5000)
CLIENT_ADDR: Final[Address] = ("10.0.0.2", 40000)

#: Give up if the run does not settle within this many steps ...
SETTLE_MAX_STEPS: Final = 10_000
#: ... or this much virtual time.
SETTLE_MAX_SECONDS: Final = 3600.0
#: Timer firings one :meth:`Simulation.advance` may take before we call it a spin.
ADVANCE_MAX_FIRINGS: Final = 5_000

_U64_BYTES: Final = 8
_U32_BYTES: Final = 4
_HEADER: Final = 3


def sim_config(config: Config) -> Config:
    """``config`` with the room set for the simulation.

    The rate limit is off: the rules send bursts of 40 at once, and a refused
    ("slow down") text is acknowledged yet never shown, which the invariants would
    (rightly) call a false MessageDelivered. The history replayed on each join is
    short: on this link (one datagram per ``latency``, no congestion control) a
    long replay on every rejoin can outlast ``give_up_after``, so the server gives
    up, the client rejoins, the replay starts again, and the run never settles
    (``test_machine.test_a_rejoin_on_a_slow_link_settles_despite_the_history_replay``).
    """
    return replace(config, rate_limit=0, history_count=4, history_bytes=1024)


#: The default config, set for the simulation.
UNLIMITED: Final = sim_config(Config())


@dataclass(frozen=True, slots=True)
class Datagram:
    """One datagram on the wire: its bytes, where it came from, where it goes."""

    data: bytes
    src: Address
    dst: Address


def _bits(start: int, size: int) -> list[int]:
    return list(range(start * 8, (start + size) * 8))


def detectable_bits(data: bytes) -> list[int]:
    """The bit positions of ``data`` whose flip the protocol must catch.

    Every frame ends in a CRC-32 of the rest, which catches any single-bit flip
    after the magic byte. A flip in the magic byte makes the datagram not a
    frame at all but plain text, which only the UDP checksum could catch on a
    real network: corrupting *anywhere* is the separate, weaker mode of the
    state machine.
    """
    if len(data) < _HEADER or data[0] != MAGIC:
        return []
    return _bits(1, len(data) - 1)


def _drops(core: ClientCore | ServerCore) -> int:
    return sum(n for name, n in core.stats.items() if name.startswith("dropped:"))


def flip_bit(data: bytes, bit: int) -> bytes:
    """``data`` with bit ``bit`` (``0`` is the most significant bit of byte 0) flipped."""
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


class Link:
    """Datagrams in flight, oldest first; random loss and duplication on send."""

    def __init__(self, rng: random.Random, *, loss: float = 0.0, duplicate: float = 0.0) -> None:
        self.rng = rng
        self.loss = loss
        self.duplicate = duplicate
        self.in_flight: list[Datagram] = []
        self.stats: Counter[str] = Counter()
        #: Set by :meth:`heal`; the state machine's fault rules check it.
        self.healed = False

    def impair(self, *, loss: float, duplicate: float = 0.0) -> None:
        """Random loss and duplication from now on."""
        self.loss, self.duplicate = loss, duplicate
        self.healed = False

    def heal(self) -> None:
        """No more random loss or duplication."""
        self.loss = self.duplicate = 0.0
        self.healed = True

    def send(self, datagram: Datagram) -> None:
        if self.loss and self.rng.random() < self.loss:
            self.stats["lost"] += 1
            return
        self.in_flight.append(datagram)
        if self.duplicate and self.rng.random() < self.duplicate:
            self.stats["duplicated"] += 1
            self.in_flight.append(datagram)

    def take(self, index: int) -> Datagram:
        """Remove and return the datagram at ``index`` (modulo the flight size)."""
        return self.in_flight.pop(index % len(self.in_flight))


@dataclass
class Log:
    """What one side's core reported, split by kind; texts in event order."""

    events: list[Event] = field(default_factory=list)
    #: Framed MessageReceived; on the server also a member's RoomMessage "say" (the
    #: same text, shown as a room line while a second member is present).
    received: list[str] = field(default_factory=list)
    #: Other room lines (the client's history replays, /me, whispers).
    room: list[str] = field(default_factory=list)
    plain_received: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    not_delivered: list[str] = field(default_factory=list)
    not_sent: list[str] = field(default_factory=list)  # NoRecipient, MessageTooLong

    def record(self, events: list[Event]) -> None:
        self.events.extend(events)
        for event in events:
            match event:
                case MessageReceived(text=text, plain=True):
                    self.plain_received.append(text)
                case MessageReceived(text=text):
                    self.received.append(text)
                case RoomMessage(text=text, kind="say", address=address, history=False) if (
                    address is not None  # the server's view of a member: not a replay
                ):
                    self.received.append(text)
                case RoomMessage(text=text):
                    self.room.append(text)
                case MessageDelivered(text=text):
                    self.delivered.append(text)
                case NotDelivered(text=text):
                    self.not_delivered.append(text)
                case NoRecipient(text=text) | MessageTooLong(text=text):
                    self.not_sent.append(text)
                case _:
                    pass

    def count(self, kind: type[Event]) -> int:
        return sum(isinstance(event, kind) for event in self.events)


class Simulation:
    """One client, one server (replaceable: :meth:`restart_server`) and a link.

    Every input is followed by :meth:`pump`: both cores' datagrams go onto the
    link and their events into :attr:`client_log` / :attr:`server_log` (one log
    for all server instances).
    """

    def __init__(
        self,
        seed: int,
        config: Config | None = None,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        latency: float = 0.0,
    ) -> None:
        self.seed = seed
        #: Time that passes before each delivery (timers firing meanwhile).
        self.latency = latency
        self.config = config or UNLIMITED
        assert self.config.rate_limit == 0, "see sim_config"
        self.link = Link(random.Random(seed * 3 + 1), loss=loss, duplicate=duplicate)
        self.now = 0.0
        self.client_addr: Address = CLIENT_ADDR
        self._port = CLIENT_ADDR[1]
        self.client = ClientCore(SERVER_ADDR, self.config, randbits=random.Random(seed).getrandbits)
        self.restarts = 0
        self.server = self._new_server()
        #: Every server instance, the current one last (:meth:`restart_server`).
        self.servers = [self.server]
        #: Replies the server had not delivered when it was replaced: that
        #: process is gone, so nobody reports them.
        self.orphaned: set[str] = set()
        self.client_log = Log()
        self.server_log = Log()
        #: Texts in the order each side handed them to its core.
        self.client_sent: list[str] = []
        self.server_sent: list[str] = []  # replies that went into a session
        self.server_plain: list[str] = []  # replies that went out as plain text
        #: How many extra receptions of a text a restart allows (at least once;
        #: see :attr:`tolerate_redelivery`).
        self.redelivery_allowed: Counter[str] = Counter()
        #: True: tolerate what a server restart allows by design: a fresh server
        #: knows nothing of the old session, so the client resends everything
        #: unacknowledged, and a text shown just before the restart whose ack
        #: was lost is shown again (at least once, never lost). False: strict.
        self.tolerate_redelivery = True
        #: Set once a datagram was corrupted where the frame has no check
        #: (:meth:`corrupt` with ``anywhere``): texts may then be garbled, lost
        #: or invented, so only crash-freedom, timers, bounds and liveness are
        #: checked from then on.
        self.tampered = False
        #: The most peers (sessions and plain) the server remembered at once.
        self.max_peer_count = 0
        self.client.start(self.now)
        self.pump()

    def _new_server(self) -> ServerCore:
        rng = random.Random(self.seed * 3 + 2 + 1_000_003 * self.restarts)
        return ServerCore(self.config, randbits=rng.getrandbits)

    # -- inputs -------------------------------------------------------------

    def pump(self) -> None:
        """Put both cores' datagrams on the link and collect their events."""
        for data, dst in self.client.datagrams_to_send(self.now):
            self.link.send(Datagram(data, self.client_addr, dst))
        for data, dst in self.server.datagrams_to_send(self.now):
            self.link.send(Datagram(data, SERVER_ADDR, dst))
        client_events = self.client.pop_events()
        self.client_log.record(client_events)
        if any(isinstance(event, SessionLost) for event in client_events):
            # The client requeued what the server never acknowledged. After a
            # restart (an unknown Reset) what the old server showed may come again.
            for text in self.client.pending():
                if text in self.server_log.received:
                    self.redelivery_allowed[text] += 1
        self.server_log.record(self.server.pop_events())

    def client_send(self, text: str) -> None:
        self.client_sent.append(text)
        self.client.send_text(text, self.now)
        self.pump()

    def server_reply(self, text: str) -> None:
        """The operator types ``text``; note whether it went reliably, plainly, or nowhere."""
        self.server.reply(text, self.now)
        events = self.server.pop_events()
        self.server_log.record(events)
        reported = any(getattr(event, "text", None) == text for event in events)
        if text in self.server.pending():
            self.server_sent.append(text)
        elif not reported:
            # The last speaker was a plain-text "peer" that a corrupted magic
            # byte conjured up: the reply went out as a bare datagram.
            self.server_plain.append(text)
        self.pump()

    def deliver(self, index: int = 0) -> Datagram:
        """Deliver the in-flight datagram at ``index`` (modulo the flight size),
        after :attr:`latency` seconds."""
        if self.latency:
            self.advance(self.latency)
        datagram = self.link.take(index)
        self._arrive(datagram)
        return datagram

    def _arrive(self, datagram: Datagram) -> None:
        if datagram.dst == SERVER_ADDR:
            self.server.receive_datagram(datagram.data, datagram.src, self.now)
        elif datagram.dst == self.client_addr:
            self.client.receive_datagram(datagram.data, datagram.src, self.now)
        else:
            self.link.stats["nat-dropped"] += 1
        self.pump()

    def drop(self, index: int) -> Datagram:
        return self.link.take(index)

    def duplicate(self, index: int) -> None:
        self.link.in_flight.append(self.link.in_flight[index % len(self.link.in_flight)])

    def corrupt(self, index: int, choice: int, *, anywhere: bool = False) -> Datagram | None:
        """Flip one bit of an in-flight datagram and deliver the result.

        The bit is one of :func:`detectable_bits`, or with ``anywhere`` any bit
        at all (which sets :attr:`tampered`). Returns the corrupted datagram,
        or ``None`` if there was no bit to flip (the datagram stays in flight).
        """
        index %= len(self.link.in_flight)
        datagram = self.link.in_flight[index]
        bits = list(range(len(datagram.data) * 8)) if anywhere else detectable_bits(datagram.data)
        if not bits:
            return None
        del self.link.in_flight[index]
        self.tampered |= anywhere
        data = flip_bit(datagram.data, bits[choice % len(bits)])
        bad = Datagram(data, datagram.src, datagram.dst)
        receiver = self.server if bad.dst == SERVER_ADDR else self.client
        drops = _drops(receiver)
        self._arrive(bad)
        if is_frame(data) and bad.dst in (SERVER_ADDR, self.client_addr):
            try:
                decode_frame_untrusted(data)
            except RemoteProtocolError:
                assert _drops(receiver) == drops + 1, "a malformed frame was not counted"
        return bad

    def roam(self) -> None:
        """NAT rebinding: the client's datagrams now come from a new port."""
        self._port += 1
        self.client_addr = (CLIENT_ADDR[0], self._port)

    def restart_server(self) -> None:
        """Replace the server with a fresh instance; datagrams in flight stay in flight."""
        self.orphaned.update(self.server.pending())
        self.restarts += 1
        self.server = self._new_server()
        self.servers.append(self.server)

    # -- time ---------------------------------------------------------------

    def next_timer(self) -> float | None:
        timers = [t for t in (self.client.get_timer(), self.server.get_timer()) if t is not None]
        return min(timers, default=None)

    def fire_due(self) -> None:
        """Run each core's timer if it is due, then pump."""
        for core in (self.client, self.server):
            timer = core.get_timer()
            if timer is not None and timer <= self.now:
                core.handle_timer(self.now)
        self.pump()

    def advance(self, seconds: float, *, precise: bool = True) -> None:
        """Let ``seconds`` pass, firing timers as they come due.

        ``precise``: wake at each deadline, as a good timer does; otherwise wake
        only at the end (a late timer, or a process that was suspended).
        """
        target = self.now + seconds
        fired_at, same_now = math.nan, 0
        for _ in range(ADVANCE_MAX_FIRINGS):
            timer = self.next_timer()
            if timer is None or timer > target:
                break
            self.now = max(self.now, timer) if precise else max(self.now, target)
            # A timer may be due again right after it ran (the client's silence
            # report right after a give-up), but not again and again.
            same_now = same_now + 1 if self.now == fired_at else 0
            assert same_now < 3, (
                f"timer {timer} still due after handle_timer({self.now}) ran three times: "
                "the I/O layer would spin"
            )
            fired_at = self.now
            self.fire_due()
        else:
            raise AssertionError(
                f"timers still due after {ADVANCE_MAX_FIRINGS} firings at t={self.now}: "
                f"client {self.client.get_timer()}, server {self.server.get_timer()}"
            )
        self.now = target

    def quiescent(self) -> bool:
        return (
            not self.link.in_flight and not self.client.has_pending() and not self.server.pending()
        )

    def settle(self, *, shuffle: random.Random | None = None) -> int:
        """Heal the link and run until nothing is in flight or pending; return the steps.

        Delivers in order unless ``shuffle`` picks the next datagram.
        """
        self.link.heal()
        start = self.now
        for step in range(SETTLE_MAX_STEPS):
            if self.link.in_flight:
                index = shuffle.randrange(len(self.link.in_flight)) if shuffle else 0
                self.deliver(index)
            elif self.quiescent():
                return step
            else:
                timer = self.next_timer()
                assert timer is not None, "something is pending but no timer is set"
                self.advance(max(timer - self.now, 0.0))
            assert self.now - start <= SETTLE_MAX_SECONDS, (
                f"not settled after {SETTLE_MAX_SECONDS} s of virtual time: "
                f"client pending {self.client.pending()}, server pending {self.server.pending()}"
            )
        raise AssertionError(
            f"not settled after {SETTLE_MAX_STEPS} steps: {len(self.link.in_flight)} in flight, "
            f"client pending {self.client.pending()}, server pending {self.server.pending()}"
        )

    # -- invariants ---------------------------------------------------------

    def sessions(self) -> list[Session]:
        """Every live session of the client and the current server."""
        client_session = self.client._session
        out = [] if client_session is None else [client_session]
        out.extend(client.session for client in self.server._clients.values())
        return out

    def check_no_duplicates(self) -> None:
        if self.tampered:
            return
        for side, log in (("server", self.server_log), ("client", self.client_log)):
            counts = Counter(log.received)
            for text, n in counts.items():
                allowed = 1 + (self.redelivery_allowed[text] if self.tolerate_redelivery else 0)
                assert n <= allowed, f"{side} received {text[:20]!r} {n} times"

    def check_order(self) -> None:
        if self.tampered:
            return
        pairs = (
            ("server", self.server_log.received, self.client_sent),
            ("client", self.client_log.received, self.server_sent),
        )
        for side, received, sent in pairs:
            index = {text: i for i, text in enumerate(sent)}
            last = -1
            seen: set[str] = set()
            for text in received:
                assert text in index, f"{side} received {text[:20]!r}, which nobody sent"
                if text in seen:  # a tolerated redelivery (check_no_duplicates bounds it)
                    continue
                seen.add(text)
                assert index[text] > last, (
                    f"{side} received {text[:20]!r} after {sent[last][:20]!r}, out of send order"
                )
                last = index[text]

    def check_timers(self) -> None:
        for name, core in (("client", self.client), ("server", self.server)):
            timer = core.get_timer()
            assert timer is None or timer >= self.now, (
                f"{name} timer {timer} is in the past (now {self.now})"
            )

    def check_bounds(self) -> None:
        config = self.config
        for session in self.sessions():
            assert session.sender.in_flight <= config.window, "more in flight than the window"
            assert session.sender.queued <= config.send_queue, "send queue over its limit"
            buffered = len(session.receiver._buffer)
            assert buffered <= config.reorder_window, "reorder buffer over its limit"
        assert len(self.client._queue) <= config.max_queued_messages
        # Config.max_peers bounds sessions and plain peers each (its docstring), so
        # peer_count may reach 2 * max_peers; max_peer_count records how high it got.
        assert self.server.session_count <= config.max_peers, "too many sessions"
        plain = self.server.peer_count - self.server.session_count
        assert plain <= config.max_peers, "too many plain peers"
        self.max_peer_count = max(self.max_peer_count, self.server.peer_count)

    def check_reports(self) -> None:
        """MessageDelivered only for what the peer showed; at most one report per text.

        Only the cumulative part of an ack completes a message, so "delivered"
        means the peer released it in order, that is, showed it.
        """
        if self.tampered:
            return
        pairs = (
            ("client", self.client_log, self.server_log),
            ("server", self.server_log, self.client_log),
        )
        for side, log, other in pairs:
            received = set(other.received)
            for text in log.delivered:
                assert text in received, (
                    f"{side} got MessageDelivered({text[:20]!r}) for a text never received"
                )
            reports = Counter(log.delivered) + Counter(log.not_delivered)
            for text, n in reports.items():
                assert n == 1, f"{side} reported {text[:20]!r} {n} times (delivered or not)"

    def check_room(self) -> None:
        """The room holds only live sessions and remembered plain peers, within bounds;
        the operator's replies are the only texts the server reports on."""
        server = self.server
        members = server.room.members
        assert len(members) <= self.config.max_clients, "room over max_clients"
        for member in members:
            if isinstance(member, int):
                assert member in server._clients, "a member whose session ended"
            else:
                assert member in server._plain, "a plain member the server forgot"
        if not self.tampered:  # a corrupted magic byte can conjure a plain peer
            assert all(isinstance(member, int) for member in members)
        assert set(server.pending()) <= set(self.server_sent), "pending text nobody typed"

    def check_all(self) -> None:
        self.check_no_duplicates()
        self.check_order()
        self.check_timers()
        self.check_bounds()
        self.check_reports()
        self.check_room()

    def check_settled(self) -> None:
        """After :meth:`settle`: everything sent was received, or reported not delivered.

        A text can be both received and reported NotDelivered: the receiver
        showed it, but every ack was lost, so the sender gave up. So the
        property is "received or reported", and every reliably sent text got
        exactly one report (check_reports: never both delivered and not).
        Replies an old server instance still held when it was replaced have
        nobody left to report them.
        """
        if self.tampered:
            return
        pairs = (
            ("client", self.client_sent, self.client_log, self.server_log),
            ("server", self.server_sent, self.server_log, self.client_log),
        )
        for side, sent, log, other in pairs:
            received = set(other.received)
            failed = set(log.not_delivered) | set(log.not_sent)
            reported = set(log.delivered) | failed
            for text in sent:
                if text in self.orphaned:
                    continue
                assert text in received or text in failed, (
                    f"{side} sent {text[:20]!r}: neither received nor reported NotDelivered"
                )
                assert text in reported, f"{side} sent {text[:20]!r}: settled without a report"
