"""Tier 1 and 2 tests of ``ClientCore``: explicit ``now``, seeded nonces.

Frame-level tests feed the client by hand; scenario tests run it against a
real ``ServerCore`` on an in-memory link (:class:`tests.core_helpers.Pair`),
whose every step checks that the timer is never in the past.

Every session begins with the client's ``Join(name)`` (pn 0, seq 0): the
``connected`` helper has the server acknowledge it, so what the user types
goes out from pn 1, seq 1. What the server sends is chat-encoded too: the
operator's reply is ``Said(kind=REPLY)`` (see :func:`data`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core_helpers import (
    CLIENT,
    CLIENT_NAME,
    OPERATOR,
    SEED,
    SERVER,
    InOrder,
    Pair,
    chat_of,
    chat_payloads,
    check_fragmented_limit,
    check_plain_limit,
    check_too_long,
    connect,
    drain,
    feed,
    fire_times,
    frames_out,
    in_order_chat,
    join_payload,
    make_client,
    make_server,
    mixed,
    run_timers,
    said_data,
    said_payload,
    say_data,
    say_payload,
    seeded_values,
    start,
    text_of_size,
)
from trio_udpchat._chat import (
    AskWho,
    ChatMessage,
    ClientMessage,
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
    encode_chat,
)
from trio_udpchat._client import ClientCore
from trio_udpchat._config import Config
from trio_udpchat._errors import LocalProtocolError
from trio_udpchat._events import (
    Address,
    Event,
    MessageDelivered,
    MessageReceived,
    MessageTooLong,
    NameAssigned,
    NotDelivered,
    PeerJoined,
    PeerLeft,
    PresenceNoticed,
    RequestRefused,
    RoomMessage,
    ServerAnswered,
    ServerRefused,
    ServerSilent,
    SessionLost,
    SessionStarted,
    WhoListed,
)
from trio_udpchat._wire import (
    FLAG_KEEPALIVE,
    FLAG_MORE,
    Ack,
    Bye,
    Data,
    Frame,
    Hello,
    Reset,
    Welcome,
    encode_frame,
)

OTHER: Address = ("198.51.100.8", 9999)
SESSION = 0x5E5510

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(150, settings().max_examples)


def sent(client: ClientCore, now: float) -> list[Frame]:
    """The frames the client sends at ``now``; all must go to the server."""
    out = frames_out(client, now)
    assert all(addr == SERVER for _, addr in out)
    return [frame for frame, _ in out]


def connected(config: Config | None = None, now: float = 0.0, *, name: str = "") -> ClientCore:
    """A client in ``SESSION`` since ``now``; the server acknowledged its join at ``now + RTT``
    (the server's pn 0), so the next pn and seq the client uses are 1."""
    client = make_client(config, name=name)
    connect(client, SESSION, now)
    assert client.pop_events() == [SessionStarted(SERVER)]
    return client


def data(pn: int, seq: int, text: str, flags: int = 0, session: int = SESSION) -> Data:
    """The server's one-packet message: the operator's reply ``text`` (at time 0)."""
    return said_data(session, pn, seq, text, flags=flags)


def says(pn: int, seq: int, text: str, session: int = SESSION) -> Data:
    """The client's one-packet ``Say(text)``."""
    return say_data(session, pn, seq, text)


def joins(name: str = "", session: int = SESSION) -> Data:
    """The client's first message on a session: ``Join(name)`` at pn 0, seq 0."""
    return Data(session, 0, 0, 0, join_payload(name))


def chat(pn: int, seq: int, message: ChatMessage, session: int = SESSION) -> Data:
    """Any one-packet chat message."""
    return Data(session, pn, seq, 0, encode_chat(message))


def of(events: list[Event], kind: type[Event]) -> list[Event]:
    return [event for event in events if isinstance(event, kind)]


# -- connecting -----------------------------------------------------------------------


def test_start_sends_hello() -> None:
    client = make_client()
    assert client.state == "idle"
    assert start(client, now=5.0) == seeded_values(1, SEED)[0]
    assert client.get_timer() == 6.0
    assert client.pop_events() == []


def test_welcome_starts_session() -> None:
    client = connected(now=1.0)
    assert client.get_timer() == 1.0 + Config().keepalive_after  # the join went out at 1.0
    client.send_text("héllo 🎉", now=2.0)
    assert sent(client, 2.0) == [says(1, 1, "héllo 🎉")]
    assert client.get_timer() == 3.0  # the first retransmission, at 1 s (the join's sample)


def test_welcome_sends_the_join_first_and_retransmits_it() -> None:
    client = make_client(name="alice")
    nonce = start(client)
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 0.5)
    assert client.pop_events() == [SessionStarted(SERVER)]
    assert sent(client, 0.5) == [joins("alice")]
    assert client.get_timer() == 1.5  # the join is retransmitted like any message
    assert client.pending() == []  # ... but it is nothing the user typed
    assert fire_times(client, 1.5) == [1.5]
    assert client.stats["retransmissions"] == 1
    feed(client, Ack(SESSION, 0, 1, 0), SERVER, 2.0)
    assert client.pop_events() == []  # no MessageDelivered for a join
    assert drain(client, 2.0) == []
    assert not client.has_pending()


def test_texts_before_welcome_are_queued_then_sent_in_order_and_delivered() -> None:
    client = make_client()
    nonce = start(client)
    for text in ["one", "two", ""]:
        client.send_text(text, now=0.1)
    assert client.has_pending()
    assert client.pending() == ["one", "two", ""]
    assert drain(client, 0.1) == []
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 0.2)
    assert sent(client, 0.2) == [joins(), says(1, 1, "one"), says(2, 2, "two"), says(3, 3, "")]
    assert client.pending() == ["one", "two", ""]  # sent, not yet acknowledged
    feed(client, Ack(SESSION, 0, 3, 0), SERVER, 0.3)  # the join, "one" and "two"
    assert client.pending() == [""]
    feed(client, Ack(SESSION, 1, 4, 0), SERVER, 0.4)
    assert not client.has_pending()
    assert client.pop_events() == [
        SessionStarted(SERVER),
        MessageDelivered("one"),
        MessageDelivered("two"),
        MessageDelivered(""),
    ]


