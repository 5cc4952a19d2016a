"""Tier 1 and 2 tests of ``ServerCore``: explicit ``now``, seeded session ids."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core_helpers import (
    CLIENT,
    SEED,
    Pair,
    check_fragmented_limit,
    check_plain_limit,
    check_too_long,
    drain,
    feed,
    fire_times,
    frames_out,
    join,
    make_server,
    run_timers,
    sealed,
    seeded_values,
)
from trio_udpchat._config import Config
from trio_udpchat._errors import LocalProtocolError
from trio_udpchat._events import (
    Address,
    MessageDelivered,
    MessageReceived,
    NoRecipient,
    NotDelivered,
    PeerJoined,
    PeerLeft,
    PeerMoved,
)
from trio_udpchat._server import ServerCore
from trio_udpchat._wire import (
    FLAG_MORE,
    MAGIC,
    VERSION,
    Ack,
    Bye,
    Data,
    Frame,
    Hello,
    Reset,
    Welcome,
    encode_frame,
)

A: Address = ("192.0.2.1", 40001)
B: Address = ("192.0.2.2", 40002)
C: Address = ("2001:db8::3", 40003, 0, 0)

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(150, settings().max_examples)


def say(
    server: ServerCore, session: int, pn: int, seq: int, text: str, addr: Address, now: float
) -> None:
    """A client's one-packet message arrives."""
    feed(server, Data(session, pn, seq, 0, text.encode()), addr, now)


def connected(config: Config | None = None, *, now: float = 0.0) -> tuple[ServerCore, int]:
    """A server with one session from ``A`` that has said "hi" (so replies go to it)."""
    server = make_server(config)
    session = join(server, A, now=now)
    say(server, session, 0, 0, "hi", A, now)
    assert frames_out(server, now) == [(Ack(session, 0, 1, 0), A)]
    assert server.pop_events() == [PeerJoined(A), MessageReceived(A, "hi")]
    return server, session


# -- sessions ------------------------------------------------------------------------


def test_hello_gets_welcome_echoing_nonce() -> None:
    server = make_server()
    feed(server, Hello(0xABCDEF), A, 10.0)
    assert frames_out(server, 10.0) == [(Welcome(0xABCDEF, seeded_values(1, SEED)[0], 60_000), A)]
    assert server.pop_events() == [PeerJoined(A)]
    assert (server.peer_count, server.session_count) == (1, 1)
    assert server.get_timer() == 10.0 + Config().session_expiry


def test_duplicate_hello_resends_same_welcome() -> None:
    server = make_server()
    feed(server, Hello(9), A, 0.0)
    first = drain(server, 0.0)
    feed(server, Hello(9), A, 1.0)
    feed(server, Hello(9), A, 3.0)
    assert drain(server, 3.0) == first * 2
    assert server.pop_events() == [PeerJoined(A)]
    assert server.session_count == 1


def test_new_nonce_from_same_address_replaces_the_session() -> None:
    server, old = connected()
    server.reply("unacked", 1.0)
    drain(server, 1.0)
    new = join(server, A, nonce=6, now=2.0)
    assert new != old
    assert server.pop_events() == [
        NotDelivered("unacked", "the client reconnected"),
        PeerLeft(A, "reconnected"),
        PeerJoined(A),
    ]
    assert server.session_count == 1
    say(server, old, 1, 1, "stale", A, 3.0)
    # The ended session is remembered: its receiver had got seq 0 ("hi").
    assert frames_out(server, 3.0) == [(Reset(old, 1, known=True), A)]
    say(server, new, 0, 0, "fresh", A, 3.0)
    assert server.pop_events() == [MessageReceived(A, "fresh")]


def test_sessions_differ_per_address() -> None:
    server = make_server()
    assert join(server, A, nonce=1) != join(server, B, nonce=1)
    assert server.session_count == 2


