"""Tier 1 and 2 tests of ``ServerCore``: explicit ``now``, seeded session ids."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_udpchat._config import Config
from trio_udpchat._events import (
    Address,
    MessageReceived,
    MessageTooLong,
    NoRecipient,
    PeerJoined,
    PeerLeft,
)
from trio_udpchat._server import ServerCore
from trio_udpchat._wire import (
    MAGIC,
    TEXT_OVERHEAD,
    VERSION,
    Bye,
    Frame,
    Hello,
    Reset,
    Text,
    Welcome,
    decode_frame_untrusted,
    encode_frame,
)

A: Address = ("192.0.2.1", 40001)
B: Address = ("192.0.2.2", 40002)
C: Address = ("2001:db8::3", 40003, 0, 0)
SEED = 1234

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(150, settings().max_examples)


def make_server(config: Config | None = None, seed: int = SEED) -> ServerCore:
    return ServerCore(config, randbits=random.Random(seed).getrandbits)


def frames_out(server: ServerCore) -> list[tuple[Frame, Address]]:
    return [(decode_frame_untrusted(data), addr) for data, addr in server.datagrams_to_send()]


def feed(server: ServerCore, frame: Frame, addr: Address, now: float = 0.0) -> None:
    server.receive_datagram(encode_frame(frame), addr, now)


def join(server: ServerCore, addr: Address, nonce: int = 5, now: float = 0.0) -> int:
    """Say hello from ``addr``; return the session the welcome grants."""
    feed(server, Hello(nonce), addr, now)
    [(welcome, to)] = frames_out(server)
    assert isinstance(welcome, Welcome)
    assert (welcome.nonce, to) == (nonce, addr)
    assert server.pop_events() == [PeerJoined(addr)]
    return welcome.session


def text_of_size(char: str, size: int) -> str:
    """A text of exactly ``size`` UTF-8 bytes, mostly made of ``char``."""
    width = len(char.encode("utf-8"))
    return char * (size // width) + "x" * (size % width)


# -- sessions ------------------------------------------------------------------------


def test_hello_gets_welcome_echoing_nonce() -> None:
    server = make_server()
    feed(server, Hello(0xABCDEF), A, now=10.0)
    expected_session = random.Random(SEED).getrandbits(64)
    assert frames_out(server) == [(Welcome(0xABCDEF, expected_session), A)]
    assert server.pop_events() == [PeerJoined(A)]
    assert server.peer_count == 1
    assert server.get_timer() is None


def test_duplicate_hello_resends_same_welcome() -> None:
    server = make_server()
    feed(server, Hello(9), A)
    first = server.datagrams_to_send()
    feed(server, Hello(9), A, now=1.0)
    feed(server, Hello(9), A, now=3.0)
    again = server.datagrams_to_send()
    assert again == first * 2
    assert server.pop_events() == [PeerJoined(A)]
    assert server.peer_count == 1


def test_new_nonce_from_same_address_starts_new_session() -> None:
    server = make_server()
    old = join(server, A, nonce=1)
    new = join(server, A, nonce=2, now=5.0)
    assert new != old
    feed(server, Text(old, "stale"), A, now=6.0)
    assert frames_out(server) == [(Reset(old), A)]
    feed(server, Text(new, "fresh"), A, now=6.0)
    assert server.pop_events() == [MessageReceived(A, "fresh")]


def test_sessions_differ_per_address() -> None:
    server = make_server()
    assert join(server, A, nonce=1) != join(server, B, nonce=1)
    assert server.peer_count == 2


def test_text_from_known_session_is_received_and_becomes_reply_target() -> None:
    server = make_server()
    session = join(server, A)
    feed(server, Text(session, "héllo 🎉"), A, now=1.0)
    assert server.pop_events() == [MessageReceived(A, "héllo 🎉", plain=False)]
    assert server.datagrams_to_send() == []
    server.reply("hi back", now=2.0)
    assert frames_out(server) == [(Text(session, "hi back"), A)]


@pytest.mark.parametrize("text", ["", "x", "a longer message"])
def test_text_from_unknown_session_is_dropped_and_reset(text: str) -> None:
    server = make_server()
    trigger = encode_frame(Text(77, text))
    server.receive_datagram(trigger, A, now=0.0)
    [(reset, to)] = server.datagrams_to_send()
    assert (decode_frame_untrusted(reset), to) == (Reset(77), A)
    assert len(reset) <= len(trigger)
    assert server.stats["dropped:unknown-session"] == 1
    assert server.pop_events() == []
    assert server.peer_count == 0
    server.reply("anyone?", now=1.0)
    assert server.pop_events() == [NoRecipient("anyone?")]


def test_valid_session_from_another_address_is_rejected() -> None:
    server = make_server()
    session = join(server, A)
    feed(server, Text(session, "spoofed"), B)
    assert frames_out(server) == [(Reset(session), B)]
    assert server.pop_events() == []
    assert server.stats["dropped:unknown-session"] == 1


def test_bye_removes_peer_and_later_reply_has_no_recipient() -> None:
    server = make_server()
    session = join(server, A)
    feed(server, Text(session, "bye soon"), A, now=1.0)
    feed(server, Bye(session), A, now=2.0)
    assert server.pop_events() == [MessageReceived(A, "bye soon"), PeerLeft(A)]
    assert server.peer_count == 0
    server.reply("wait", now=3.0)
    assert server.pop_events() == [NoRecipient("wait", left=A)]
    assert server.datagrams_to_send() == []


def test_bye_with_wrong_session_is_dropped_without_reset() -> None:
    server = make_server()
    session = join(server, A)
    feed(server, Bye(session ^ 1), A)
    assert server.datagrams_to_send() == []
    assert server.pop_events() == []
    assert server.peer_count == 1
    assert server.stats["dropped:unknown-session"] == 1


def test_reply_before_anyone_spoke() -> None:
    server = make_server()
    server.reply("hello?", now=0.0)
    assert server.pop_events() == [NoRecipient("hello?", left=None)]
    assert server.datagrams_to_send() == []
    join(server, A)  # a hello alone does not make a speaker
    server.reply("hello?", now=1.0)
    assert server.pop_events() == [NoRecipient("hello?", left=None)]
    assert server.datagrams_to_send() == []


# -- plain-text peers -----------------------------------------------------------------


def test_plain_datagram_is_split_into_lines() -> None:
    server = make_server()
    server.receive_datagram(b"one\ntwo\n", B, now=0.0)
    server.receive_datagram(b"Hello, server!", B, now=1.0)
    assert server.pop_events() == [
        MessageReceived(B, "one", plain=True),
        MessageReceived(B, "two", plain=True),
        MessageReceived(B, "Hello, server!", plain=True),
    ]
    assert server.datagrams_to_send() == []
    assert server.peer_count == 1


@pytest.mark.parametrize(
    ("seen", "sent"),
    [(b"hi", b"pong \xc3\xa9"), (b"hi\n", b"pong \xc3\xa9\n"), (b"hi\r\n", b"pong \xc3\xa9\r\n")],
)
def test_reply_to_plain_peer_mirrors_newline_style(seen: bytes, sent: bytes) -> None:
    server = make_server()
    server.receive_datagram(seen, B, now=0.0)
    server.reply("pong é", now=1.0)
    assert server.datagrams_to_send() == [(sent, B)]


def test_reply_goes_to_last_speaker() -> None:
    server = make_server()
    session = join(server, A)
    feed(server, Text(session, "from A"), A, now=1.0)
    server.receive_datagram(b"from B\n", B, now=2.0)
    server.reply("to B", now=3.0)
    assert server.datagrams_to_send() == [(b"to B\n", B)]
    feed(server, Text(session, "A again"), A, now=4.0)
    server.reply("to A", now=5.0)
    assert frames_out(server) == [(Text(session, "to A"), A)]


# -- size limits ------------------------------------------------------------------------


@pytest.mark.parametrize("max_datagram", [64, 1200])
@pytest.mark.parametrize("char", ["x", "é", "€", "🎉"])
@pytest.mark.parametrize(
    ("first", "overhead"), [(None, TEXT_OVERHEAD), (b"plain", 0), (b"plain\n", 1)]
)
def test_reply_size_limit(max_datagram: int, char: str, first: bytes | None, overhead: int) -> None:
    server = make_server(Config(max_datagram=max_datagram))
    if first is None:
        session = join(server, A)
        feed(server, Text(session, "hi"), A)
    else:
        server.receive_datagram(first, A, now=0.0)
    server.pop_events()
    limit = max_datagram - overhead
    fits = text_of_size(char, limit)
    server.reply(fits, now=1.0)
    [(data, to)] = server.datagrams_to_send()
    assert to == A
    assert len(data) == max_datagram
    too_long = fits + char
    server.reply(too_long, now=2.0)
    size = len(too_long.encode("utf-8"))
    assert server.pop_events() == [MessageTooLong(too_long, size, limit)]
    assert server.datagrams_to_send() == []


# -- memory bound ---------------------------------------------------------------------


def test_max_peers_evicts_least_recently_heard() -> None:
    server = make_server(Config(max_peers=3))
    session = join(server, A)
    for i in range(10):
        server.receive_datagram(b"hi", ("198.51.100.1", 1000 + i), now=float(i))
        assert server.peer_count <= 3
    assert server.peer_count == 3
    assert server.stats["peers_evicted"] == 8  # A, then the first seven plain peers
    server.pop_events()
    feed(server, Text(session, "still here?"), A, now=20.0)
    assert frames_out(server) == [(Reset(session), A)]
    assert server.pop_events() == []


def test_recently_heard_peer_is_kept() -> None:
    server = make_server(Config(max_peers=3))
    session = join(server, A)
    server.receive_datagram(b"b", B, now=1.0)
    server.receive_datagram(b"c", C, now=2.0)
    feed(server, Text(session, "refresh"), A, now=3.0)
    server.receive_datagram(b"d", ("198.51.100.4", 4), now=4.0)  # evicts B, not A
    assert server.peer_count == 3
    server.pop_events()
    feed(server, Text(session, "kept"), A, now=5.0)
    assert server.pop_events() == [MessageReceived(A, "kept")]
    assert server.datagrams_to_send() == []


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xf9", "truncated"),
        (bytes([MAGIC, 2, 1]) + bytes(8), "bad-version"),
        (bytes([MAGIC, VERSION, 0x09]), "bad-type"),
        (bytes([MAGIC, VERSION, 0x01]) + bytes(3), "bad-length"),
        (bytes([MAGIC, VERSION, 0x03]) + bytes(8) + b"\xff", "bad-utf8"),
        (encode_frame(Welcome(1, 2)), "unexpected"),
        (encode_frame(Reset(1)), "unexpected"),
    ],
)
def test_bad_frames_are_counted_and_dropped(data: bytes, reason: str) -> None:
    server = make_server()
    server.receive_datagram(data, A, now=0.0)
    assert server.stats["dropped:" + reason] == 1
    assert server.stats["datagrams_in"] == 1
    assert server.pop_events() == []
    assert server.datagrams_to_send() == []
    assert server.peer_count == 0


def test_stats_count_bytes_and_datagrams() -> None:
    server = make_server()
    session = join(server, A)  # 11 in, 19 out
    feed(server, Text(session, "abc"), A)  # 14 in
    server.receive_datagram(b"xy\n", B, now=0.0)  # 3 in
    server.reply("hello", now=1.0)  # 6 out
    server.receive_datagram(b"\xf9", C, now=2.0)  # 1 in, dropped
    server.reply("", now=3.0)  # 1 out
    assert [len(data) for data, _ in server.datagrams_to_send()] == [6, 1]
    stats = server.stats
    assert (stats["datagrams_in"], stats["bytes_in"]) == (4, 11 + 14 + 3 + 1)
    assert (stats["datagrams_out"], stats["bytes_out"]) == (3, 19 + 6 + 1)
    assert stats["dropped:truncated"] == 1


# -- hypothesis: anything from anyone -------------------------------------------------------

ADDRESSES: list[Address] = [A, B, C]
small = st.integers(1, 3)
#: Frames whose nonces and sessions often match the ones the cycling randbits hands out.
valid_frames = st.one_of(
    st.builds(Hello, small),
    st.builds(Text, small, st.text(max_size=5)),
    st.builds(Bye, small),
    st.builds(Welcome, small, small),
    st.builds(Reset, small),
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
steps = st.lists(
    st.tuples(
        st.floats(0, 5, allow_nan=False),
        st.sampled_from(ADDRESSES),
        st.one_of(datagrams, st.none()),  # None: the operator replies instead
    ),
    max_size=40,
)


@settings(max_examples=MORE_EXAMPLES, deadline=None)
@given(steps, st.integers(1, 3))
def test_arbitrary_traffic_never_raises(
    script: list[tuple[float, Address, bytes | None]], max_peers: int
) -> None:
    counter = itertools.cycle((1, 2))
    config = Config(max_peers=max_peers, max_datagram=40)
    server = ServerCore(config, randbits=lambda bits: next(counter))
    heard: set[Address] = set()
    now = 0.0
    for delay, addr, data in script:
        now += delay
        if data is None:
            server.reply("réponse", now)
        else:
            server.receive_datagram(data, addr, now)
            heard.add(addr)
        assert server.peer_count <= max_peers
        for out, to in server.datagrams_to_send():
            assert to in heard
            assert len(out) <= config.max_datagram
        server.pop_events()
    assert server.stats["datagrams_in"] == sum(data is not None for _, _, data in script)