def test_full_queue_refuses_text() -> None:
    client = make_client(Config(max_queued_messages=2))
    nonce = start(client)
    for text in ["a", "b", "c", "d"]:
        client.send_text(text, now=0.0)
    assert client.pop_events() == [
        NotDelivered("c", "the send queue is full"),
        NotDelivered("d", "the send queue is full"),
    ]
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 0.5)
    assert sent(client, 0.5) == [joins(), says(1, 1, "a"), says(2, 2, "b")]


def test_full_send_queue_refuses_text_in_session() -> None:
    client = connected(Config(window=1, send_queue=1))
    client.send_text("a", now=1.0)
    assert sent(client, 1.0) == [says(1, 1, "a")]  # in flight: the queue is empty again
    client.send_text("b", now=1.1)
    client.send_text("c", now=1.2)
    assert client.pop_events() == [NotDelivered("c", "the send queue is full")]
    assert client.pending() == ["a", "b"]
    assert drain(client, 1.2) == []  # b waits for room in the window


def test_has_room_while_connecting_and_in_session() -> None:
    client = make_client(Config(max_queued_messages=1, window=1))
    nonce = start(client)
    assert client.has_room()
    client.send_text("a", now=0.1)
    assert not client.has_room()  # the queue for the session holds one
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 0.2)
    assert not client.has_room()  # handed to the session, not sent yet
    assert sent(client, 0.2) == [joins()]
    assert not client.has_room()  # "a" waits behind the join in the window
    feed(client, Ack(SESSION, 0, 1, 0), SERVER, 0.3)
    assert sent(client, 0.3) == [says(1, 1, "a")]
    assert client.has_room()  # in flight: the window took it
    client.send_text("b", now=0.3)
    drain(client, 0.3)
    assert not client.has_room()  # waits behind the window
    feed(client, Ack(SESSION, 1, 2, 0), SERVER, 0.4)
    drain(client, 0.4)
    assert client.has_room()


@pytest.mark.parametrize(
    ("config", "times"),
    [
        # The doubling schedule alone: silence reported far later.
        (
            Config(hello_retry_initial=0.5, hello_retry_cap=4.0, server_silent_after=1e6),
            [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5],
        ),
        # Defaults: 1 s doubling to a 10 s cap; the silence report shares the 3 s tick.
        (Config(), [1.0, 3.0, 7.0, 15.0, 25.0]),
    ],
)
def test_hello_retransmit_schedule(config: Config, times: list[float]) -> None:
    client = make_client(config)
    nonce = start(client)
    fired = run_timers(client, until=times[-1])
    assert [time for time, _ in fired] == times
    assert [out for _, out in fired] == [[(encode_frame(Hello(nonce)), SERVER)]] * len(times)


def test_silence_tick_between_hellos_sends_nothing() -> None:
    client = make_client(Config(hello_retry_initial=2.0, server_silent_after=3.0))
    start(client)
    assert fire_times(client, until=2.0) == [2.0]
    assert client.get_timer() == 3.0
    client.handle_timer(3.0)
    assert drain(client, 3.0) == []
    assert client.pop_events() == [ServerSilent(SERVER, 3.0)]
    assert client.get_timer() == 6.0


def test_no_timer_before_start() -> None:
    client = make_client()
    assert client.get_timer() is None
    client.handle_timer(5.0)
    assert drain(client, 5.0) == []


def test_early_timer_call_does_nothing() -> None:
    client = make_client()
    start(client)
    client.handle_timer(0.5)
    assert drain(client, 0.5) == []
    assert client.pop_events() == []
    assert client.get_timer() == 1.0


def test_server_silent_reported_once_while_connecting() -> None:
    config = Config()
    client = make_client(config)
    start(client)
    run_timers(client, until=math.nextafter(config.server_silent_after, 0.0))
    assert client.pop_events() == []
    run_timers(client, until=120.0)
    assert client.pop_events() == [ServerSilent(SERVER, config.server_silent_after)]


def test_silence_reported_when_start_time_is_not_round() -> None:
    client = make_client()
    start(client, now=1.1)  # 1.1 + 3.0 - 1.1 == 2.9999999999999996
    run_timers(client, until=10.0)
    [silent] = client.pop_events()
    assert isinstance(silent, ServerSilent)
    assert silent.seconds == pytest.approx(3.0)


def test_late_welcome_answers_silence() -> None:
    client = make_client()
    nonce = start(client)
    run_timers(client, until=8.0)
    assert client.pop_events() == [ServerSilent(SERVER, 3.0)]
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 8.5)
    assert client.pop_events() == [SessionStarted(SERVER), ServerAnswered(SERVER)]
    assert sent(client, 8.5) == [joins()]  # no more hellos


@pytest.mark.parametrize(
    ("nonce_flip", "addr", "reason"),
    [
        (1, SERVER, "stale-welcome"),  # the wrong nonce, from the server
        (0, OTHER, "not-from-server"),  # the right nonce, from someone else
    ],
)
def test_bad_welcome_is_ignored(nonce_flip: int, addr: Address, reason: str) -> None:
    client = make_client()
    nonce = start(client)
    feed(client, Welcome(nonce ^ nonce_flip, SESSION, 60_000), addr, 0.5)
    assert client.state == "connecting"
    assert client.stats["dropped:" + reason] == 1
    assert client.pop_events() == []
    assert client.get_timer() == 1.0


def test_duplicate_welcome_is_dropped() -> None:
    client = make_client()
    nonce = start(client)
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 0.1)
    feed(client, Welcome(nonce, SESSION + 1, 60_000), SERVER, 0.2)
    assert client.pop_events() == [SessionStarted(SERVER)]
    assert client.stats["dropped:stale-welcome"] == 1
    client.send_text("x", now=0.3)
    assert sent(client, 0.3) == [joins(), says(1, 1, "x")]  # in the first session


# -- refused, reset ----------------------------------------------------------------------