def test_data_is_received_acked_and_replied_to() -> None:
    server = make_server()
    session = join(server, A)
    server.pop_events()
    say(server, session, 0, 0, "héllo 🎉", A, 1.0)
    assert server.pop_events() == [MessageReceived(A, "héllo 🎉", plain=False)]
    assert frames_out(server, 1.0) == [(Ack(session, 0, 1, 0), A)]
    server.reply("hi back", 2.0)
    assert frames_out(server, 2.0) == [(Data(session, 1, 0, 0, b"hi back"), A)]
    assert server.pending() == ["hi back"]
    feed(server, Ack(session, 1, 1, 0), A, 2.5)
    assert server.pop_events() == [MessageDelivered("hi back")]
    assert server.pending() == []
    assert drain(server, 2.5) == []


def test_out_of_order_data_is_buffered_and_acked_with_bitmap() -> None:
    server, session = connected()
    say(server, session, 2, 2, "three", A, 1.0)
    assert server.pop_events() == []
    assert frames_out(server, 1.0) == [(Ack(session, 1, 1, 0b1), A)]
    say(server, session, 1, 1, "two", A, 1.5)
    assert server.pop_events() == [MessageReceived(A, "two"), MessageReceived(A, "three")]
    assert frames_out(server, 1.5) == [(Ack(session, 2, 3, 0), A)]


def test_undecodable_message_is_counted_but_still_acked() -> None:
    server, session = connected()
    feed(server, Data(session, 1, 1, 0, b"\xff"), A, 1.0)
    assert server.stats["dropped:bad-utf8"] == 1
    assert server.pop_events() == []
    assert frames_out(server, 1.0) == [(Ack(session, 1, 2, 0), A)]


@pytest.mark.parametrize(
    "trigger",
    [Data(77, 0, 0, 0, b""), Data(77, 9, 9, FLAG_MORE, b"x" * 100), Ack(77, 0, 0, 0)],
)
def test_session_frame_for_unknown_session_gets_a_small_reset(trigger: Frame) -> None:
    server = make_server()
    data = encode_frame(trigger)
    server.receive_datagram(data, A, 0.0)
    [(reset, to)] = drain(server, 0.0)
    assert (reset, to) == (encode_frame(Reset(77)), A)
    assert len(reset) <= len(data)
    assert server.stats["dropped:unknown-session"] == 1
    assert server.pop_events() == []
    assert server.peer_count == 0
    server.reply("anyone?", 1.0)
    assert server.pop_events() == [NoRecipient("anyone?")]


def test_bye_for_unknown_session_is_dropped_without_reset() -> None:
    server = make_server()
    session = join(server, A)
    feed(server, Bye(session ^ 1, 0, 0), A, 0.0)
    assert drain(server, 0.0) == []
    assert server.pop_events() == [PeerJoined(A)]
    assert server.session_count == 1
    assert server.stats["dropped:unknown-session"] == 1


def test_bye_ends_the_session_and_a_later_reply_has_no_recipient() -> None:
    server, session = connected()
    server.reply("unacked", 1.0)
    drain(server, 1.0)
    feed(server, Bye(session, 1, 0), A, 2.0)
    assert server.pop_events() == [
        NotDelivered("unacked", "the client left before it was acknowledged"),
        PeerLeft(A, "quit"),
    ]
    assert (server.peer_count, server.get_timer()) == (0, None)
    assert drain(server, 2.0) == []
    server.reply("wait", 3.0)
    assert server.pop_events() == [NoRecipient("wait", left=A)]
    assert drain(server, 3.0) == []


def test_bye_acknowledges_what_the_client_received() -> None:
    server, session = connected()
    server.reply("got it", 1.0)
    server.reply("lost", 1.0)
    drain(server, 1.0)
    feed(server, Bye(session, 1, 1), A, 2.0)  # its ack of "got it" was lost; the bye says so
    assert server.pop_events() == [
        MessageDelivered("got it"),
        NotDelivered("lost", "the client left before it was acknowledged"),
        PeerLeft(A, "quit"),
    ]


