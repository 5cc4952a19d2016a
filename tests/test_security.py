"""Tier 1 and 2 tests of what makes the server safe on an open port.

A room passphrase (sealed frames, a proof in the hello), the replay window,
stateless cookies, and the amplification limit for addresses not yet proven.
Every bad datagram must be dropped and counted, deliver nothing, and allocate
nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core_helpers import (
    CLIENT,
    ROOM_KEY,
    SEED,
    WRONG_KEY,
    Pair,
    answer,
    challenge,
    drain,
    enter,
    feed,
    frames_out,
    make_server,
    say_data,
    seal,
    seeded,
)
from trio_udpchat._config import Config
from trio_udpchat._crypto import RoomKey, Sealer
from trio_udpchat._events import Address, MessageReceived, PeerJoined
from trio_udpchat._sealed import prove
from trio_udpchat._server import ServerCore
from trio_udpchat._wire import (
    AEAD_NONCE_SIZE,
    HEADER_SIZE,
    MAGIC,
    SEALED,
    VERSION,
    Ack,
    Challenge,
    Data,
    Denied,
    Hello,
    Reset,
    Welcome,
    encode_frame,
)

A: Address = ("192.0.2.1", 40001)
B: Address = ("192.0.2.2", 40002)
ROTATION = Config().cookie_rotation


def keyed_server(config: Config | None = None, *, allow_plain: bool = False) -> ServerCore:
    return make_server(config, key=ROOM_KEY, allow_plain=allow_plain)


def state(server: ServerCore) -> tuple[int, int, int]:
    """What the server holds: sessions, remembered peers, room members."""
    return (server.session_count, server.peer_count, len(server.room.members))


def nonce_of(datagram: bytes) -> bytes:
    return datagram[HEADER_SIZE : HEADER_SIZE + AEAD_NONCE_SIZE]


# -- a room with a passphrase, end to end in the cores --------------------------------------


def test_a_keyed_pair_chats_and_nothing_after_the_hellos_is_in_the_clear() -> None:
    pair = Pair(key=ROOM_KEY, client_key=ROOM_KEY)
    pair.connect()
    pair.say("the secret plan")
    pair.reply("a secret answer")
    assert MessageReceived(CLIENT, "the secret plan") in pair.server.pop_events()
    assert pair.client.pop_events()[-1] == MessageReceived(pair.client.server, "a secret answer")
    kinds = [(hop.from_client, hop.data[2]) for hop in pair.hops]
    # Hello, Challenge, Hello with a proof; from then on every datagram is sealed.
    assert kinds[:3] == [(True, 0x01), (False, 0x07), (True, 0x01)]
    assert {kind for _, kind in kinds[3:]} == {SEALED}
    first, proven = pair.hops[0].frame(), pair.hops[2].frame()
    assert isinstance(first, Hello)
    assert first.proof == b""
    assert isinstance(proven, Hello)
    assert len(proven.proof) == 40
    for hop in pair.hops:
        assert b"secret" not in hop.data


def test_a_wrong_passphrase_is_denied_and_the_client_told_within_a_round_trip() -> None:
    pair = Pair(key=ROOM_KEY, client_key=WRONG_KEY)
    pair.client.start(0.0)
    pair.exchange()
    assert pair.client.refusal is not None
    assert pair.client.refusal.startswith("wrong passphrase or not a trio_udpchat server")
    assert pair.server.stats["dropped:wrong-key"] == 1
    assert (state(pair.server), pair.server.pop_events()) == ((0, 0, 0), [])
    assert isinstance(pair.hops[-1].frame(), Denied)
    sent = len(pair.hops)
    pair.advance(120.0)
    assert len(pair.hops) == sent  # the client stopped trying


def test_a_client_without_the_passphrase_is_told_the_room_needs_one() -> None:
    pair = Pair(key=ROOM_KEY)
    pair.client.start(0.0)
    pair.exchange()
    assert pair.client.refusal is not None
    assert "needs the room passphrase" in pair.client.refusal
    assert state(pair.server) == (0, 0, 0)


def test_a_client_with_a_passphrase_will_not_talk_to_an_unencrypted_server() -> None:
    pair = Pair(client_key=ROOM_KEY)
    pair.client.start(0.0)
    pair.exchange()
    assert pair.client.refusal is not None
    assert "refusing to chat unencrypted" in pair.client.refusal
    assert state(pair.server) == (0, 0, 0)  # and its hello, not yet proven, cost nothing


def test_a_keyed_client_ignores_clear_frames_and_plain_text() -> None:
    pair = Pair(key=ROOM_KEY, client_key=ROOM_KEY)
    pair.connect()
    session = pair.client._session
    assert session is not None
    pair.client.pop_events()
    feed_clear = encode_frame(Data(session.id, 50, 1, 0, b"forged"))
    pair.client.receive_datagram(feed_clear, pair.client.server, 1.0)
    pair.client.receive_datagram(encode_frame(Reset(session.id)), pair.client.server, 1.0)
    pair.client.receive_datagram(b"plain words", pair.client.server, 1.0)
    assert pair.client.pop_events() == []
    assert pair.client.stats["dropped:not-sealed"] == 2
    assert pair.client.stats["dropped:plain-refused"] == 1
    assert pair.client.state == "connected"  # a forged reset cannot end the session


def test_a_keyed_server_refuses_clear_session_frames() -> None:
    server = keyed_server()
    session = enter(server, A)
    server.pop_events()
    before = state(server)
    server.receive_datagram(encode_frame(say_data(session, 2, 1, "forged")), A, 1.0)
    server.receive_datagram(encode_frame(Ack(session, 3, 0, 0)), A, 1.0)
    assert server.stats["dropped:not-sealed"] == 2
    assert (server.pop_events(), drain(server, 1.0), state(server)) == ([], [], before)


def test_a_keyed_server_refuses_plain_text_unless_allowed() -> None:
    server = keyed_server()
    server.receive_datagram(b"hello from nc", B, 0.0)
    assert server.stats["dropped:plain-refused"] == 1
    assert (server.pop_events(), drain(server, 0.0), state(server)) == ([], [], (0, 0, 0))
    allowing = keyed_server(allow_plain=True)
    allowing.receive_datagram(b"hello from nc", B, 0.0)
    assert allowing.pop_events() == [MessageReceived(B, "hello from nc", plain=True)]


# -- tampered, forged, truncated, replayed --------------------------------------------------


def _flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def _sealed_say(session: int, key: RoomKey = ROOM_KEY) -> bytes:
    return seal(say_data(session, 2, 1, "hi"), key=key)


Damage = Callable[[bytes], bytes]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: _flip(d, len(d) - 1), "bad-tag"),  # the tag
        (lambda d: _flip(d, len(d) - 20), "bad-tag"),  # the ciphertext
        (lambda d: _flip(d, HEADER_SIZE), "bad-tag"),  # the nonce
        (lambda d: _flip(d, 1), "bad-version"),  # the header
        (lambda d: d[: HEADER_SIZE + AEAD_NONCE_SIZE + 15], "truncated"),
        (lambda d: d[:-1], "bad-tag"),
        (lambda d: d + b"\x00", "bad-tag"),
        (lambda d: bytes([MAGIC, VERSION, SEALED]) + d[HEADER_SIZE:][::-1], "bad-tag"),
    ],
    ids=["tag", "ciphertext", "nonce", "header", "cut-short", "cut-one", "extended", "reversed"],
)
def test_a_damaged_sealed_frame_is_dropped_and_counted(damage: Damage, reason: str) -> None:
    server = keyed_server()
    session = enter(server, A)
    server.pop_events()
    before = state(server)
    datagram = damage(_sealed_say(session))
    server.receive_datagram(datagram, A, 1.0)
    assert server.stats["dropped:" + reason] == 1
    assert (server.pop_events(), drain(server, 1.0), state(server)) == ([], [], before)
    server.receive_datagram(_sealed_say(session), A, 1.0)  # the genuine one still works
    assert server.pop_events() == [MessageReceived(A, "hi")]


def test_a_frame_sealed_under_another_key_is_dropped_and_counted() -> None:
    server = keyed_server()
    session = enter(server, A)
    server.pop_events()
    server.receive_datagram(_sealed_say(session, WRONG_KEY), A, 1.0)
    assert server.stats["dropped:bad-tag"] == 1
    assert (server.pop_events(), drain(server, 1.0)) == ([], [])


def test_a_hello_with_a_wrong_or_missing_proof_gets_no_session() -> None:
    server = keyed_server()
    cookie = challenge(server, A, 5, 0.0).cookie
    wrong = prove(Hello(5, cookie), Sealer(WRONG_KEY.key, seeded(1)))
    for hello in (Hello(5, cookie), wrong, Hello(5, cookie, _flip(wrong.proof, 0))):
        feed(server, hello, A, 0.0)
        assert frames_out(server, 0.0) == [(Denied(5), A)]
    assert server.stats["dropped:wrong-key"] == 3
    assert (server.pop_events(), state(server)) == ([], (0, 0, 0))


def test_a_proof_is_bound_to_its_cookie() -> None:
    # A proof lifted from one hello cannot vouch for another.
    server = keyed_server()
    first = challenge(server, A, 5, 0.0).cookie
    proof = prove(Hello(5, first), Sealer(ROOM_KEY.key, seeded(1))).proof
    second = challenge(server, A, 6, 0.0).cookie
    feed(server, Hello(6, second, proof), A, 0.0)
    assert frames_out(server, 0.0) == [(Denied(6), A)]


@pytest.mark.parametrize("keyed", [False, True])
def test_a_replayed_datagram_is_never_delivered_again(keyed: bool) -> None:
    server = keyed_server() if keyed else make_server()
    session = enter(server, A)
    server.pop_events()
    datagram = _sealed_say(session) if keyed else encode_frame(say_data(session, 2, 1, "hi"))
    server.receive_datagram(datagram, A, 1.0)
    assert server.pop_events() == [MessageReceived(A, "hi")]
    drain(server, 1.0)
    for now, source in ((2.0, A), (30.0, B)):  # later, and from elsewhere (no roaming either)
        server.receive_datagram(datagram, source, now)
        assert (server.pop_events(), drain(server, now)) == ([], [])
    assert server.stats["dropped:replayed"] == 2
    assert server._clients[session].session.peer == A


def test_replay_protection_survives_the_packet_number_window() -> None:
    server = keyed_server()
    session = enter(server, A)
    server.pop_events()
    old = seal(say_data(session, 2, 1, "old"))
    server.receive_datagram(old, A, 1.0)
    for pn in range(3, 3 + Config().replay_window + 5):  # push pn 2 out of the window
        server.receive_datagram(seal(Ack(session, pn, 0, 0)), A, 1.0)
    server.pop_events()
    server.receive_datagram(old, A, 2.0)
    assert server.pop_events() == []
    assert server.stats["dropped:replayed"] == 1


# -- cookies ---------------------------------------------------------------------------------


def _with_cookie(server: ServerCore, cookie: bytes, addr: Address, nonce: int, now: float) -> None:
    feed(server, Hello(nonce, cookie), addr, now)


@pytest.mark.parametrize(
    ("where", "nonce", "when", "accepted"),
    [
        (A, 5, 0.0, True),
        (A, 5, ROTATION * 0.99, True),  # one rotation later: the previous secret still counts
        (A, 5, ROTATION * 1.5, False),  # two rotations later: gone
        (A, 5, ROTATION * 10, False),
        (B, 5, 0.0, False),  # another address
        (("192.0.2.1", 40002), 5, 0.0, False),  # another port of the same host
        (A, 6, 0.0, False),  # another nonce
    ],
    ids=["fresh", "one-rotation", "two-rotations", "ancient", "address", "port", "nonce"],
)
def test_a_cookie_counts_only_for_its_address_nonce_and_time(
    where: Address, nonce: int, when: float, accepted: bool
) -> None:
    server = make_server()
    cookie = challenge(server, A, 5, ROTATION * 0.5).cookie
    _with_cookie(server, cookie, where, nonce, ROTATION * 0.5 + when)
    [(reply, to)] = frames_out(server, ROTATION * 0.5 + when)
    assert to == where
    if accepted:
        assert isinstance(reply, Welcome)
        assert server.session_count == 1
    else:
        assert isinstance(reply, Challenge)  # try again, with a fresh cookie
        assert server.stats["dropped:stale-cookie"] == 1
        assert (server.pop_events(), state(server)) == ([], (0, 0, 0))


def test_a_forged_cookie_gets_a_challenge_and_no_state() -> None:
    server = make_server()
    for i in range(1000):  # from many hosts, so the hello rate limit is not what stops them
        _with_cookie(server, i.to_bytes(16, "big"), (f"10.0.{i // 250}.{i % 250}", 4000), 5, 0.0)
    assert server.stats["dropped:stale-cookie"] == 999  # and i = 0 was "no cookie"
    assert state(server) == (0, 0, 0)


def test_the_challenge_is_at_most_three_times_the_hello() -> None:
    server = make_server()
    feed(server, Hello(5), A, 0.0)
    [(reply, _)] = drain(server, 0.0)
    assert len(reply) <= 3 * len(encode_frame(Hello(5)))


def test_a_reset_is_never_larger_than_what_provoked_it() -> None:
    for server, encode in ((make_server(), encode_frame), (keyed_server(), seal)):
        smallest = encode(Ack(77, 0, 0, 0)), encode(Data(77, 0, 0, 0, b""))
        for datagram in smallest:
            server.receive_datagram(datagram, B, 0.0)
            [(reply, _)] = drain(server, 0.0)
            assert len(reply) <= len(datagram)


# -- hypothesis: anything from anyone --------------------------------------------------------

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(200, settings().max_examples)
hosts = st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::9"])
addresses = st.tuples(hosts, st.integers(1, 65535))
framish = st.one_of(
    st.binary(max_size=80).map(lambda b: bytes([MAGIC]) + b),
    st.binary(max_size=80).map(lambda b: bytes([MAGIC, VERSION]) + b),
    st.binary(min_size=40, max_size=120).map(lambda b: bytes([MAGIC, VERSION, SEALED]) + b),
    st.builds(
        lambda n, c, p: encode_frame(Hello(n, c, p)),
        st.integers(0, 2**64 - 1),
        st.binary(min_size=16, max_size=16),
        st.sampled_from([b"", bytes(40)]),
    ),
    st.builds(
        lambda session, pn: seal(Data(session, pn, 0, 0, b"x"), key=WRONG_KEY),
        st.integers(0, 9),
        st.integers(0, 9),
    ),
)


@settings(max_examples=MORE_EXAMPLES, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 30), addresses, framish), max_size=60),
    st.booleans(),
)
def test_arbitrary_frames_never_raise_deliver_or_allocate(
    script: list[tuple[float, Address, bytes]], keyed: bool
) -> None:
    server = keyed_server() if keyed else make_server()
    sent_to: dict[Address, int] = {}
    received_from: dict[Address, int] = {}
    now = 0.0
    for delay, addr, datagram in script:
        now += delay
        server.receive_datagram(datagram, addr, now)
        received_from[addr] = received_from.get(addr, 0) + len(datagram)
        for data, to in drain(server, now):
            sent_to[to] = sent_to.get(to, 0) + len(data)
        timer = server.get_timer()
        if timer is not None and timer <= now:
            server.handle_timer(now)
        assert server.pop_events() == []
        assert state(server) == (0, 0, 0)
    for to, size in sent_to.items():  # no address was ever proven: at most 3x
        assert size <= 3 * received_from.get(to, 0), to


text_or_frames = st.one_of(framish, st.binary(max_size=200))


@settings(max_examples=MORE_EXAMPLES, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.7), addresses, text_or_frames), max_size=80))
def test_unproven_addresses_get_at_most_three_times_what_they_sent(
    script: list[tuple[float, Address, bytes]],
) -> None:
    # Plain text too: a plain peer can never prove its address, so the room's lines
    # to it (everyone else's chatter) stay within 3x its bytes over the last minute.
    server = make_server(trust_plain=False, config=Config(rate_limit=0, plain_rate=0))
    sent_to: dict[Address, int] = {}
    received_from: dict[Address, int] = {}
    now = 0.0
    for delay, addr, datagram in script:  # 80 x 0.7 s: within a minute, the window never slides
        now += delay
        server.receive_datagram(datagram, addr, now)
        received_from[addr] = received_from.get(addr, 0) + len(datagram)
        server.reply("an operator line that is rather long, to push the budget", now)
        for data, to in drain(server, now):
            sent_to[to] = sent_to.get(to, 0) + len(data)
        assert server.session_count == 0
        assert server.peer_count <= server.config.max_peers
    for to, size in sent_to.items():
        assert size <= 3 * received_from.get(to, 0), to


@settings(max_examples=max(50, settings().max_examples // 4), deadline=None)
@given(
    st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=12),
    st.lists(st.booleans(), min_size=1, max_size=40),
)
def test_nonces_never_repeat_within_a_session(texts: list[str], losses: list[bool]) -> None:
    pair = Pair(Config(max_datagram=200, rate_limit=0), key=ROOM_KEY, client_key=ROOM_KEY)
    pair.connect()
    lose = itertools.cycle(losses)
    for text in texts:
        pair.to_server = not next(lose)
        pair.say(text)
        pair.to_client = not next(lose)
        pair.reply(text[::-1])
        pair.to_server = pair.to_client = True
        pair.advance(pair.now + 2.0)  # retransmissions: each a new datagram, a new nonce
    pair.advance(pair.now + 60.0)
    for from_client in (True, False):
        nonces = [
            nonce_of(hop.data)
            for hop in pair.hops
            if hop.from_client == from_client and hop.data[2] == SEALED
        ]
        assert len(nonces) == len(set(nonces)) > 0


def test_the_flooded_server_still_welcomes_a_real_client() -> None:
    # Random bytes, unproven hellos and sealed junk from thousands of addresses, then
    # a real client: it gets its session, and the server holds nothing else.
    server = keyed_server()
    draw = seeded(SEED)
    for i in range(5000):
        addr = (f"198.51.100.{i % 200}", 1024 + i)
        junk = draw(8 * 64).to_bytes(64, "big")
        for datagram in (junk, bytes([MAGIC, VERSION, SEALED]) + junk, encode_frame(Hello(i))):
            server.receive_datagram(datagram, addr, i / 1000)
        drain(server, i / 1000)
    assert state(server) == (0, 0, 0)
    assert [type(frame) for frame, _ in answer(server, A, 1, 5.0)] == [Welcome]
    assert server.pop_events() == [PeerJoined(A)]


def test_client_cores_with_keys_never_reuse_a_prefix() -> None:
    # The 16 random bytes before the counter: distinct per sealer, from the injected source.
    prefixes = {nonce_of(seal(Ack(1, 0, 0, 0), seed=seed))[:16] for seed in range(200)}
    assert len(prefixes) == 200