def test_unreachable_reported_once_per_outage() -> None:
    client = make_client()
    nonce = start(client)
    client.note_unreachable(0.1)
    client.note_unreachable(0.2)
    fired = run_timers(client, until=5.0)  # the silence is not reported on top
    assert client.pop_events() == [ServerRefused(SERVER)]
    assert [t for t, out in fired if out] == [1.0, 3.0]  # hellos keep going
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 5.5)
    assert client.pop_events() == [SessionStarted(SERVER), ServerAnswered(SERVER)]
    client.note_unreachable(6.0)  # a new outage while connected: the session stays
    client.note_unreachable(6.5)
    assert (client.state, client.pop_events()) == ("connected", [ServerRefused(SERVER)])
    feed(client, Ack(SESSION, 0, 1, 0), SERVER, 7.0)
    assert client.pop_events() == [ServerAnswered(SERVER)]


def test_reset_requeues_unacked_messages_ahead_of_the_queue() -> None:
    client = connected()
    first, second = seeded_values(2, SEED)
    for text in ["a", "b", "c"]:
        client.send_text(text, now=1.0)
    drain(client, 1.0)
    feed(client, Ack(SESSION, 1, 2, 0), SERVER, 1.5)
    feed(client, Reset(SESSION), SERVER, 4.0)
    assert client.pop_events() == [MessageDelivered("a"), SessionLost(SERVER)]
    assert client.state == "connecting"
    assert sent(client, 4.0) == [Hello(second)]
    assert client.get_timer() == 5.0
    client.send_text("d", now=4.5)
    assert client.pending() == ["b", "c", "d"]
    feed(client, Welcome(first, 1, 60_000), SERVER, 4.6)  # the old nonce no longer counts
    assert client.stats["dropped:stale-welcome"] == 1
    feed(client, Welcome(second, 2, 60_000), SERVER, 4.7)
    assert client.pop_events() == [SessionStarted(SERVER, reconnect=True)]
    # A new join first (the old session's is not requeued), then what was pending.
    assert sent(client, 4.7) == [
        joins(session=2),
        *[says(i, i, t, session=2) for i, t in enumerate("bcd", start=1)],
    ]


def test_reset_requeue_respects_the_queue_limit() -> None:
    client = connected(Config(max_queued_messages=2))
    for text in ["a", "b", "c"]:
        client.send_text(text, now=1.0)
    drain(client, 1.0)
    feed(client, Reset(SESSION), SERVER, 2.0)
    assert client.pop_events() == [NotDelivered("c", "the send queue is full"), SessionLost(SERVER)]
    assert client.pending() == ["a", "b"]


@pytest.mark.parametrize("connected_first", [True, False])
def test_reset_for_another_session_is_dropped(connected_first: bool) -> None:
    client = make_client()
    if connected_first:
        connect(client, SESSION)
    else:
        start(client)
    state = client.state
    client.pop_events()
    feed(client, Reset(SESSION + 1), SERVER, 0.5)
    assert client.state == state
    assert client.pop_events() == []
    assert drain(client, 0.5) == []
    assert client.stats["dropped:unknown-session"] == 1


def test_server_restart_resends_unacked_messages_in_order_on_a_new_session() -> None:
    pair = Pair()
    pair.connect()
    pair.say("before")
    pair.to_server = False
    for text in ["one", "two", "three"]:
        pair.say(text)
    pair.server = make_server(seed=99)  # the server restarts and forgets every session
    pair.to_server = True
    pair.advance(1.0)  # the first retransmission meets the new server: Reset
    assert pair.client.pop_events() == [
        SessionStarted(SERVER),
        MessageDelivered("before"),
        SessionLost(SERVER),
        SessionStarted(SERVER, reconnect=True),
        MessageDelivered("one"),
        MessageDelivered("two"),
        MessageDelivered("three"),
    ]
    assert pair.server.pop_events() == [
        PeerJoined(CLIENT),
        MessageReceived(CLIENT, "one"),
        MessageReceived(CLIENT, "two"),
        MessageReceived(CLIENT, "three"),
    ]


# -- receiving ---------------------------------------------------------------------------


def test_data_from_server_is_received_and_acked() -> None:
    client = connected()
    feed(client, data(1, 0, "hi there"), SERVER, 1.0)
    feed(client, data(2, 1, "not ours", session=SESSION + 1), SERVER, 1.0)
    assert client.pop_events() == [MessageReceived(SERVER, "hi there")]
    assert client.stats["dropped:unknown-session"] == 1
    assert sent(client, 1.0) == [Ack(SESSION, 1, 1, 0)]


def test_fragments_from_server_are_reassembled() -> None:
    client = connected()
    text = "€" * 10  # 30 bytes, split inside the second and fourth euro sign
    payload = said_payload(text)
    at = payload.index(text.encode())  # the reply's text follows its sender's name
    cuts = [(0, at + 4), (at + 4, at + 11), (at + 11, len(payload))]
    for i, (lo, hi) in enumerate(cuts):
        flags = FLAG_MORE if hi < len(payload) else 0
        feed(client, Data(SESSION, 1 + i, i, flags, payload[lo:hi]), SERVER, 1.0)
    assert client.pop_events() == [MessageReceived(SERVER, text)]