def test_reply_before_anyone_spoke() -> None:
    server = make_server()
    server.reply("hello?", 0.0)
    assert server.pop_events() == [NoRecipient("hello?", left=None)]
    join(server, A)  # a hello alone does not make a speaker
    server.reply("hello?", 1.0)
    assert server.pop_events() == [PeerJoined(A), NoRecipient("hello?", left=None)]
    assert drain(server, 1.0) == []


def test_has_room_follows_the_reply_targets_send_queue() -> None:
    server = make_server(Config(window=1))
    assert server.has_room()  # nobody to reply to: nothing would wait
    session = join(server, A)
    say(server, session, 0, 0, "hi", A, 0.0)
    drain(server, 0.0)
    server.reply("one", 1.0)
    server.reply("two", 1.0)
    drain(server, 1.0)
    assert not server.has_room()  # "two" waits behind the window
    feed(server, Ack(session, 1, 1, 0), A, 1.5)
    drain(server, 1.5)
    assert server.has_room()
    server.receive_datagram(b"plain", B, 2.0)
    assert server.has_room()  # plain peers never queue


# -- expiry and giving up -----------------------------------------------------------------


@pytest.mark.parametrize("refresh", [Data(0, 1, 1, 0, b"x"), Ack(0, 1, 0, 0)])
def test_session_expires_exactly_session_expiry_after_the_last_valid_datagram(
    refresh: Data | Ack,
) -> None:
    server, session = connected()
    feed(server, dataclasses.replace(refresh, session=session), A, 10.0)
    feed(server, Data(session ^ 1, 2, 2, 0, b"not ours"), A, 20.0)  # invalid: no refresh
    server.receive_datagram(b"\xf9junk", A, 30.0)
    drain(server, 30.0)
    server.pop_events()
    assert server.get_timer() == 70.0
    server.handle_timer(math.nextafter(70.0, 0.0))
    assert (server.pop_events(), server.session_count) == ([], 1)
    server.handle_timer(70.0)
    assert server.pop_events() == [PeerLeft(A, "timed out")]
    assert (server.session_count, server.get_timer()) == (0, None)


def test_expiry_reports_unacknowledged_replies() -> None:
    config = Config(session_expiry=5.0, give_up_after=100.0, max_transmissions=100)
    server, session = connected(config)
    server.reply("are you there?", 1.0)
    assert frames_out(server, 1.0) == [(Data(session, 1, 0, 0, b"are you there?"), A)]
    fired = run_timers(server, 5.0)
    assert [time for time, _ in fired] == [2.0, 4.0, 5.0]  # retransmissions at rto 1 s, 2 s
    assert [len(out) for _, out in fired] == [1, 1, 0]
    assert server.pop_events() == [
        NotDelivered("are you there?", "the client timed out"),
        PeerLeft(A, "timed out"),
    ]


def test_server_gives_up_on_an_unresponsive_client() -> None:
    config = Config(max_transmissions=3, give_up_after=100.0)
    server, _ = connected(config)
    server.reply("ping", 1.0)
    drain(server, 1.0)
    assert fire_times(server, 7.999) == [2.0, 4.0]
    assert server.pop_events() == []
    assert fire_times(server, 8.0) == [8.0]
    assert server.pop_events() == [
        NotDelivered("ping", "no acknowledgement"),
        PeerLeft(A, "not answering"),
    ]
    assert server.stats["retransmissions"] == 2


def test_server_gives_up_at_give_up_after_with_default_config() -> None:
    server, _ = connected()
    server.reply("ping", 2.3)
    drain(server, 2.3)
    run_timers(server, 40.0)
    assert server.pop_events()[-1] == PeerLeft(A, "not answering")


# -- roaming ----------------------------------------------------------------------------------


def test_roaming_moves_the_session_but_a_late_datagram_does_not() -> None:
    server, session = connected()
    say(server, session, 2, 2, "three", B, 1.0)  # pn 2 from B: newer, so the client moved
    assert server.pop_events() == [PeerMoved(A, B)]
    assert frames_out(server, 1.0) == [(Ack(session, 1, 1, 0b1), B)]
    say(server, session, 1, 1, "two", A, 2.0)  # pn 1 from A arrives late
    assert server.pop_events() == [MessageReceived(B, "two"), MessageReceived(B, "three")]
    assert frames_out(server, 2.0) == [(Ack(session, 2, 3, 0), B)]
    server.reply("to B", 3.0)
    assert frames_out(server, 3.0) == [(Data(session, 3, 0, 0, b"to B"), B)]


