"""Helpers shared by the tier-1/2 tests of the sans-IO cores.

Seeded cores, frame-level feeding and draining, a timer runner that fails if a
timer does not move forward, and :class:`Pair`: a client core and a server core
joined by an in-memory link that delivers datagrams both ways at a given ``now``.

Every drain checks the contract the Trio layer relies on: once
``datagrams_to_send(now)`` has been called, ``get_timer()`` is never before ``now``.

The reliable stream carries chat messages (``_chat``): the payload builders
below (:func:`say_payload`, :func:`said_payload`, ...) make the bytes a client
or the server puts in a Data frame, and :func:`say_data` / :func:`said_data`
whole frames. A client sends ``Join(name)`` first on every session; the server
answers a member's first message with ``Named(name)``.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from hypothesis import strategies as st

from trio_udpchat._chat import (
    Act,
    AskWho,
    ChatMessage,
    Join,
    Named,
    Presence,
    PresenceKind,
    Quit,
    Refused,
    RefusedWhy,
    Rename,
    Roster,
    RosterEntry,
    Said,
    SaidKind,
    Say,
    Whisper,
    decode_chat_untrusted,
    encode_chat,
)
from trio_udpchat._client import ClientCore
from trio_udpchat._config import Config
from trio_udpchat._crypto import RoomKey, Sealer
from trio_udpchat._endpoint import Endpoint
from trio_udpchat._events import Address, KeyNeeded, MessageTooLong
from trio_udpchat._names import address_name
from trio_udpchat._sealed import open_frame_untrusted, prove, sealing
from trio_udpchat._server import ServerCore
from trio_udpchat._session import Session
from trio_udpchat._wire import (
    DATA_OVERHEAD,
    FLAG_MORE,
    SEALED,
    Ack,
    Challenge,
    Data,
    Denied,
    Frame,
    Hello,
    Welcome,
    decode_frame_untrusted,
    encode_frame,
    frame_type,
)

_T = TypeVar("_T")

SERVER: Address = ("198.51.100.7", 9999)
CLIENT: Address = ("192.0.2.1", 40001)
SEED = 2024
#: The operator's name in a ``ServerCore`` made without one.
OPERATOR = "server"
#: The name the room gives a member known only by its address ``CLIENT``.
CLIENT_NAME = "192.0.2.1:40001"
#: The round trip of the helpers' handshakes (the join and its ack): its sample
#: (srtt 1/3 s, rttvar 1/6 s) leaves the RTO at 1 s, the initial value, so
#: retransmission times read the same as in a session with no sample yet.
RTT = 1 / 3
#: Loops in the helpers give up after this many rounds: the cores must go quiet.
_ROUNDS = 10_000


def seeded(seed: int) -> Callable[[int], int]:
    """A seeded stand-in for ``secrets.randbits``."""
    return random.Random(seed).getrandbits


def seeded_values(count: int, seed: int) -> list[int]:
    """The first ``count`` 64-bit values :func:`seeded` hands out."""
    draw = seeded(seed)
    return [draw(64) for _ in range(count)]


#: A room key for tests (deriving a real one takes Argon2id's time; see test_crypto).
ROOM_KEY = RoomKey(bytes(range(16)), bytes(range(100, 132)))
#: A different key under the same salt: what a wrong passphrase gives.
WRONG_KEY = RoomKey(ROOM_KEY.salt, bytes(range(200, 232)))


def acks_at_once(config: Config | None) -> Config:
    """``config`` (default: the default one) with every packet acknowledged at once.

    The tier-1 tests of everything but the ack policy read as request and answer:
    a Data frame in, its Ack out at the next drain; and as no ack is held back,
    the retransmission timeout need not allow for one (``ack_delay=0``), so it
    is RFC 6298's. The default policy (acks held up to ``ack_delay``, every
    second one at once) has its own tests (``test_acks.py``), and runs in the
    lossy-link state machines and every Trio and end-to-end test, which build
    their cores without these helpers.
    """
    return replace(config or Config(), ack_every=1, ack_delay=0.0)


def one_per_packet(config: Config | None) -> Config:
    """``config`` (default: the default one) with every message in a packet of its
    own: the tier-1 tests read frame by frame. Bundles have their own tests
    (``test_bundles.py``), and run in the lossy-link state machines and every Trio
    and end-to-end test."""
    return replace(config or Config(), bundle=False)


def make_server(
    config: Config | None = None,
    seed: int = SEED,
    *,
    trust_plain: bool = True,
    key: RoomKey | None = None,
    allow_plain: bool = False,
    name: str = OPERATOR,
    delayed_acks: bool = False,
    bundles: bool = False,
) -> ServerCore:
    """A seeded server core (its operator called ``name``). Plain-text peers are trusted
    (no amplification budget) unless ``trust_plain`` is false: only the budget's own
    tests are about it. Acks go at once (:func:`acks_at_once`) unless ``delayed_acks``,
    and each message in a packet of its own (:func:`one_per_packet`) unless ``bundles``."""
    config = config or Config()
    if trust_plain:
        config = replace(config, plain_budget_factor=None)
    if not delayed_acks:
        config = acks_at_once(config)
    if not bundles:
        config = one_per_packet(config)
    return ServerCore(config, name=name, randbits=seeded(seed), key=key, allow_plain=allow_plain)


def open_any(data: bytes, key: RoomKey | None = None) -> Frame:
    """Decode ``data``, clear or (under ``key``, by default :data:`ROOM_KEY`) sealed."""
    if frame_type(data) == SEALED:
        return open_frame_untrusted(data, (key or ROOM_KEY).key)
    return decode_frame_untrusted(data)


def seal(frame: Frame, key: RoomKey = ROOM_KEY, seed: int = SEED + 3) -> bytes:
    """``frame`` sealed under ``key`` (a fresh sealer each time: nonces differ by seed)."""
    return sealing(Sealer(key.key, seeded(seed))).frame(frame)


def make_client(
    config: Config | None = None,
    *,
    plain: bool = False,
    seed: int = SEED,
    name: str = "",
    keyed: bool = False,
    token: int = 0,
    delayed_acks: bool = False,
    bundles: bool = False,
) -> ClientCore:
    """A seeded client core of the server at ``SERVER`` (``keyed``: it has a passphrase;
    ``token``: what its joins carry, none by default). Acks go at once
    (:func:`acks_at_once`) unless ``delayed_acks``, and each message in a packet of its
    own (:func:`one_per_packet`) unless ``bundles``."""
    if not delayed_acks:
        config = acks_at_once(config)
    if not bundles:
        config = one_per_packet(config)
    return ClientCore(
        SERVER, config, plain=plain, name=name, randbits=seeded(seed), keyed=keyed, token=token
    )


# -- chat payloads ----------------------------------------------------------------------


def say_payload(text: str) -> bytes:
    """What a client sends when its user types ``text``: ``Say(text)``."""
    return encode_chat(Say(text))


def join_payload(name: str = "") -> bytes:
    """A client's first message on every session: ``Join(name)``."""
    return encode_chat(Join(name))