#: Chat payloads a client cannot use, and the reason it counts each under.
BAD_CHAT = [
    pytest.param(b"", "chat-truncated", id="empty"),
    pytest.param(said_payload("cut")[:-3], "chat-truncated", id="truncated"),
    pytest.param(b"\xc3", "chat-type", id="unknown-type"),
    pytest.param(said_payload("é").replace("é".encode(), b"\xc3\x28"), "bad-utf8", id="bad-utf8"),
    pytest.param(said_payload("x") + b"\x00", "chat-malformed", id="trailing"),
    pytest.param(said_payload("x")[:-1] + b"\x02", "chat-malformed", id="bad-flag"),
    pytest.param(encode_chat(Say("a client's message")), "unexpected", id="wrong-way"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD_CHAT)
def test_undecodable_message_is_counted_but_still_acked(payload: bytes, reason: str) -> None:
    client = connected()
    feed(client, Data(SESSION, 1, 0, 0, payload), SERVER, 1.0)
    assert client.pop_events() == []
    assert client.stats["dropped:" + reason] == 1
    assert sent(client, 1.0) == [Ack(SESSION, 1, 1, 0)]
    feed(client, data(2, 1, "still here"), SERVER, 1.5)  # the stream goes on
    assert client.pop_events() == [MessageReceived(SERVER, "still here")]
    assert sent(client, 1.5) == [Ack(SESSION, 2, 2, 0)]


def test_framed_client_shows_plain_datagrams_from_server() -> None:
    client = connected()
    client.receive_datagram(b"classic\nserver\n", SERVER, 1.0)
    assert client.pop_events() == [
        MessageReceived(SERVER, "classic", plain=True),
        MessageReceived(SERVER, "server", plain=True),
    ]


@pytest.mark.parametrize(
    "datagram",
    [b"plain", encode_frame(data(0, 0, "x")), encode_frame(Reset(SESSION)), b"\xf9"],
)
def test_datagrams_from_other_addresses_are_dropped(datagram: bytes) -> None:
    client = connected()
    client.receive_datagram(datagram, OTHER, 1.0)
    assert client.state == "connected"
    assert client.pop_events() == []
    assert drain(client, 1.0) == []
    assert client.stats["dropped:not-from-server"] == 1
    assert client.stats["datagrams_in"] == 3  # the welcome, the ack of the join, then this


@pytest.mark.parametrize("frame", [Hello(1), Bye(SESSION, 0, 0)])
def test_client_bound_frames_only(frame: Frame) -> None:
    client = connected()
    feed(client, frame, SERVER, 1.0)
    assert client.stats["dropped:unexpected"] == 1
    assert client.pop_events() == []


# -- liveness: keepalive, silence, failure ----------------------------------------------------


def test_keepalive_after_keepalive_after_of_not_sending_is_acked() -> None:
    pair = Pair()
    pair.connect()
    pair.advance(10.0)
    pair.say("at ten")  # sending resets the keepalive clock
    pair.advance(math.nextafter(25.0, 0.0))
    assert pair.frames(from_client=True, since=10.5) == []
    pair.advance(25.0)
    session = pair_session(pair)
    # pn: the join 0, the ack of the server's Named 1, "at ten" 2; seq: the join 0, "at ten" 1.
    assert pair.frames(from_client=True, since=25.0) == [Data(session, 3, 2, FLAG_KEEPALIVE, b"")]
    assert pair.frames(from_client=False, since=25.0) == [Ack(session, 3, 3, 0)]
    assert pair.client.get_timer() == 40.0
    pair.advance(200.0)  # keepalives every 15 s keep the session from expiring
    keepalive_times = [h.time for h in pair.hops if h.from_client and h.time > 25.0]
    assert keepalive_times == [25.0 + 15.0 * i for i in range(1, 12)]
    assert pair.server.session_count == 1
    assert pair.server.pop_events() == [PeerJoined(CLIENT), MessageReceived(CLIENT, "at ten")]
    assert pair.client.pop_events() == [SessionStarted(SERVER), MessageDelivered("at ten")]


def pair_session(pair: Pair) -> int:
    [welcome] = [f for f in pair.frames(from_client=False) if isinstance(f, Welcome)]
    return welcome.session


#: The in-memory link is instant, so the join's round trip measures 0 s and would pull
#: the RTO down to its 200 ms floor; a 1 s floor keeps the schedule of a real network.
SLOW_FLOOR = Config(rto_min=1.0)


def test_server_silent_reported_once_then_answered() -> None:
    pair = Pair(SLOW_FLOOR)
    pair.connect()
    pair.advance(5.0)
    pair.to_server = False
    pair.say("hello?")
    pair.advance(math.nextafter(8.0, 0.0))
    assert of(pair.client.pop_events(), ServerSilent) == []
    pair.advance(8.0)
    assert pair.client.pop_events() == [ServerSilent(SERVER, 3.0)]
    pair.advance(19.0)
    assert pair.client.pop_events() == []
    retransmits = [h.time for h in pair.hops if h.from_client and not h.delivered]
    assert retransmits == [5.0, 6.0, 8.0, 12.0]
    pair.to_server = True
    pair.advance(20.0)
    assert pair.client.pop_events() == [ServerAnswered(SERVER), MessageDelivered("hello?")]


def test_an_instant_round_trip_brings_the_rto_to_its_floor() -> None:
    pair = Pair()
    pair.connect()  # the join and the server's Named, acknowledged at once
    pair.advance(5.0)
    pair.to_server = False
    pair.say("hello?")
    pair.advance(12.0)
    retransmits = [h.time for h in pair.hops if h.from_client and not h.delivered]
    assert retransmits == pytest.approx([5.0, 5.2, 5.6, 6.4, 8.0, 11.2])  # 200 ms, doubling


def test_session_failure_reports_unacked_and_reconnects() -> None:
    pair = Pair(dataclasses.replace(SLOW_FLOOR, max_transmissions=3))
    pair.connect()
    pair.advance(5.0)
    pair.to_server = False
    pair.say("a")
    pair.say("b")
    pair.advance(math.nextafter(12.0, 0.0))  # sends at 5, 6, 8; the budget ends at 12
    before = pair.client.state
    pair.advance(12.0)
    assert (before, pair.client.state) == ("connected", "connecting")
    assert pair.client.pop_events() == [
        SessionStarted(SERVER),
        ServerSilent(SERVER, 3.0),
        NotDelivered("a", "the server did not acknowledge it"),
        NotDelivered("b", "the server did not acknowledge it"),
    ]
    assert not pair.client.has_pending()
    assert isinstance(pair.frames(from_client=True, since=12.0)[-1], Hello)
    pair.to_server = True
    pair.advance(14.0)  # the next hello, at 13, gets through
    assert pair.client.state == "connected"
    assert pair.client.pop_events() == [SessionStarted(SERVER, reconnect=True)]
    assert pair.server.pop_events() == [
        PeerJoined(CLIENT),
        PeerLeft(CLIENT, "reconnected"),
        PeerJoined(CLIENT),
    ]


def test_timer_not_in_the_past_after_a_quick_session_failure() -> None:
    client = connected(Config(max_transmissions=1))
    client.send_text("x", now=10.0)
    drain(client, 10.0)
    run_timers(client, until=11.0)  # the budget ends at 11: back to connecting
    assert client.state == "connecting"


def test_client_gives_up_at_give_up_after_with_default_config() -> None:
    client = connected()
    client.send_text("x", now=2.3)
    drain(client, 2.3)
    run_timers(client, until=40.0)
    assert client.state == "connecting"


# -- closing -------------------------------------------------------------------------------


def test_close_when_connected_sends_bye_and_reports_unacked() -> None:
    client = connected()
    client.send_text("unacked", now=0.5)
    drain(client, 0.5)
    client.close(now=1.0)
    assert sent(client, 1.0) == [Bye(SESSION, 2, 0)]  # after the join (pn 0) and "unacked"
    assert client.state == "closed"
    assert client.get_timer() is None
    assert client.pop_events() == [NotDelivered("unacked", "not acknowledged before exit")]
    assert not client.has_pending()
    with pytest.raises(LocalProtocolError):
        client.send_text("too late", now=2.0)


def test_close_while_connecting_reports_queued_texts() -> None:
    client = make_client()
    start(client)
    client.send_text("first", now=0.1)
    client.send_text("second", now=0.2)
    client.close(now=0.3)
    assert drain(client, 0.3) == []
    assert client.pop_events() == [
        NotDelivered("first", "the server never answered"),
        NotDelivered("second", "the server never answered"),
    ]
    assert not client.has_pending()
    assert client.get_timer() is None
    with pytest.raises(LocalProtocolError):
        client.send_text("too late", now=0.4)


# -- sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["x", "é", "€", "🎉"])
def test_framed_text_is_fragmented_up_to_max_message(char: str) -> None:
    client = connected(Config(max_message=200, max_datagram=64))
    check_fragmented_limit(client.send_text, client, char, 200, say_payload)


def test_64_kib_message_goes_through_and_one_more_byte_does_not() -> None:
    pair = Pair()
    pair.connect()
    text = text_of_size("€", 65536)  # fragments end inside euro signs
    pair.say(text)
    pair.say(text + "x")
    assert pair.client.pop_events() == [
        SessionStarted(SERVER),
        MessageDelivered(text),
        MessageTooLong(text + "x", 65537, 65536),
    ]
    assert pair.server.pop_events() == [PeerJoined(CLIENT), MessageReceived(CLIENT, text)]
    seqs = {f.seq for f in pair.frames(from_client=True) if isinstance(f, Data)}
    assert len(seqs) == 1 + math.ceil(len(say_payload(text)) / 1180)  # the join, the fragments


def test_too_long_text_is_not_queued() -> None:
    client = make_client(Config(max_message=10))
    nonce = start(client)
    check_too_long(client.send_text, client, "x" * 11, 10, 0.0)
    assert not client.has_pending()
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 0.1)
    assert sent(client, 0.1) == [joins()]  # and nothing else