def test_after_a_move_the_old_address_can_start_a_new_session() -> None:
    server, old = connected()
    feed(server, Ack(old, 1, 0, 0), B, 1.0)
    new = join(server, A, nonce=6, now=2.0)
    assert new != old
    assert server.pop_events() == [PeerMoved(A, B), PeerJoined(A)]
    assert server.session_count == 2
    feed(server, Hello(5), B, 3.0)  # B's mapping belongs to the moved session: same welcome
    assert frames_out(server, 3.0) == [(Welcome(5, old, 60_000), B)]


def test_roaming_client_end_to_end() -> None:
    pair = Pair()
    pair.connect()
    pair.say("from home")
    pair.addr = B
    pair.now = 1.0
    pair.say("from the train")
    assert pair.server.pop_events() == [
        PeerJoined(CLIENT),
        MessageReceived(CLIENT, "from home"),
        PeerMoved(CLIENT, B),
        MessageReceived(B, "from the train"),
    ]
    pair.reply("welcome aboard")
    assert pair.client.pop_events()[-1] == MessageReceived(pair.client.server, "welcome aboard")
    assert pair.server.pop_events() == [MessageDelivered("welcome aboard")]


# -- plain-text peers -----------------------------------------------------------------


def test_plain_datagram_is_split_into_lines() -> None:
    server = make_server()
    server.receive_datagram(b"one\ntwo\n", B, 0.0)
    server.receive_datagram(b"Hello, server!", B, 1.0)
    assert server.pop_events() == [
        MessageReceived(B, "one", plain=True),
        MessageReceived(B, "two", plain=True),
        MessageReceived(B, "Hello, server!", plain=True),
    ]
    assert drain(server, 1.0) == []
    assert (server.peer_count, server.session_count) == (1, 0)


@pytest.mark.parametrize(
    ("seen", "sent"),
    [(b"hi", b"pong \xc3\xa9"), (b"hi\n", b"pong \xc3\xa9\n"), (b"hi\r\n", b"pong \xc3\xa9\r\n")],
)
def test_reply_to_plain_peer_mirrors_newline_style(seen: bytes, sent: bytes) -> None:
    server = make_server()
    server.receive_datagram(seen, B, 0.0)
    server.reply("pong é", 1.0)
    assert drain(server, 1.0) == [(sent, B)]


def test_reply_goes_to_last_speaker() -> None:
    server, session = connected()
    server.receive_datagram(b"from B\n", B, 2.0)
    server.reply("to B", 3.0)
    assert drain(server, 3.0) == [(b"to B\n", B)]
    say(server, session, 1, 1, "A again", A, 4.0)
    server.reply("to A", 5.0)
    assert frames_out(server, 5.0) == [
        (Data(session, 1, 0, 0, b"to A"), A),
        (Ack(session, 2, 2, 0), A),
    ]


# -- size limits ------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["x", "é", "€", "🎉"])
def test_framed_reply_is_fragmented_up_to_max_message(char: str) -> None:
    server, _ = connected(Config(max_message=200, max_datagram=64))
    check_fragmented_limit(server.reply, server, char, 200)


def test_default_max_message_is_64_kib() -> None:
    server, _ = connected()
    server.reply("x" * 65536, 1.0)
    assert len(drain(server, 1.0)) == Config().window  # the rest waits for acks
    assert server.pop_events() == []
    check_too_long(server.reply, server, "x" * 65537, 65536, 2.0)