def said_payload(
    text: str,
    time: float = 0.0,
    *,
    sender: str = OPERATOR,
    kind: SaidKind = SaidKind.REPLY,
    history: bool = False,
) -> bytes:
    """What the server sends for something said; by default the operator's reply at
    wall-clock ``time`` (a ``ServerCore`` without ``wall_offset``: its ``now``)."""
    return encode_chat(Said(sender, text, time, kind, history))


def named_payload(name: str = CLIENT_NAME) -> bytes:
    """The server's answer to a join: ``Named(name)``."""
    return encode_chat(Named(name))


def say_data(session: int, pn: int, seq: int, text: str, flags: int = 0) -> Data:
    """A client's one-packet ``Say(text)``."""
    return Data(session, pn, seq, flags, say_payload(text))


def said_data(
    session: int, pn: int, seq: int, text: str, time: float = 0.0, flags: int = 0
) -> Data:
    """The server's one-packet reply ``Said(OPERATOR, text, time, REPLY)``."""
    return Data(session, pn, seq, flags, said_payload(text, time))


def chat_of(frame: Frame) -> ChatMessage:
    """The chat message a one-packet Data frame carries."""
    assert isinstance(frame, Data), f"{frame!r} is not a Data frame"
    return decode_chat_untrusted(frame.payload)