@pytest.mark.parametrize("max_datagram", [64, 1200])
@pytest.mark.parametrize("char", ["x", "é", "€", "🎉"])
def test_plain_text_size_limit(max_datagram: int, char: str) -> None:
    client = make_client(Config(max_datagram=max_datagram), plain=True)
    client.start(0.0)
    client.receive_datagram(b"style\n", SERVER, 0.0)
    client.pop_events()
    check_plain_limit(client.send_text, client, char, max_datagram - 1, SERVER)


def test_lone_surrogate_is_a_local_error() -> None:
    client = connected()
    with pytest.raises(LocalProtocolError):
        client.send_text("a\ud800b", now=1.0)
    assert (drain(client, 1.0), client.pending()) == ([], [])


# -- plain mode -------------------------------------------------------------------------------


def test_plain_mode_sends_bare_utf8_and_mirrors_newlines() -> None:
    client = make_client(plain=True)
    client.start(0.0)
    assert drain(client, 0.0) == []
    assert client.get_timer() is None
    client.send_text("héllo", now=1.0)
    client.receive_datagram(b"got it\n", SERVER, 2.0)
    client.send_text("and now?", now=3.0)
    client.receive_datagram(b"crlf\r\n", SERVER, 4.0)
    client.send_text("ok", now=5.0)
    client.receive_datagram(b"bare", SERVER, 6.0)
    client.send_text("bye", now=7.0)
    assert drain(client, 7.0) == [
        ("héllo".encode(), SERVER),
        (b"and now?\n", SERVER),
        (b"ok\r\n", SERVER),
        (b"bye", SERVER),
    ]
    assert client.pop_events() == [
        MessageReceived(SERVER, "got it", plain=True),
        MessageReceived(SERVER, "crlf", plain=True),
        MessageReceived(SERVER, "bare", plain=True),
    ]
    assert not client.has_pending()
    client.close(now=8.0)
    assert drain(client, 8.0) == []  # no bye without a session


def test_plain_mode_refused_then_answered() -> None:
    client = make_client(plain=True)
    client.start(0.0)
    client.note_unreachable(1.0)
    client.note_unreachable(1.5)
    client.receive_datagram(b"back", SERVER, 2.0)
    assert client.pop_events() == [
        ServerRefused(SERVER),
        ServerAnswered(SERVER),
        MessageReceived(SERVER, "back", plain=True),
    ]
    assert client.state == "connected"


# -- stats --------------------------------------------------------------------------------------


def test_stats_count_bytes_and_datagrams() -> None:
    # Sizes with the 4-byte CRC trailer each frame ends in; a Data frame is 24 bytes
    # and its chat payload: Join("") 21, Say("abc") 8, the reply Said("server", "de") 27.
    client = connected()  # hello 31 out, welcome 27 in, join 45 out, its ack 35 in
    client.send_text("abc", now=1.0)
    drain(client, 1.0)  # data 32 out
    feed(client, data(1, 0, "de"), SERVER, 1.5)  # 51 in
    drain(client, 1.5)  # ack 35 out
    client.close(now=1.8)
    drain(client, 1.8)  # bye 23 out
    stats = client.stats
    assert (stats["datagrams_out"], stats["bytes_out"]) == (5, 31 + 45 + 32 + 35 + 23)
    assert (stats["datagrams_in"], stats["bytes_in"]) == (3, 27 + 35 + 51)


# -- the timer is never in the past --------------------------------------------------------------


