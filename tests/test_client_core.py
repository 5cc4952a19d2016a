"""Tier 1 and 2 tests of ``ClientCore``: explicit ``now``, seeded nonces."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_udpchat._client import ClientCore
from trio_udpchat._config import Config
from trio_udpchat._errors import LocalProtocolError
from trio_udpchat._events import (
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
from trio_udpchat._wire import (
    TEXT_OVERHEAD,
    Bye,
    Frame,
    Hello,
    Reset,
    Text,
    Welcome,
    decode_frame_untrusted,
    encode_frame,
)

SERVER: Address = ("198.51.100.7", 9999)
OTHER: Address = ("198.51.100.8", 9999)
SEED = 2024
SESSION = 0x5E5510

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(150, settings().max_examples)


def make_client(
    config: Config | None = None, *, plain: bool = False, seed: int = SEED
) -> ClientCore:
    return ClientCore(SERVER, config, plain=plain, randbits=random.Random(seed).getrandbits)


def seeded_nonces(count: int, seed: int = SEED) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(64) for _ in range(count)]


def frames_out(client: ClientCore) -> list[Frame]:
    """The frames the client wants to send; all must go to the server."""
    out = client.datagrams_to_send()
    assert all(addr == SERVER for _, addr in out)
    return [decode_frame_untrusted(data) for data, _ in out]


def feed(client: ClientCore, frame: Frame, now: float, addr: Address = SERVER) -> None:
    client.receive_datagram(encode_frame(frame), addr, now)


def start(client: ClientCore, now: float = 0.0) -> int:
    """Start the client; return the nonce of its hello."""
    client.start(now)
    [hello] = frames_out(client)
    assert isinstance(hello, Hello)
    return hello.nonce


def connect(client: ClientCore, now: float = 0.0, session: int = SESSION) -> None:
    """Start the client and welcome it into ``session``."""
    feed(client, Welcome(start(client, now), session), now)
    assert client.state == "connected"
    assert client.pop_events() == [SessionStarted(SERVER)]


def run_timers(client: ClientCore, until: float) -> list[float]:
    """Fire every timer due up to ``until``, at its time; return those times.

    Each ``handle_timer`` must move the timer strictly forward, or the I/O
    layer would spin.
    """
    fired: list[float] = []
    while (due := client.get_timer()) is not None and due <= until:
        assert len(fired) < 100, "the timer does not advance"
        client.handle_timer(due)
        fired.append(due)
        after = client.get_timer()
        assert after is None or after > due, (due, after)
    return fired


def text_of_size(char: str, size: int) -> str:
    width = len(char.encode("utf-8"))
    return char * (size // width) + "x" * (size % width)


# -- connecting -----------------------------------------------------------------------


def test_start_sends_hello() -> None:
    client = make_client()
    assert client.state == "idle"
    assert start(client, now=5.0) == seeded_nonces(1)[0]
    assert client.get_timer() == 6.0
    assert client.pop_events() == []


def test_welcome_starts_session() -> None:
    client = make_client()
    connect(client, now=1.0)
    assert client.get_timer() is None
    client.send_text("héllo 🎉", now=2.0)
    assert frames_out(client) == [Text(SESSION, "héllo 🎉")]


def test_texts_before_welcome_are_queued_then_flushed_in_order() -> None:
    client = make_client()
    nonce = start(client)
    for text in ["one", "two", ""]:
        client.send_text(text, now=0.1)
    assert client.has_queued()
    assert client.datagrams_to_send() == []
    feed(client, Welcome(nonce, SESSION), now=0.2)
    assert frames_out(client) == [Text(SESSION, "one"), Text(SESSION, "two"), Text(SESSION, "")]
    assert not client.has_queued()
    assert client.pop_events() == [SessionStarted(SERVER)]


def test_full_queue_refuses_text() -> None:
    client = make_client(Config(max_queued_messages=2))
    nonce = start(client)
    for text in ["a", "b", "c", "d"]:
        client.send_text(text, now=0.0)
    assert client.pop_events() == [
        NotDelivered("c", "the send queue is full"),
        NotDelivered("d", "the send queue is full"),
    ]
    feed(client, Welcome(nonce, SESSION), now=0.5)
    assert frames_out(client) == [Text(SESSION, "a"), Text(SESSION, "b")]


@pytest.mark.parametrize(
    ("config", "fire_times"),
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
def test_hello_retransmit_schedule(config: Config, fire_times: list[float]) -> None:
    client = make_client(config)
    nonce = start(client)
    assert run_timers(client, until=fire_times[-1]) == fire_times
    assert frames_out(client) == [Hello(nonce)] * len(fire_times)


def test_silence_tick_between_hellos_sends_nothing() -> None:
    client = make_client(Config(hello_retry_initial=2.0, server_silent_after=3.0))
    start(client)
    assert run_timers(client, until=2.0) == [2.0]
    assert len(frames_out(client)) == 1
    assert client.get_timer() == 3.0
    client.handle_timer(3.0)
    assert frames_out(client) == []
    assert client.pop_events() == [ServerSilent(SERVER, 3.0)]
    assert client.get_timer() == 6.0


def test_no_timer_before_start() -> None:
    client = make_client()
    assert client.get_timer() is None
    client.handle_timer(5.0)
    assert client.datagrams_to_send() == []


def test_early_timer_call_does_nothing() -> None:
    client = make_client()
    start(client)
    client.handle_timer(0.5)
    assert client.datagrams_to_send() == []
    assert client.pop_events() == []
    assert client.get_timer() == 1.0


def test_server_silent_reported_once() -> None:
    config = Config()
    client = make_client(config)
    start(client)
    run_timers(client, until=config.server_silent_after - 0.001)
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
    feed(client, Welcome(nonce, SESSION), now=8.5)
    assert client.pop_events() == [SessionStarted(SERVER), ServerAnswered(SERVER)]
    assert client.get_timer() is None


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
    feed(client, Welcome(nonce ^ nonce_flip, SESSION), 0.5, addr)
    assert client.state == "connecting"
    assert client.stats["dropped:" + reason] == 1
    assert client.pop_events() == []
    assert client.get_timer() == 1.0


def test_duplicate_welcome_is_dropped() -> None:
    client = make_client()
    nonce = start(client)
    feed(client, Welcome(nonce, SESSION), now=0.1)
    feed(client, Welcome(nonce, SESSION + 1), now=0.2)
    assert client.pop_events() == [SessionStarted(SERVER)]
    assert client.stats["dropped:stale-welcome"] == 1
    client.send_text("x", now=0.3)
    assert frames_out(client) == [Text(SESSION, "x")]


# -- refused, reset ----------------------------------------------------------------------


def test_unreachable_reported_once_per_outage() -> None:
    client = make_client()
    first, second = seeded_nonces(2)
    assert start(client) == first
    client.note_unreachable(0.1)
    client.note_unreachable(0.2)
    run_timers(client, until=5.0)  # the silence is not reported on top
    assert client.pop_events() == [ServerRefused(SERVER)]
    assert frames_out(client) == [Hello(first)] * 2  # hellos keep going: at 1 s and 3 s
    feed(client, Welcome(first, SESSION), now=5.5)
    assert client.pop_events() == [SessionStarted(SERVER), ServerAnswered(SERVER)]
    client.note_unreachable(6.0)  # a new outage while connected
    assert client.state == "connecting"
    assert client.pop_events() == [ServerRefused(SERVER)]
    assert frames_out(client) == [Hello(second)]
    assert client.get_timer() == 7.0


def test_reset_for_our_session_reconnects_with_new_nonce() -> None:
    client = make_client()
    first, second = seeded_nonces(2)
    connect(client, now=0.0)
    feed(client, Reset(SESSION), now=4.0)
    assert client.pop_events() == [SessionLost(SERVER)]
    assert client.state == "connecting"
    assert frames_out(client) == [Hello(second)]
    assert second != first
    assert client.get_timer() == 5.0
    client.send_text("queued", now=4.5)
    feed(client, Welcome(first, 1), now=4.6)  # the old nonce no longer counts
    assert client.stats["dropped:stale-welcome"] == 1
    feed(client, Welcome(second, 2), now=4.7)
    assert frames_out(client) == [Text(2, "queued")]


@pytest.mark.parametrize("connected", [True, False])
def test_reset_for_another_session_is_dropped(connected: bool) -> None:
    client = make_client()
    if connected:
        connect(client)
    else:
        start(client)
    state = client.state
    feed(client, Reset(SESSION + 1), now=0.5)
    assert client.state == state
    assert client.pop_events() == []
    assert client.datagrams_to_send() == []
    assert client.stats["dropped:unknown-session"] == 1


# -- receiving ---------------------------------------------------------------------------


def test_text_from_server_in_session() -> None:
    client = make_client()
    connect(client)
    feed(client, Text(SESSION, "hi there"), now=1.0)
    feed(client, Text(SESSION + 1, "not ours"), now=1.0)
    assert client.pop_events() == [MessageReceived(SERVER, "hi there")]
    assert client.stats["dropped:unknown-session"] == 1


def test_framed_client_shows_plain_datagrams_from_server() -> None:
    client = make_client()
    connect(client)
    client.receive_datagram(b"classic\nserver\n", SERVER, now=1.0)
    assert client.pop_events() == [
        MessageReceived(SERVER, "classic", plain=True),
        MessageReceived(SERVER, "server", plain=True),
    ]


@pytest.mark.parametrize(
    "data", [b"plain", encode_frame(Text(SESSION, "x")), encode_frame(Reset(SESSION)), b"\xf9"]
)
def test_datagrams_from_other_addresses_are_dropped(data: bytes) -> None:
    client = make_client()
    connect(client)
    client.receive_datagram(data, OTHER, now=1.0)
    assert client.state == "connected"
    assert client.pop_events() == []
    assert client.datagrams_to_send() == []
    assert client.stats["dropped:not-from-server"] == 1
    assert client.stats["datagrams_in"] == 2  # the welcome, then this


@pytest.mark.parametrize("frame", [Hello(1), Bye(SESSION)])
def test_client_bound_frames_only(frame: Frame) -> None:
    client = make_client()
    connect(client)
    feed(client, frame, now=1.0)
    assert client.stats["dropped:unexpected"] == 1
    assert client.pop_events() == []


# -- closing -------------------------------------------------------------------------------


def test_close_when_connected_sends_bye() -> None:
    client = make_client()
    connect(client)
    client.close(now=1.0)
    assert frames_out(client) == [Bye(SESSION)]
    assert client.state == "closed"
    assert client.get_timer() is None
    assert client.pop_events() == []
    with pytest.raises(LocalProtocolError):
        client.send_text("too late", now=2.0)


def test_close_while_connecting_reports_queued_texts() -> None:
    client = make_client()
    start(client)
    client.send_text("first", now=0.1)
    client.send_text("second", now=0.2)
    client.close(now=0.3)
    assert client.datagrams_to_send() == []
    assert client.pop_events() == [
        NotDelivered("first", "the server never answered"),
        NotDelivered("second", "the server never answered"),
    ]
    assert not client.has_queued()
    assert client.get_timer() is None
    with pytest.raises(LocalProtocolError):
        client.send_text("too late", now=0.4)


# -- sizes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("max_datagram", [64, 1200])
@pytest.mark.parametrize("char", ["x", "é", "€", "🎉"])
@pytest.mark.parametrize("plain", [False, True])
def test_text_size_limit(max_datagram: int, char: str, plain: bool) -> None:
    client = make_client(Config(max_datagram=max_datagram), plain=plain)
    if plain:
        client.start(0.0)
        client.receive_datagram(b"style\n", SERVER, now=0.0)
        client.pop_events()
    else:
        connect(client)
    limit = max_datagram - (1 if plain else TEXT_OVERHEAD)
    fits = text_of_size(char, limit)
    client.send_text(fits, now=1.0)
    [(data, to)] = client.datagrams_to_send()
    assert (to, len(data)) == (SERVER, max_datagram)
    too_long = fits + char
    client.send_text(too_long, now=2.0)
    assert client.pop_events() == [MessageTooLong(too_long, len(too_long.encode("utf-8")), limit)]
    assert client.datagrams_to_send() == []


def test_too_long_text_is_not_queued() -> None:
    client = make_client(Config(max_datagram=20))
    nonce = start(client)
    client.send_text("x" * 10, now=0.0)
    assert client.pop_events() == [MessageTooLong("x" * 10, 10, 9)]
    assert not client.has_queued()
    feed(client, Welcome(nonce, SESSION), now=0.1)
    assert frames_out(client) == []


# -- plain mode -------------------------------------------------------------------------------


def test_plain_mode_sends_bare_utf8_and_mirrors_newlines() -> None:
    client = make_client(plain=True)
    client.start(0.0)
    assert client.datagrams_to_send() == []
    assert client.get_timer() is None
    client.send_text("héllo", now=1.0)
    client.receive_datagram(b"got it\n", SERVER, now=2.0)
    client.send_text("and now?", now=3.0)
    client.receive_datagram(b"bare", SERVER, now=4.0)
    client.send_text("ok", now=5.0)
    assert client.datagrams_to_send() == [
        ("héllo".encode(), SERVER),
        (b"and now?\n", SERVER),
        (b"ok", SERVER),
    ]
    assert client.pop_events() == [
        MessageReceived(SERVER, "got it", plain=True),
        MessageReceived(SERVER, "bare", plain=True),
    ]
    client.close(now=6.0)
    assert client.datagrams_to_send() == []  # no bye without a session


def test_plain_mode_refused_then_answered() -> None:
    client = make_client(plain=True)
    client.start(0.0)
    client.note_unreachable(1.0)
    client.note_unreachable(1.5)
    client.receive_datagram(b"back", SERVER, now=2.0)
    assert client.pop_events() == [
        ServerRefused(SERVER),
        ServerAnswered(SERVER),
        MessageReceived(SERVER, "back", plain=True),
    ]
    assert client.state == "connected"


# -- stats --------------------------------------------------------------------------------------


def test_stats_count_bytes_and_datagrams() -> None:
    client = make_client()
    connect(client)  # hello 11 out, welcome 19 in
    client.send_text("abc", now=1.0)  # 14 out
    feed(client, Text(SESSION, "de"), now=2.0)  # 13 in
    client.close(now=3.0)  # bye 11 out
    stats = client.stats
    assert (stats["datagrams_out"], stats["bytes_out"]) == (3, 11 + 14 + 11)
    assert (stats["datagrams_in"], stats["bytes_in"]) == (2, 19 + 13)


# -- the timer is never in the past --------------------------------------------------------------


def test_timer_never_in_the_past_through_a_scenario() -> None:
    client = make_client()
    nonce_box: list[int] = []

    def hello_nonce() -> int:
        hellos = [f for f in frames_out(client) if isinstance(f, Hello)]
        nonce_box.append(hellos[-1].nonce)
        return nonce_box[-1]

    client.start(0.0)
    steps: list[tuple[float, Callable[[float], None]]] = [
        (0.5, lambda now: client.send_text("early", now)),
        (4.0, lambda now: client.note_unreachable(now)),
        (9.0, lambda now: feed(client, Welcome(hello_nonce(), SESSION), now)),
        (10.0, lambda now: client.send_text("hi", now)),
        (12.0, lambda now: client.note_unreachable(now)),
        (12.25, lambda now: feed(client, Welcome(hello_nonce(), SESSION + 1), now)),
        (20.0, lambda now: feed(client, Reset(SESSION + 1), now)),
        (40.0, lambda now: client.receive_datagram(b"\xf9junk", SERVER, now)),
        (41.0, lambda now: feed(client, Welcome(hello_nonce(), SESSION + 2), now)),
        (50.0, lambda now: client.close(now)),
    ]
    states = []
    for now, step in steps:
        run_timers(client, until=now)
        step(now)
        timer = client.get_timer()
        assert timer is None or timer >= now, (now, timer)
        states.append(client.state)
    assert states == [
        *["connecting"] * 2,
        *["connected"] * 2,
        *["connecting", "connected"],
        *["connecting"] * 2,
        *["connected", "closed"],
    ]
    assert nonce_box[0] != nonce_box[1] != nonce_box[2]


# -- hypothesis: anything from anyone ------------------------------------------------------------

small = st.integers(1, 2)
server_frames = st.one_of(
    st.builds(Welcome, small, small),
    st.builds(Text, small, st.text(max_size=5)),
    st.builds(Reset, small),
    st.builds(Hello, small),
).map(encode_frame)
flips = st.tuples(st.integers(0, 255), st.integers(0, 7))


def _flip(data: bytes, where: tuple[int, int]) -> bytes:
    flipped = bytearray(data)
    flipped[where[0] % len(data)] ^= 1 << where[1]
    return bytes(flipped)


inputs = st.one_of(
    st.tuples(st.sampled_from([SERVER, OTHER]), server_frames),
    st.tuples(st.just(SERVER), server_frames),
    st.tuples(st.just(SERVER), server_frames),
    st.tuples(st.just(SERVER), st.builds(_flip, server_frames, flips)),
    st.tuples(st.just(SERVER), st.binary(max_size=16)),
    st.sampled_from(["send", "unreachable"]),
)
#: Arbitrary time steps, not round in binary
#: (see test_silence_reported_when_start_time_is_not_round).
steps = st.floats(0, 5, allow_nan=False)


@settings(max_examples=MORE_EXAMPLES, deadline=None)
@given(
    st.lists(st.tuples(steps, inputs), max_size=40),
    st.sampled_from(["plain", "framed", "welcomed"]),
)
def test_arbitrary_traffic_never_raises(
    script: list[tuple[float, tuple[Address, bytes] | str]], mode: str
) -> None:
    counter = itertools.cycle((1, 2))  # nonces 1, 2, 1, ...: the fuzzed welcomes can match
    config = Config(max_queued_messages=3, max_datagram=30)
    client = ClientCore(SERVER, config, plain=mode == "plain", randbits=lambda b: next(counter))
    client.start(0.0)
    if mode == "welcomed":
        feed(client, Welcome(1, 1), now=0.0)
        assert client.state == "connected"
    now = 0.0
    for delay, what in script:
        now += delay
        run_timers(client, until=now)
        if isinstance(what, tuple):
            client.receive_datagram(what[1], what[0], now)
        elif what == "send":
            client.send_text("message", now)
        else:
            client.note_unreachable(now)
        timer = client.get_timer()
        assert timer is None or timer >= now
        assert all(len(data) <= config.max_datagram for data, _ in client.datagrams_to_send())
        client.pop_events()
    client.close(now)
    assert client.get_timer() is None