# -- hypothesis: chat messages, whole and damaged -----------------------------------------

_words = st.text(max_size=6)
_times = st.one_of(st.just(0.0), st.floats(allow_nan=False, allow_infinity=False))
#: Every kind of chat message, either way (a core must also survive the wrong direction).
chat_messages: st.SearchStrategy[ChatMessage] = st.one_of(
    st.builds(Join, _words),
    st.builds(Say, _words),
    st.builds(Act, _words),
    st.builds(Whisper, _words, _words),
    st.builds(Rename, _words),
    st.just(AskWho()),
    st.builds(Quit, _words),
    st.builds(Said, _words, _words, _times, st.sampled_from(SaidKind), st.booleans()),
    st.builds(Presence, st.sampled_from(PresenceKind), _words, _words, _times),
    st.builds(
        Roster,
        st.lists(
            st.builds(RosterEntry, _words, st.integers(0, 2**32 - 1), st.booleans()), max_size=2
        ).map(tuple),
    ),
    st.builds(Refused, st.sampled_from(RefusedWhy), _words),
    st.builds(Named, _words),
)


def _damage(payload: bytes, spec: tuple[int, int, bytes]) -> bytes:
    """``payload`` with one bit flipped, cut short, and ``tail`` appended (any may be no-ops)."""
    index, bit, tail = spec
    if not payload:
        return tail
    damaged = bytearray(payload)
    damaged[index % len(payload)] ^= (1 << bit) if bit < 8 else 0
    return bytes(damaged[: len(payload) - index % 3]) + tail


#: Chat payloads for Data frames: valid messages, damaged ones, and arbitrary bytes.
chat_payloads: st.SearchStrategy[bytes] = st.one_of(
    chat_messages.map(encode_chat),
    chat_messages.map(encode_chat),
    st.builds(
        _damage,
        chat_messages.map(encode_chat),
        st.tuples(st.integers(0, 255), st.integers(0, 8), st.binary(max_size=2)),
    ),
    st.binary(max_size=8),
)


def check_timer(core: Endpoint, now: float) -> None:
    """The core's timer must not be before ``now`` (the I/O layer would fire it at once)."""
    timer = core.get_timer()
    assert timer is None or timer >= now, f"timer {timer!r} is before now {now!r}"


def drain(core: Endpoint, now: float) -> list[tuple[bytes, Address]]:
    """``datagrams_to_send(now)``, then check the timer."""
    out = core.datagrams_to_send(now)
    check_timer(core, now)
    return out


def frames_out(core: Endpoint, now: float) -> list[tuple[Frame, Address]]:
    """What the core sends at ``now``, decoded (every datagram must be a frame; sealed
    ones are opened with :data:`ROOM_KEY`)."""
    return [(open_any(data), addr) for data, addr in drain(core, now)]


def feed(core: ServerCore | ClientCore, frame: Frame, addr: Address, now: float) -> None:
    """Deliver ``frame`` to ``core`` as if it came from ``addr``: sealed under
    :data:`ROOM_KEY` if the core expects sealed frames and ``frame`` may be sealed."""
    handshake = isinstance(frame, Hello | Challenge | Denied)
    data = seal(frame) if core._sealed_only and not handshake else encode_frame(frame)
    core.receive_datagram(data, addr, now)