def test_timer_never_in_the_past_through_a_scenario() -> None:
    # Pair checks the timer after every drain and that every firing moves it forward.
    pair = Pair()
    pair.client.start(0.0)
    pair.to_server = False
    pair.exchange()
    script: list[tuple[float, str]] = [
        (0.5, "say early"),
        (4.0, "refused"),
        (9.0, "link up"),  # the hello at 15 gets through
        (16.0, "say hi"),
        (17.0, "server reply"),
        (20.0, "link down"),
        (20.5, "say lost"),
        (30.0, "link up"),  # the retransmission at 33.1 gets through
        (40.0, "restart"),
        (41.0, "say again"),  # meets the new server: Reset, hello, welcome, resend
        (70.0, "close"),
    ]
    states = []
    for now, step in script:
        pair.advance(now)
        match step.split(" ", 1):
            case ["say", text]:
                pair.say(text)
            case ["refused"]:
                pair.client.note_unreachable(now)
            case ["link", how]:
                pair.to_server = pair.to_client = how == "up"
            case ["server", _]:
                pair.reply("pong")
            case ["restart"]:
                pair.server = make_server(seed=7)
            case _:
                pair.client.close(now)
                pair.exchange()
        states.append(pair.client.state)
    assert states == [*["connecting"] * 3, *["connected"] * 7, "closed"]
    events = pair.client.pop_events()
    assert of(events, SessionStarted) == [
        SessionStarted(SERVER),
        SessionStarted(SERVER, reconnect=True),
    ]
    assert of(events, SessionLost) == [SessionLost(SERVER)]
    assert of(events, MessageDelivered) == [
        MessageDelivered(text) for text in ["early", "hi", "lost", "again"]
    ]
    assert of(events, NotDelivered) == []
    assert pair.server.pop_events() == [
        PeerJoined(CLIENT),
        MessageReceived(CLIENT, "again"),
        PeerLeft(CLIENT, "quit"),
    ]


# -- hypothesis: anything from anyone ------------------------------------------------------------

ids = st.integers(1, 2)
u32s = st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1))
server_frames = st.one_of(
    st.builds(Welcome, ids, ids, st.integers(0, 2**32 - 1)),
    st.builds(Data, ids, u32s, u32s, st.integers(0, 3), st.binary(max_size=8)),
    st.builds(Data, ids, u32s, st.integers(0, 6), st.sampled_from([0, FLAG_MORE]), st.just(b"ab")),
    # Chat messages (and damaged ones) in frames the session takes: small seqs, session 1.
    st.builds(Data, st.just(1), u32s, st.integers(0, 6), st.just(0), chat_payloads),
    st.builds(Data, ids, u32s, st.integers(0, 6), st.sampled_from([0, FLAG_MORE]), chat_payloads),
    st.builds(Ack, ids, u32s, st.integers(0, 8), st.integers(0, 2**64 - 1)),
    st.builds(Reset, ids),
    st.builds(Hello, ids),
).map(encode_frame)
flips = st.tuples(st.integers(0, 255), st.integers(0, 7))


def _flip(datagram: bytes, where: tuple[int, int]) -> bytes:
    flipped = bytearray(datagram)
    flipped[where[0] % len(datagram)] ^= 1 << where[1]
    return bytes(flipped)


inputs: st.SearchStrategy[tuple[Address, bytes] | InOrder | str] = mixed(
    (1, st.tuples(st.sampled_from([SERVER, OTHER]), server_frames)),
    (2, st.tuples(st.just(SERVER), server_frames)),
    (1, st.tuples(st.just(SERVER), st.builds(_flip, server_frames, flips))),
    (1, st.tuples(st.just(SERVER), st.binary(max_size=16))),
    (2, in_order_chat),
    (2, st.sampled_from(["send", "send long", "unreachable", "nick", "who", "whisper", "quit"])),
)
#: What the user's commands send (framed modes only; ``send`` is the plain line).
COMMANDS: dict[str, tuple[ClientMessage, str]] = {
    "nick": (Rename("bob"), "/nick bob"),
    "who": (AskWho(), "/who"),
    "whisper": (Whisper("alice", "psst"), "/msg alice psst"),
    "quit": (Quit("bye"), "/quit bye"),
}
#: Arbitrary time steps: sums that are not exact in binary must not trip a deadline.
delays = st.floats(0, 3, allow_nan=False)


@settings(max_examples=MORE_EXAMPLES, deadline=None)
@given(
    st.lists(st.tuples(delays, inputs), max_size=50),
    st.sampled_from(["plain", "framed", "welcomed"]),
)
def test_arbitrary_traffic_never_raises(
    script: list[tuple[float, tuple[Address, bytes] | InOrder | str]], mode: str
) -> None:
    counter = itertools.cycle((1, 2))  # nonces 1, 2, 1, ...: the fuzzed welcomes can match
    config = Config(
        max_queued_messages=3,
        max_datagram=64,
        max_message=200,
        window=4,
        reorder_window=8,
        send_queue=8,
        keepalive_after=4.0,
    )
    client = ClientCore(SERVER, config, plain=mode == "plain", randbits=lambda b: next(counter))
    client.start(0.0)
    if mode == "welcomed":
        feed(client, Welcome(1, 1, 60_000), SERVER, 0.0)
        assert client.state == "connected"
    drain(client, 0.0)
    now = 0.0
    for delay, what in script:
        now += delay
        run_timers(client, until=now)
        if isinstance(what, tuple):
            client.receive_datagram(what[1], what[0], now)
        elif isinstance(what, InOrder):
            if client._session is not None:
                feed(client, what.frame(client._session), SERVER, now)
        elif what.startswith("send"):
            client.send_text("message" * (20 if what == "send long" else 1), now)
        elif what in COMMANDS:
            if mode != "plain":  # a plain-text client has no commands
                client.send(*COMMANDS[what], now)
        else:
            client.note_unreachable(now)
        assert all(len(out) <= config.max_datagram for out, _ in drain(client, now))
        assert len(client.pending()) <= config.max_queued_messages + config.send_queue
        client.pop_events()
    client.close(now)
    drain(client, now)
    assert client.get_timer() is None


# -- what the server tells us ---------------------------------------------------------------


@pytest.mark.parametrize(("expiry_ms", "keepalive"), [(60_000, 15.0), (10_000, 2.5), (1, 0.5)])
def test_keepalive_stays_within_the_servers_expiry(expiry_ms: int, keepalive: float) -> None:
    client = make_client()
    nonce = start(client, 0.0)
    feed(client, Welcome(nonce, SESSION, expiry_ms), SERVER, 0.0)
    assert sent(client, 0.0) == [joins()]
    feed(client, Ack(SESSION, 0, 1, 0), SERVER, 0.1)  # nothing in flight: only the keepalive
    assert client.get_timer() == keepalive