@pytest.mark.parametrize("max_datagram", [64, 1200])
@pytest.mark.parametrize("char", ["x", "é", "€", "🎉"])
@pytest.mark.parametrize(("first", "overhead"), [(b"plain", 0), (b"plain\n", 1)])
def test_plain_reply_size_limit(max_datagram: int, char: str, first: bytes, overhead: int) -> None:
    server = make_server(Config(max_datagram=max_datagram))
    server.receive_datagram(first, A, 0.0)
    server.pop_events()
    check_plain_limit(server.reply, server, char, max_datagram - overhead, A)


def test_lone_surrogate_in_a_framed_reply_is_a_local_error() -> None:
    server, _ = connected()
    with pytest.raises(LocalProtocolError):
        server.reply("a\ud800b", 1.0)
    assert (drain(server, 1.0), server.pending()) == ([], [])


# -- memory bound ---------------------------------------------------------------------


def test_max_peers_bounds_sessions_evicting_the_least_recently_heard() -> None:
    server = make_server(Config(max_peers=2))
    first = join(server, A, nonce=1, now=0.0)
    join(server, B, nonce=2, now=1.0)
    feed(server, Ack(first, 0, 0, 0), A, 2.0)  # A is heard again: B is now the oldest
    join(server, C, nonce=3, now=3.0)
    assert server.pop_events() == [
        PeerJoined(A),
        PeerJoined(B),
        PeerLeft(B, "timed out"),
        PeerJoined(C),
    ]
    assert (server.session_count, server.stats["peers_evicted"]) == (2, 1)
    feed(server, Ack(first, 1, 0, 0), A, 4.0)
    assert drain(server, 4.0) == []  # A's session survived


def test_max_peers_bounds_plain_peers() -> None:
    server = make_server(Config(max_peers=3))
    for i in range(10):
        server.receive_datagram(b"hi", ("198.51.100.1", 1000 + i), float(i))
        assert server.peer_count <= 3
    assert server.stats["peers_evicted"] == 7
    server.reply("last one", 10.0)
    assert drain(server, 10.0) == [(b"last one", ("198.51.100.1", 1009))]


def test_max_peers_bounds_sessions_and_plain_peers_each() -> None:
    server = make_server(Config(max_peers=3))
    for i in range(5):
        join(server, ("198.51.100.2", 2000 + i))
        server.receive_datagram(b"hi", ("198.51.100.1", 1000 + i), 1.0)
    assert server.session_count == 3
    assert server.peer_count == 6  # three sessions and three plain peers


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xf9", "truncated"),
        (bytes([MAGIC, 2, 1]) + bytes(12), "bad-version"),
        (encode_frame(Hello(1))[:-1] + b"\x00", "bad-checksum"),
        (sealed(bytes([MAGIC, VERSION, 0x09])), "bad-type"),
        (sealed(bytes([MAGIC, VERSION, 0x01]) + bytes(3)), "bad-length"),
        (sealed(bytes([MAGIC, VERSION, 0x03]) + bytes(16) + b"\x80"), "bad-flags"),
        (encode_frame(Welcome(1, 2, 60_000)), "unexpected"),
        (encode_frame(Reset(1)), "unexpected"),
    ],
)
def test_bad_frames_are_counted_and_dropped(data: bytes, reason: str) -> None:
    server = make_server()
    server.receive_datagram(data, A, 0.0)
    assert server.stats["dropped:" + reason] == 1
    assert server.stats["datagrams_in"] == 1
    assert server.pop_events() == []
    assert drain(server, 0.0) == []
    assert server.peer_count == 0


def test_stats_count_bytes_and_datagrams() -> None:
    server = make_server()
    session = join(server, A)  # hello 15 in, welcome 27 out (4-byte CRC trailers)
    say(server, session, 0, 0, "abc", A, 0.0)  # 27 in
    drain(server, 0.0)  # ack 31 out
    server.receive_datagram(b"xy\n", B, 0.0)  # 3 in
    server.reply("hello", 1.0)  # 6 out
    server.receive_datagram(b"\xf9", C, 2.0)  # 1 in, dropped
    assert [len(data) for data, _ in drain(server, 2.0)] == [6]
    stats = server.stats
    assert (stats["datagrams_in"], stats["bytes_in"]) == (4, 15 + 27 + 3 + 1)
    assert (stats["datagrams_out"], stats["bytes_out"]) == (3, 27 + 31 + 6)
    assert stats["dropped:truncated"] == 1