def run_timers(core: Endpoint, until: float) -> list[tuple[float, list[tuple[bytes, Address]]]]:
    """Fire every timer due up to ``until`` at its own time; drain after each.

    Returns ``(time, datagrams sent then)`` per firing. Each firing must move
    the timer strictly forward, or the I/O layer would spin.
    """
    fired: list[tuple[float, list[tuple[bytes, Address]]]] = []
    while (due := core.get_timer()) is not None and due <= until:
        assert len(fired) < _ROUNDS, "too many timer firings"
        core.handle_timer(due)
        fired.append((due, drain(core, due)))
        after = core.get_timer()
        assert after is None or after > due, f"timer stuck at {due!r} (next {after!r})"
    return fired


def fire_times(core: Endpoint, until: float) -> list[float]:
    """:func:`run_timers`, keeping only the firing times."""
    return [time for time, _ in run_timers(core, until)]


def text_of_size(char: str, size: int) -> str:
    """A text of exactly ``size`` UTF-8 bytes, mostly made of ``char``."""
    width = len(char.encode("utf-8"))
    return char * (size // width) + "x" * (size % width)


#: What a core's user does to send text: ``send(text, now)``.
Send = Callable[[str, float], None]


def check_too_long(send: Send, core: Endpoint, text: str, limit: int, now: float) -> None:
    """Sending ``text`` is refused with MessageTooLong(size, ``limit``) and nothing goes out."""
    send(text, now)
    assert core.pop_events() == [MessageTooLong(text, len(text.encode("utf-8")), limit)]
    assert drain(core, now) == []


def check_fragmented_limit(
    send: Send,
    core: Endpoint,
    char: str,
    max_message: int,
    wrap: Callable[[str], bytes],
    first_seq: int = 1,
) -> None:
    """A text of exactly ``max_message`` bytes goes out as numbered fragments (MORE on all
    but the last) that rebuild its chat message ``wrap(text)``; one more character is too
    long. The core's config has ``max_datagram=64``; its session has sent ``first_seq``
    one-packet messages (the join, or the name) and has nothing in flight."""
    fits = text_of_size(char, max_message)
    send(fits, 1.0)
    payload = wrap(fits)
    fragments = [frame for frame, _ in frames_out(core, 1.0) if isinstance(frame, Data)]
    count = math.ceil(len(payload) / (64 - DATA_OVERHEAD))
    assert [(f.seq, f.flags) for f in fragments] == [
        (first_seq + i, FLAG_MORE if i < count - 1 else 0) for i in range(count)
    ]
    assert b"".join(f.payload for f in fragments) == payload
    check_too_long(send, core, fits + char, max_message, 1.5)


def check_plain_limit(send: Send, core: Endpoint, char: str, limit: int, to: Address) -> None:
    """A plain text of ``limit`` bytes fills one whole datagram to ``to``; one more
    character is too long."""
    fits = text_of_size(char, limit)
    send(fits, 1.0)
    [(datagram, dest)] = drain(core, 1.0)
    assert (dest, len(datagram)) == (to, core.config.max_datagram)
    check_too_long(send, core, fits + char, limit, 2.0)


# -- one core, frame by frame ------------------------------------------------------


def challenge(server: ServerCore, addr: Address, nonce: int = 5, now: float = 0.0) -> Challenge:
    """Say a first hello to ``server`` from ``addr``; return the challenge it answers with."""
    feed(server, Hello(nonce), addr, now)
    [(reply, to)] = frames_out(server, now)
    assert isinstance(reply, Challenge)
    assert (reply.nonce, to) == (nonce, addr)
    return reply


def answer(
    server: ServerCore, addr: Address, nonce: int = 5, now: float = 0.0, key: RoomKey = ROOM_KEY
) -> list[tuple[Frame, Address]]:
    """Say hello to ``server`` from ``addr`` and answer its challenge (with a proof
    under ``key`` if it asks for one); return what the server sends then."""
    cookie = challenge(server, addr, nonce, now).cookie
    hello = Hello(nonce, cookie)
    if server.encrypted:
        hello = prove(hello, Sealer(key.key, seeded(SEED + 7)))
    feed(server, hello, addr, now)
    return frames_out(server, now)


def join(server: ServerCore, addr: Address, nonce: int = 5, now: float = 0.0) -> int:
    """:func:`answer`; return the session the server's welcome grants."""
    [(welcome, to)] = answer(server, addr, nonce, now)
    assert isinstance(welcome, Welcome)
    assert (welcome.nonce, to) == (nonce, addr)
    return welcome.session


def enter(
    server: ServerCore, addr: Address, name: str = "", *, nonce: int = 5, now: float = 0.0
) -> int:
    """:func:`join`, then ``Join(name)`` (pn 0, seq 0) from ``addr``: the server names the
    member (Data pn 0, seq 0), replays the room's history to it, and acks; all that is
    acknowledged ``RTT`` later (pn 1). Returns the session; the client's next pn is 2
    and its next seq 1. What the room tells other members goes out too, unchecked."""
    session = join(server, addr, nonce, now)
    feed(server, Data(session, 0, 0, 0, join_payload(name)), addr, now)
    mine = [frame for frame, to in frames_out(server, now) if to == addr]
    data = [frame for frame in mine if isinstance(frame, Data)]
    assert data[:1] == [Data(session, 0, 0, 0, named_payload(name or address_name(addr)))]
    for frame in data[1:]:
        said = chat_of(frame)
        assert isinstance(said, Said), f"{said!r} is not history"
        assert said.history, f"{said!r} is not history"
    assert mine[len(data) :] == [Ack(session, len(data), 1, 0)]
    feed(server, Ack(session, 1, len(data), 0), addr, now + RTT)
    assert drain(server, now + RTT) == []
    return session


def start(client: ClientCore, now: float = 0.0) -> int:
    """Start ``client``; return the nonce of its hello."""
    client.start(now)
    [(hello, to)] = frames_out(client, now)
    assert isinstance(hello, Hello)
    assert to == SERVER
    return hello.nonce


def connect(client: ClientCore, session: int, now: float = 0.0, *, acked: bool = True) -> None:
    """Start ``client`` and welcome it into ``session``; it sends its join (pn 0, seq 0),
    which with ``acked`` the server acknowledges ``RTT`` later (pn 0)."""
    feed(client, Welcome(start(client, now), session, 60_000), SERVER, now)
    assert frames_out(client, now) == [(Data(session, 0, 0, 0, join_payload(client.name)), SERVER)]
    assert client.state == "connected"
    if acked:
        feed(client, Ack(session, 0, 1, 0), SERVER, now + RTT)
        assert drain(client, now + RTT) == []


# -- a client and a server on an in-memory link ---------------------------------------


@dataclass(frozen=True, slots=True)
class Hop:
    """One datagram on the link: when, which way, and whether it arrived."""

    time: float
    from_client: bool
    data: bytes
    delivered: bool

    def frame(self) -> Frame:
        return open_any(self.data)


class Pair:
    """A :class:`ClientCore` and a :class:`ServerCore` joined by a lossless, instant link.

    ``addr`` is where the client's datagrams seem to come from (change it to
    roam); the server's datagrams reach the client only if sent to ``addr``.
    Clear ``to_server`` / ``to_client`` to cut one direction. ``hops`` logs
    every datagram.

    With ``key``, the server's room has that key; the client has a passphrase
    if ``client_key`` is given, and "derives" ``client_key.key`` whatever salt
    the server names (a different key: a wrong passphrase). The I/O layer's
    part, answering :class:`KeyNeeded`, is played by :meth:`exchange`.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        client_config: Config | None = None,
        seed: int = SEED,
        name: str = "",
        key: RoomKey | None = None,
        client_key: RoomKey | None = None,
        bundles: bool = False,
    ) -> None:
        self.server = make_server(config, seed=seed, key=key, bundles=bundles)
        self.client = make_client(
            client_config or config,
            seed=seed + 1,
            name=name,
            keyed=client_key is not None,
            bundles=bundles,
        )
        self.client_key = client_key
        self.addr = CLIENT
        self.now = 0.0
        self.to_server = True
        self.to_client = True
        self.hops: list[Hop] = []

    def exchange(self) -> None:
        """Deliver datagrams both ways at ``now`` until neither core has more."""
        for _ in range(_ROUNDS):
            self._derive_keys()
            client_out = drain(self.client, self.now)
            server_out = drain(self.server, self.now)
            if not client_out and not server_out:
                return
            for data, to in client_out:
                assert to == SERVER
                self._hop(True, data, self.to_server)
            for data, to in server_out:
                self._hop(False, data, self.to_client and to == self.addr)
        raise AssertionError("the cores never go quiet")

    def _derive_keys(self) -> None:
        """Answer the client's :class:`KeyNeeded` events (and take them off its queue)."""
        events = self.client._events
        needed = [event for event in events if isinstance(event, KeyNeeded)]
        events[:] = [event for event in events if not isinstance(event, KeyNeeded)]
        for event in needed:
            assert self.client_key is not None, "only a client with a passphrase needs a key"
            self.client.provide_key(event.salt, self.client_key.key, self.now)

    def _hop(self, from_client: bool, data: bytes, delivered: bool) -> None:
        self.hops.append(Hop(self.now, from_client, data, delivered))
        if not delivered:
            return
        if from_client:
            self.server.receive_datagram(data, self.addr, self.now)
        else:
            self.client.receive_datagram(data, SERVER, self.now)

    def advance(self, until: float) -> None:
        """Fire both cores' timers in time order up to ``until``, exchanging after each."""
        assert until >= self.now
        for _ in range(_ROUNDS):
            timers = [
                t for t in (self.client.get_timer(), self.server.get_timer()) if t is not None
            ]
            due = min(timers, default=None)
            if due is None or due > until:
                break
            self.now = due
            for core in (self.client, self.server):
                timer = core.get_timer()
                if timer is not None and timer <= due:
                    core.handle_timer(due)
            self.exchange()
            for core in (self.client, self.server):
                after = core.get_timer()
                assert after is None or after > due, f"{core!r}: timer stuck at {due!r}"
        else:
            raise AssertionError("too many timer firings")
        self.now = until
        self.exchange()

    def connect(self) -> None:
        """Start the client and let it get its session."""
        self.client.start(self.now)
        self.exchange()
        assert self.client.state == "connected"

    def say(self, text: str) -> None:
        """The client's user types ``text``."""
        self.client.send_text(text, self.now)
        self.exchange()

    def reply(self, text: str) -> None:
        """The server's operator types ``text``."""
        self.server.reply(text, self.now)
        self.exchange()

    def frames(self, *, from_client: bool, since: float = -1.0) -> list[Frame]:
        """Frames sent one way at or after ``since`` (delivered or not)."""
        return [
            hop.frame()
            for hop in self.hops
            if hop.from_client == from_client and hop.time >= since and hop.data[:1] == b"\xf9"
        ]


def checksummed(data: bytes) -> bytes:
    """``data`` with a correct CRC-32 trailer, so a check past the checksum is what fails."""
    return data + zlib.crc32(data).to_bytes(4, "big")


@dataclass(frozen=True, slots=True)
class InOrder:
    """Fuzz input: the peer's next message on its session (if it has one), carrying
    ``payload``: a Data frame the receiver takes in order, so the payload is decoded."""

    payload: bytes

    def frame(self, session: Session) -> Data:
        pn = session._replay.highest + 1  # newer than anything the session has seen
        seq = session.receiver.next_seq
        return Data(session.id, pn % 2**32, seq % 2**32, 0, self.payload)


#: Chat payloads (whole, damaged, arbitrary) as the peer's next in-order message.
in_order_chat: st.SearchStrategy[InOrder] = st.builds(InOrder, chat_payloads)


def mixed(*parts: tuple[int, st.SearchStrategy[_T]]) -> st.SearchStrategy[_T]:
    """One of ``parts``, drawn by weight. (``st.one_of`` flattens nested choices and
    in practice draws some branches far more often than others.)"""
    picks = [i for i, (weight, _) in enumerate(parts) for _ in range(weight)]
    return st.sampled_from(picks).flatmap(lambda i: parts[i][1])