def test_a_reset_that_knows_what_arrived_resends_only_the_rest() -> None:
    client = connected()
    for text in ("a", "b", "c"):
        client.send_text(text, 1.0)
    assert len(sent(client, 1.0)) == 3
    client.pop_events()
    feed(client, Reset(SESSION, 3, known=True), SERVER, 2.0)  # the join, a and b had arrived
    events = client.pop_events()
    assert events[:3] == [MessageDelivered("a"), MessageDelivered("b"), SessionLost(SERVER)]
    assert client.pending() == ["c"]


def test_a_reset_after_a_restart_resends_everything_unacknowledged() -> None:
    client = connected()
    for text in ("a", "b"):
        client.send_text(text, 1.0)
    sent(client, 1.0)
    feed(client, Reset(SESSION), SERVER, 2.0)
    assert client.pending() == ["a", "b"]


# -- the room: the join, names, and what the server says ------------------------------------


def test_join_goes_first_after_every_welcome_including_reconnects() -> None:
    client = make_client(Config(max_transmissions=2), name="alice")
    first, second, third = seeded_values(3, SEED)
    assert start(client) == first
    client.send_text("typed early", now=0.1)
    feed(client, Welcome(first, 1, 60_000), SERVER, 0.2)
    assert sent(client, 0.2) == [joins("alice", session=1), says(1, 1, "typed early", session=1)]
    # The server restarts: an unknown Reset, a new hello, a new join before the resend.
    feed(client, Reset(1), SERVER, 0.5)
    assert sent(client, 0.5) == [Hello(second)]
    feed(client, Welcome(second, 2, 60_000), SERVER, 0.6)
    assert sent(client, 0.6) == [joins("alice", session=2), says(1, 1, "typed early", session=2)]
    feed(client, Ack(2, 0, 2, 0), SERVER, 0.7)
    # The server stops answering: the client gives up on the session and says hello again.
    client.send_text("unanswered", now=1.0)
    assert sent(client, 1.0) == [says(2, 2, "unanswered", session=2)]
    run_timers(client, until=10.0)
    assert client.state == "connecting"
    feed(client, Welcome(third, 3, 60_000), SERVER, 10.0)
    assert sent(client, 10.0) == [joins("alice", session=3)]
    assert client.pop_events() == [
        SessionStarted(SERVER),
        SessionLost(SERVER),
        SessionStarted(SERVER, reconnect=True),
        MessageDelivered("typed early"),
        NotDelivered("unanswered", "the server did not acknowledge it"),
        ServerSilent(SERVER, 3.0),  # while saying hello again
        SessionStarted(SERVER, reconnect=True),
    ]


def test_a_known_reset_before_the_join_arrived_still_sends_a_new_join() -> None:
    client = connected()
    client.send_text("a", now=1.0)
    sent(client, 1.0)
    feed(client, Reset(SESSION, 0, known=True), SERVER, 2.0)  # not even the join arrived
    [hello] = sent(client, 2.0)
    assert isinstance(hello, Hello)
    feed(client, Welcome(hello.nonce, 2, 60_000), SERVER, 2.5)
    assert sent(client, 2.5) == [joins(session=2), says(1, 1, "a", session=2)]  # one join


def test_the_join_is_not_pending_but_what_follows_it_is() -> None:
    client = make_client(Config(window=1))
    nonce = start(client)
    client.send_text("queued", now=0.1)
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 0.2)
    assert sent(client, 0.2) == [joins()]  # "queued" waits behind it in the window
    assert client.pending() == ["queued"]
    assert not client.has_room()
    client.close(now=0.3)
    assert client.pop_events() == [
        SessionStarted(SERVER),
        NotDelivered("queued", "not acknowledged before exit"),  # the join is not reported
    ]


def test_has_pending_agrees_with_pending_while_the_join_is_unacknowledged() -> None:
    # Regression: has_pending() counted the unacknowledged join, which pending() (and
    # has_pending's "anything typed") leave out, so a client with nothing typed lingered.
    client = connected()  # acknowledged: nothing pending either way
    assert (client.pending(), client.has_pending()) == ([], False)
    other = make_client()
    connect(other, SESSION, acked=False)  # the server has not acknowledged the join yet
    assert other.pending() == []
    assert other.has_pending() is False


def test_the_operators_reply_is_a_message_received_whoever_sends_it() -> None:
    client = connected()
    reply = Said("op", "pong", 1_700_000_000.0, SaidKind.REPLY)
    feed(client, chat(1, 0, reply), SERVER, 1.0)
    assert client.pop_events() == [MessageReceived(SERVER, "pong")]  # plain=False: framed


@pytest.mark.parametrize(
    ("said", "event"),
    [
        (
            Said("bob", "hi all", 1.5, SaidKind.SAY),
            RoomMessage("bob", "hi all", 1.5, "say"),
        ),
        (
            Said("bob", "waves", 2.5, SaidKind.ACT),
            RoomMessage("bob", "waves", 2.5, "act"),
        ),
        (
            Said("bob", "psst", 3.5, SaidKind.PRIVATE),
            RoomMessage("bob", "psst", 3.5, "private"),
        ),
        (
            Said(OPERATOR, "to everyone", 4.5, SaidKind.SAY),  # the operator's /all
            RoomMessage(OPERATOR, "to everyone", 4.5, "say"),
        ),
        (
            Said("bob", "earlier", 0.5, SaidKind.SAY, history=True),
            RoomMessage("bob", "earlier", 0.5, "say", None, history=True),
        ),
    ],
)
def test_said_in_the_room_is_a_room_message(said: Said, event: RoomMessage) -> None:
    client = connected()
    feed(client, chat(1, 0, said), SERVER, 1.0)
    assert client.pop_events() == [event]
    assert sent(client, 1.0) == [Ack(SESSION, 1, 1, 0)]


