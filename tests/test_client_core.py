"""Tier 1 and 2 tests of ``ClientCore``: explicit ``now``, seeded nonces.

Frame-level tests feed the client by hand; scenario tests run it against a
real ``ServerCore`` on an in-memory link (:class:`tests.core_helpers.Pair`),
whose every step checks that the timer is never in the past.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core_helpers import (
    CLIENT,
    SEED,
    SERVER,
    Pair,
    check_fragmented_limit,
    check_plain_limit,
    check_too_long,
    connect,
    drain,
    feed,
    fire_times,
    frames_out,
    make_client,
    make_server,
    run_timers,
    seeded_values,
    start,
    text_of_size,
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
    NotDelivered,
    PeerJoined,
    PeerLeft,
    ServerAnswered,
    ServerRefused,
    ServerSilent,
    SessionLost,
    SessionStarted,
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


def connected(config: Config | None = None, now: float = 0.0) -> ClientCore:
    client = make_client(config)
    connect(client, SESSION, now)
    assert client.pop_events() == [SessionStarted(SERVER)]
    return client


def data(pn: int, seq: int, text: str, flags: int = 0, session: int = SESSION) -> Data:
    return Data(session, pn, seq, flags, text.encode())


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
    assert client.get_timer() == 1.0 + Config().keepalive_after
    client.send_text("héllo 🎉", now=2.0)
    assert sent(client, 2.0) == [data(0, 0, "héllo 🎉")]
    assert client.get_timer() == 3.0  # the first retransmission, at rto_initial


def test_texts_before_welcome_are_queued_then_sent_in_order_and_delivered() -> None:
    client = make_client()
    nonce = start(client)
    for text in ["one", "two", ""]:
        client.send_text(text, now=0.1)
    assert client.has_pending()
    assert client.pending() == ["one", "two", ""]
    assert drain(client, 0.1) == []
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 0.2)
    assert sent(client, 0.2) == [data(0, 0, "one"), data(1, 1, "two"), data(2, 2, "")]
    assert client.pending() == ["one", "two", ""]  # sent, not yet acknowledged
    feed(client, Ack(SESSION, 0, 2, 0), SERVER, 0.3)
    assert client.pending() == [""]
    feed(client, Ack(SESSION, 1, 3, 0), SERVER, 0.4)
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
    assert sent(client, 0.5) == [data(0, 0, "a"), data(1, 1, "b")]


def test_full_send_queue_refuses_text_in_session() -> None:
    client = connected(Config(window=1, send_queue=1))
    client.send_text("a", now=1.0)
    assert sent(client, 1.0) == [data(0, 0, "a")]  # in flight: the queue is empty again
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
    drain(client, 0.2)
    assert client.has_room()  # in flight: the window took it
    client.send_text("b", now=0.3)
    drain(client, 0.3)
    assert not client.has_room()  # waits behind the window
    feed(client, Ack(SESSION, 0, 1, 0), SERVER, 0.4)
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
    assert drain(client, 8.5) == []


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
    assert sent(client, 0.3) == [data(0, 0, "x")]


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
    feed(client, Ack(SESSION, 0, 0, 0), SERVER, 7.0)
    assert client.pop_events() == [ServerAnswered(SERVER)]


def test_reset_requeues_unacked_messages_ahead_of_the_queue() -> None:
    client = connected()
    first, second = seeded_values(2, SEED)
    for text in ["a", "b", "c"]:
        client.send_text(text, now=1.0)
    drain(client, 1.0)
    feed(client, Ack(SESSION, 0, 1, 0), SERVER, 1.5)
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
    assert sent(client, 4.7) == [data(i, i, t, session=2) for i, t in enumerate("bcd")]


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
    feed(client, data(0, 0, "hi there"), SERVER, 1.0)
    feed(client, data(1, 1, "not ours", session=SESSION + 1), SERVER, 1.0)
    assert client.pop_events() == [MessageReceived(SERVER, "hi there")]
    assert client.stats["dropped:unknown-session"] == 1
    assert sent(client, 1.0) == [Ack(SESSION, 0, 1, 0)]


def test_fragments_from_server_are_reassembled() -> None:
    client = connected()
    text = "€" * 10  # 30 bytes, split inside the second and fourth euro sign
    payload = text.encode()
    for i, (lo, hi) in enumerate([(0, 4), (4, 11), (11, 30)]):
        flags = FLAG_MORE if hi < 30 else 0
        feed(client, Data(SESSION, i, i, flags, payload[lo:hi]), SERVER, 1.0)
    assert client.pop_events() == [MessageReceived(SERVER, text)]


def test_undecodable_message_is_counted_but_still_acked() -> None:
    client = connected()
    feed(client, Data(SESSION, 0, 0, 0, b"\xc3"), SERVER, 1.0)
    assert client.pop_events() == []
    assert client.stats["dropped:bad-utf8"] == 1
    assert sent(client, 1.0) == [Ack(SESSION, 0, 1, 0)]


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
    assert client.stats["datagrams_in"] == 2  # the welcome, then this


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
    assert pair.frames(from_client=True, since=25.0) == [Data(session, 1, 1, FLAG_KEEPALIVE, b"")]
    assert pair.frames(from_client=False, since=25.0) == [Ack(session, 1, 2, 0)]
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


def test_server_silent_reported_once_then_answered() -> None:
    pair = Pair()
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


def test_session_failure_reports_unacked_and_reconnects() -> None:
    pair = Pair(Config(max_transmissions=3))
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
    assert sent(client, 1.0) == [Bye(SESSION, 1, 0)]
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
    check_fragmented_limit(client.send_text, client, char, 200)


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
    first_sends = {f.seq for f in pair.frames(from_client=True) if isinstance(f, Data)}
    assert len(first_sends) == math.ceil(65536 / 1180)


def test_too_long_text_is_not_queued() -> None:
    client = make_client(Config(max_message=10))
    nonce = start(client)
    check_too_long(client.send_text, client, "x" * 11, 10, 0.0)
    assert not client.has_pending()
    feed(client, Welcome(nonce, SESSION, 60_000), SERVER, 0.1)
    assert drain(client, 0.1) == []


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
    # Sizes with the 4-byte CRC trailer each frame ends in.
    client = connected()  # hello 15 out, welcome 27 in
    client.send_text("abc", now=1.0)
    drain(client, 1.0)  # data 27 out
    feed(client, data(0, 0, "de"), SERVER, 1.5)  # 26 in
    drain(client, 1.5)  # ack 31 out
    client.close(now=1.8)
    drain(client, 1.8)  # bye 23 out
    stats = client.stats
    assert (stats["datagrams_out"], stats["bytes_out"]) == (4, 15 + 27 + 31 + 23)
    assert (stats["datagrams_in"], stats["bytes_in"]) == (2, 27 + 26)


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
    st.builds(Ack, ids, u32s, st.integers(0, 8), st.integers(0, 2**64 - 1)),
    st.builds(Reset, ids),
    st.builds(Hello, ids),
).map(encode_frame)
flips = st.tuples(st.integers(0, 255), st.integers(0, 7))


def _flip(datagram: bytes, where: tuple[int, int]) -> bytes:
    flipped = bytearray(datagram)
    flipped[where[0] % len(datagram)] ^= 1 << where[1]
    return bytes(flipped)


inputs = st.one_of(
    st.tuples(st.sampled_from([SERVER, OTHER]), server_frames),
    st.tuples(st.just(SERVER), server_frames),
    st.tuples(st.just(SERVER), server_frames),
    st.tuples(st.just(SERVER), st.builds(_flip, server_frames, flips)),
    st.tuples(st.just(SERVER), st.binary(max_size=16)),
    st.sampled_from(["send", "send long", "unreachable"]),
)
#: Arbitrary time steps: sums that are not exact in binary must not trip a deadline.
delays = st.floats(0, 3, allow_nan=False)


@settings(max_examples=MORE_EXAMPLES, deadline=None)
@given(
    st.lists(st.tuples(delays, inputs), max_size=50),
    st.sampled_from(["plain", "framed", "welcomed"]),
)
def test_arbitrary_traffic_never_raises(
    script: list[tuple[float, tuple[Address, bytes] | str]], mode: str
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
        elif what.startswith("send"):
            client.send_text("message" * (20 if what == "send long" else 1), now)
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
    drain(client, 0.0)
    assert client.get_timer() == keepalive


def test_a_reset_that_knows_what_arrived_resends_only_the_rest() -> None:
    client = connected()
    for text in ("a", "b", "c"):
        client.send_text(text, 1.0)
    assert len(sent(client, 1.0)) == 3
    client.pop_events()
    feed(client, Reset(SESSION, 2, known=True), SERVER, 2.0)  # a and b had arrived
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