# -- hypothesis: anything from anyone -------------------------------------------------------

ADDRESSES: list[Address] = [A, B, C]
ids = st.integers(1, 4)
u32s = st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1))
#: Frames whose nonces and sessions often match the ones the cycling randbits hands out.
valid_frames = st.one_of(
    st.builds(Hello, st.integers(1, 3)),
    st.builds(Data, ids, u32s, u32s, st.integers(0, 3), st.binary(max_size=8)),
    st.builds(Data, ids, u32s, st.integers(0, 6), st.sampled_from([0, FLAG_MORE]), st.just(b"ab")),
    st.builds(Ack, ids, u32s, u32s, st.integers(0, 2**64 - 1)),
    st.builds(Bye, ids, u32s, u32s),
    st.builds(Welcome, ids, ids, st.integers(0, 2**32 - 1)),
    st.builds(Reset, ids),
).map(encode_frame)
mutations = st.tuples(st.integers(0, 255), st.integers(0, 7), st.binary(max_size=3))


def _mutate(data: bytes, spec: tuple[int, int, bytes]) -> bytes:
    index, bit, tail = spec
    flipped = bytearray(data)
    flipped[index % len(data)] ^= 1 << bit
    return bytes(flipped[: len(data) - index % 3]) + tail


datagrams = st.one_of(
    valid_frames,
    valid_frames,
    st.builds(_mutate, valid_frames, mutations),
    st.binary(max_size=20),
)
#: Arbitrary time steps: sums that are not exact in binary must not trip a deadline.
delays = st.floats(0, 3, allow_nan=False)
steps = st.lists(
    st.tuples(delays, st.sampled_from(ADDRESSES), st.one_of(datagrams, st.none())),
    max_size=50,
)


@settings(max_examples=MORE_EXAMPLES, deadline=None)
@given(steps, st.integers(1, 3))
def test_arbitrary_traffic_never_raises(
    script: list[tuple[float, Address, bytes | None]], max_peers: int
) -> None:
    counter = itertools.cycle((1, 2, 3, 4))
    config = Config(
        max_peers=max_peers,
        max_datagram=64,
        session_expiry=8.0,
        give_up_after=6.0,
        rto_initial=0.5,
        window=4,
        reorder_window=8,
    )
    server = ServerCore(config, randbits=lambda bits: next(counter))
    heard: set[Address] = set()
    now = 0.0
    for delay, addr, data in script:
        now += delay
        run_timers(server, now)
        if data is None:
            server.reply("réponse", now)  # None: the operator replies instead
        else:
            server.receive_datagram(data, addr, now)
            heard.add(addr)
        for out, to in drain(server, now):
            assert to in heard
            assert len(out) <= config.max_datagram
        assert server.session_count <= max_peers
        assert server.peer_count - server.session_count <= max_peers
        server.pop_events()
    assert server.stats["datagrams_in"] == sum(data is not None for _, _, data in script)


def test_an_ended_session_is_remembered_until_it_would_have_expired() -> None:
    config = Config()
    server, session = connected(config)
    feed(server, Bye(session, 1, 0), A, 1.0)
    server.pop_events()
    say(server, session, 2, 1, "late", A, 2.0)
    assert frames_out(server, 2.0) == [(Reset(session, 1, known=True), A)]
    later = 1.0 + config.session_expiry
    say(server, session, 3, 1, "much later", A, later)
    assert frames_out(server, later) == [(Reset(session), A)]


def test_welcome_tells_the_session_expiry() -> None:
    server = make_server(Config(session_expiry=12.5))
    feed(server, Hello(9), A, 0.0)
    [(welcome, _)] = frames_out(server, 0.0)
    assert isinstance(welcome, Welcome)
    assert welcome.expiry_ms == 12_500