def test_a_message_handed_over_twice_is_shown_once() -> None:
    # Across servers, one message can come from two of them (a split healing while
    # we move); the server's time tells it apart from the same words said again.
    client = connected()
    for seq, said in enumerate(
        [Said("bob", "hi", 5.0), Said("bob", "hi", 5.0), Said("bob", "hi", 6.0)]
    ):
        feed(client, chat(1 + seq, seq, said), SERVER, 1.0)
    shown = [(e.text, e.time) for e in client.pop_events() if isinstance(e, RoomMessage)]
    assert shown == [("hi", 5.0), ("hi", 6.0)]
    assert client.stats["dropped:duplicate-message"] == 1


def test_presence_roster_and_refusals_become_events() -> None:
    client = connected()
    messages: list[ChatMessage] = [
        Presence(PresenceKind.JOINED, "bob", "", 1.0),
        Presence(PresenceKind.LEFT, "bob", "quit", 2.0),
        Presence(PresenceKind.RENAMED, "carol", "caz", 3.0),
        Roster((RosterEntry(OPERATOR, 5, operator=True), RosterEntry("caz", 0))),
        Refused(RefusedWhy.NO_SUCH_MEMBER, "no one here is called 'dave'"),
        Refused(RefusedWhy.SLOW_DOWN, "slow down"),
    ]
    for seq, message in enumerate(messages):
        feed(client, chat(1 + seq, seq, message), SERVER, 1.0)
    assert client.pop_events() == [
        PresenceNoticed("joined", "bob", "", 1.0),
        PresenceNoticed("left", "bob", "quit", 2.0),
        PresenceNoticed("renamed", "carol", "caz", 3.0),
        WhoListed(((OPERATOR, 5, True, ""), ("caz", 0, False, ""))),
        RequestRefused("no one here is called 'dave'"),
        RequestRefused("slow down"),
    ]
    assert client.refusal is None
    assert sent(client, 1.0) == [Ack(SESSION, 1, len(messages), 0)]


def test_a_full_room_sets_the_refusal_without_an_event() -> None:
    client = connected()
    feed(client, chat(1, 0, Refused(RefusedWhy.ROOM_FULL, "the room is full")), SERVER, 1.0)
    assert client.pop_events() == []
    assert client.refusal == "the room is full"
    assert sent(client, 1.0) == [Ack(SESSION, 1, 1, 0)]


def test_named_sets_the_current_name_and_only_a_rename_assigns_it() -> None:
    client = connected(name="alice")
    feed(client, chat(1, 0, Named("alice")), SERVER, 1.0)  # the answer to the join
    assert (client.current_name, client.pop_events()) == ("alice", [])
    client.send(Rename("bob"), "/nick bob", 2.0)
    # The ack goes with the next drain, a second after the Named: its delay says so.
    assert sent(client, 2.0) == [chat(1, 1, Rename("bob")), Ack(SESSION, 2, 1, 0, 1_000_000)]
    feed(client, chat(2, 1, Named("bob")), SERVER, 2.5)
    assert client.pop_events() == [NameAssigned("bob")]
    assert (client.name, client.current_name) == ("bob", "bob")  # a rejoin asks for "bob"
    client.send(Rename("taken"), "/nick taken", 3.0)
    feed(client, chat(3, 2, Refused(RefusedWhy.NAME, "the name 'taken' is taken")), SERVER, 3.5)
    feed(client, chat(4, 3, Named("bob")), SERVER, 3.6)  # e.g. a rejoin's answer: no rename
    assert client.pop_events() == [RequestRefused("the name 'taken' is taken")]
    assert (client.name, client.current_name) == ("bob", "bob")


def test_a_name_the_room_would_not_give_is_asked_for_again_on_the_next_join() -> None:
    pair = Pair(name=OPERATOR)  # the operator's name is taken
    pair.connect()
    assert pair.client.pop_events() == [
        SessionStarted(SERVER),
        RequestRefused(
            f"the name {OPERATOR!r} is taken; try /nick {OPERATOR}2; for now you are {CLIENT_NAME}"
        ),
    ]
    assert (pair.client.name, pair.client.current_name) == (OPERATOR, CLIENT_NAME)
    pair.say("hi")
    assert pair.server.pop_events() == [PeerJoined(CLIENT), MessageReceived(CLIENT, "hi")]
    pair.server = make_server(seed=5)  # restart: the next session asks for the name again
    pair.say("again")
    joined = [f for f in pair.frames(from_client=True) if isinstance(f, Data) and f.seq == 0]
    assert [chat_of(f) for f in joined] == [Join(OPERATOR), Join(OPERATOR)]


def test_a_rename_through_a_real_server() -> None:
    pair = Pair(name="alice")
    pair.connect()
    assert pair.client.current_name == "alice"
    pair.client.send(Rename("bob"), "/nick bob", pair.now)
    pair.exchange()
    assert pair.client.pop_events() == [
        SessionStarted(SERVER),
        NameAssigned("bob"),  # the server's Named comes before its ack
        MessageDelivered("/nick bob"),
    ]
    assert pair.server.pop_events() == [PeerJoined(CLIENT)]  # one member: no presence shown
    assert pair.server.room.name_of(pair_session(pair)) == "bob"


def test_commands_are_chat_messages_and_only_framed() -> None:
    client = connected()
    client.send(Whisper("bob", "psst"), "/msg bob psst", 1.0)
    client.send(AskWho(), "/who", 1.0)
    frames = sent(client, 1.0)
    assert [chat_of(frame) for frame in frames] == [Whisper("bob", "psst"), AskWho()]
    assert client.pending() == ["/msg bob psst", "/who"]
    plain = make_client(plain=True)
    plain.start(0.0)
    with pytest.raises(LocalProtocolError):
        plain.send(AskWho(), "/who", 1.0)
    client.close(2.0)
    with pytest.raises(LocalProtocolError):
        client.send(AskWho(), "/who", 2.0)


def test_a_rejoin_asks_only_for_history_newer_than_what_it_saw() -> None:
    pair = Pair(name="alice")
    pair.connect()
    pair.say("hi")
    pair.now = 7.0
    pair.server.reply("hello alice", pair.now)  # a Said at the server's time 7.0
    pair.exchange()
    pair.server = make_server(seed=5)  # restart: the next session joins again
    pair.say("again")
    joined = [f for f in pair.frames(from_client=True) if isinstance(f, Data) and f.seq == 0]
    assert [chat_of(f) for f in joined] == [Join("alice"), Join("alice", since=7.0)]
