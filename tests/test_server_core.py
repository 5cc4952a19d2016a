"""Tier 1 and 2 tests of ``ServerCore``: explicit ``now``, seeded session ids.

A framed client's messages are chat-encoded (``_chat``): it joins with
``Join(name)`` and the server answers ``Named(name)``; what it types is
``Say(text)``; the operator's reply goes out as ``Said(kind=REPLY)`` through the
room (``_room``). The ``connected`` helper does all that, acknowledged both ways.
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
    RTT,
    SEED,
    InOrder,
    Pair,
    answer,
    challenge,
    chat_of,
    chat_payloads,
    check_fragmented_limit,
    check_plain_limit,
    check_too_long,
    checksummed,
    drain,
    enter,
    feed,
    fire_times,
    frames_out,
    in_order_chat,
    join,
    join_payload,
    make_server,
    mixed,
    named_payload,
    run_timers,
    said_data,
    said_payload,
    say_data,
    say_payload,
    seeded_values,
)
from trio_udpchat._chat import (
    Act,
    AskWho,
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
    Whisper,
    encode_chat,
)
from trio_udpchat._config import Config
from trio_udpchat._errors import LocalProtocolError
from trio_udpchat._events import (
    Address,
    CommandRejected,
    MessageDelivered,
    MessageReceived,
    NoRecipient,
    NotDelivered,
    PeerJoined,
    PeerLeft,
    PeerMoved,
    PresenceNoticed,
    RoomMessage,
)
from trio_udpchat._plaintext import plain_line
from trio_udpchat._server import ServerCore
from trio_udpchat._wire import (
    FLAG_MORE,
    MAGIC,
    VERSION,
    Ack,
    Bye,
    Challenge,
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
#: The names the room gives members known only by their address.
A_NAME = CLIENT_NAME
B_NAME = "192.0.2.2:40002"
C_NAME = "[2001:db8::3]:40003"

#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(150, settings().max_examples)


def say(
    server: ServerCore, session: int, pn: int, seq: int, text: str, addr: Address, now: float
) -> None:
    """A client's one-packet ``Say(text)`` arrives."""
    feed(server, say_data(session, pn, seq, text), addr, now)


def connected(config: Config | None = None, *, now: float = 0.0) -> tuple[ServerCore, int]:
    """A server with one member, a session from ``A`` that joined at ``now`` (named by its
    address, acknowledged ``RTT`` later) and then said "hi", so replies go to it.

    The client's next pn is 3 and seq 2; the server's next pn is 3 and seq 1.
    """
    server = make_server(config)
    session = enter(server, A, now=now)
    say(server, session, 2, 1, "hi", A, now + RTT)
    assert frames_out(server, now + RTT) == [(Ack(session, 2, 2, 0), A)]
    assert server.pop_events() == [PeerJoined(A), MessageReceived(A, "hi")]
    return server, session


def sent_chat(server: ServerCore, now: float) -> list[tuple[object, Address]]:
    """What the server sends at ``now``: chat messages for Data, frames otherwise."""
    return [
        (chat_of(frame) if isinstance(frame, Data) else frame, to)
        for frame, to in frames_out(server, now)
    ]


# -- sessions ------------------------------------------------------------------------


def test_hello_gets_a_challenge_and_only_the_echoed_cookie_a_welcome() -> None:
    server = make_server()
    feed(server, Hello(0xABCDEF), A, 10.0)
    [(reply, to)] = frames_out(server, 10.0)
    assert isinstance(reply, Challenge)
    assert (reply.nonce, reply.salt, to) == (0xABCDEF, b"", A)
    assert (server.pop_events(), server.peer_count, server.get_timer()) == ([], 0, None)
    feed(server, Hello(0xABCDEF, reply.cookie), A, 10.5)
    session = seeded_values(5, SEED)[4]  # after the cookie secret's four 64-bit draws
    assert frames_out(server, 10.5) == [(Welcome(0xABCDEF, session, 60_000), A)]
    assert server.pop_events() == [PeerJoined(A)]
    assert (server.peer_count, server.session_count) == (1, 1)
    assert server.get_timer() == 10.5 + Config().session_expiry


def test_duplicate_hello_resends_same_welcome() -> None:
    server = make_server()
    cookie = challenge(server, A, 9, 0.0).cookie
    feed(server, Hello(9, cookie), A, 0.0)
    first = drain(server, 0.0)
    feed(server, Hello(9, cookie), A, 1.0)
    feed(server, Hello(9, cookie), A, 3.0)
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
    say(server, old, 3, 2, "stale", A, 3.0)
    # The ended session is remembered: its receiver had got seqs 0 and 1 (the join, "hi").
    assert frames_out(server, 3.0) == [(Reset(old, 2, known=True), A)]
    say(server, new, 0, 0, "fresh", A, 3.0)  # no join first: joined under its address
    assert server.pop_events() == [MessageReceived(A, "fresh")]
    assert sent_chat(server, 3.0) == [
        (Named(A_NAME), A),
        (Said(A_NAME, "hi", RTT, SaidKind.SAY, history=True), A),  # what the room heard
        (Ack(new, 2, 1, 0), A),
    ]


def test_sessions_differ_per_address() -> None:
    server = make_server()
    assert join(server, A, nonce=1) != join(server, B, nonce=1)
    assert server.session_count == 2


def test_data_is_received_acked_and_replied_to() -> None:
    server = make_server()
    session = join(server, A)
    server.pop_events()
    feed(server, Data(session, 0, 0, 0, join_payload("alice")), A, 1.0)
    assert server.pop_events() == []  # a join alone shows nothing (one member: no presence)
    say(server, session, 1, 1, "héllo 🎉", A, 1.0)
    assert server.pop_events() == [MessageReceived(A, "héllo 🎉", plain=False)]
    assert frames_out(server, 1.0) == [
        (Data(session, 0, 0, 0, named_payload("alice")), A),
        (Ack(session, 1, 2, 0), A),
    ]
    assert server.pending() == []  # the Named is no reply of the operator's
    server.reply("hi back", 1.5)
    assert frames_out(server, 1.5) == [(said_data(session, 2, 1, "hi back", 1.5), A)]
    assert server.pending() == ["hi back"]
    feed(server, Ack(session, 2, 2, 0), A, 1.8)  # the Named and the reply
    assert server.pop_events() == [MessageDelivered("hi back")]
    assert server.pending() == []
    assert drain(server, 1.8) == []


def test_out_of_order_data_is_buffered_and_acked_with_bitmap() -> None:
    server, session = connected()
    say(server, session, 4, 3, "three", A, 1.0)
    assert server.pop_events() == []
    assert frames_out(server, 1.0) == [(Ack(session, 3, 2, 0b1), A)]
    say(server, session, 3, 2, "two", A, 1.5)
    assert server.pop_events() == [MessageReceived(A, "two"), MessageReceived(A, "three")]
    assert frames_out(server, 1.5) == [(Ack(session, 4, 4, 0), A)]


#: Chat payloads the server cannot use, and the reason it counts each under.
BAD_CHAT = [
    pytest.param(b"", "chat-truncated", id="empty"),
    pytest.param(say_payload("cut")[:-1], "chat-truncated", id="truncated"),
    pytest.param(b"\xff", "chat-type", id="unknown-type"),
    pytest.param(say_payload("é").replace("é".encode(), b"\xff\xfe"), "bad-utf8", id="bad-utf8"),
    pytest.param(say_payload("x") + b"\x00", "chat-malformed", id="trailing"),
    pytest.param(encode_chat(Named("x")), "unexpected", id="wrong-way"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD_CHAT)
def test_undecodable_message_is_counted_but_still_acked(payload: bytes, reason: str) -> None:
    server, session = connected()
    feed(server, Data(session, 3, 2, 0, payload), A, 1.0)
    assert server.stats["dropped:" + reason] == 1
    assert server.pop_events() == []
    assert frames_out(server, 1.0) == [(Ack(session, 3, 3, 0), A)]
    say(server, session, 4, 3, "still here", A, 1.5)  # the stream goes on
    assert server.pop_events() == [MessageReceived(A, "still here")]


@pytest.mark.parametrize(("payload", "reason"), BAD_CHAT)
def test_an_undecodable_first_message_joins_no_one(payload: bytes, reason: str) -> None:
    server = make_server()
    session = join(server, A)
    feed(server, Data(session, 0, 0, 0, payload), A, 1.0)
    assert server.stats["dropped:" + reason] == 1
    assert server.room.members == {}
    assert frames_out(server, 1.0) == [(Ack(session, 0, 1, 0), A)]  # acked, nothing else


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
    feed(server, Bye(session, 3, 1), A, 2.0)  # the client got the Named, not the reply
    assert server.pop_events() == [
        NotDelivered("unacked", "the client left before it was acknowledged"),
        PeerLeft(A, "quit"),
    ]
    assert (server.peer_count, server.get_timer()) == (0, None)
    assert server.room.members == {}
    assert drain(server, 2.0) == []
    server.reply("wait", 3.0)
    assert server.pop_events() == [NoRecipient("wait", left=A)]
    assert drain(server, 3.0) == []


def test_bye_acknowledges_what_the_client_received() -> None:
    server, session = connected()
    server.reply("got it", 1.0)
    server.reply("lost", 1.0)
    drain(server, 1.0)
    feed(server, Bye(session, 3, 2), A, 2.0)  # its ack of "got it" was lost; the bye says so
    assert server.pop_events() == [
        MessageDelivered("got it"),
        NotDelivered("lost", "the client left before it was acknowledged"),
        PeerLeft(A, "quit"),
    ]


def test_reply_before_anyone_spoke() -> None:
    server = make_server()
    server.reply("hello?", 0.0)
    assert server.pop_events() == [NoRecipient("hello?", left=None)]
    session = join(server, A)  # a hello alone does not make a speaker
    server.reply("hello?", 1.0)
    assert server.pop_events() == [PeerJoined(A), NoRecipient("hello?", left=None)]
    assert drain(server, 1.0) == []
    feed(server, Data(session, 0, 0, 0, join_payload()), A, 1.5)  # nor does a join
    feed(server, Data(session, 1, 1, 0, encode_chat(AskWho())), A, 1.5)  # nor a /who
    server.reply("hello?", 2.0)
    assert server.pop_events() == [NoRecipient("hello?", left=None)]
    named, roster, ack = [message for message, _ in sent_chat(server, 2.0)]
    assert (named, ack) == (Named(A_NAME), Ack(session, 2, 2, 0, 500_000))  # held since 1.5
    assert isinstance(roster, Roster)
    assert [(e.name, e.operator) for e in roster.entries] == [(OPERATOR, True), (A_NAME, False)]


def test_has_room_follows_the_reply_targets_send_queue() -> None:
    server = make_server(Config(window=1))
    assert server.has_room()  # nobody to reply to: nothing would wait
    session = join(server, A)
    say(server, session, 0, 0, "hi", A, 0.0)  # joined by its first Say: Named, then "hi"
    drain(server, 0.0)
    server.reply("one", 1.0)
    assert not server.has_room()  # "one" waits behind the Named in the window
    feed(server, Ack(session, 1, 1, 0), A, 1.2)
    drain(server, 1.2)
    assert server.has_room()  # "one" is in flight
    server.reply("two", 1.3)
    drain(server, 1.3)
    assert not server.has_room()  # "two" waits behind the window
    feed(server, Ack(session, 2, 2, 0), A, 1.5)
    drain(server, 1.5)
    assert server.has_room()
    assert server.pending() == ["two"]
    server.receive_datagram(b"plain", B, 2.0)
    assert server.has_room()  # plain peers never queue


# -- expiry and giving up -----------------------------------------------------------------


@pytest.mark.parametrize("refresh", [say_data(0, 3, 2, "x"), Ack(0, 3, 1, 0)])
def test_session_expires_exactly_session_expiry_after_the_last_valid_datagram(
    refresh: Data | Ack,
) -> None:
    server, session = connected()
    feed(server, dataclasses.replace(refresh, session=session), A, 10.0)
    feed(server, say_data(session ^ 1, 4, 3, "not ours"), A, 20.0)  # invalid: no refresh
    server.receive_datagram(b"\xf9junk", A, 30.0)
    drain(server, 30.0)
    server.pop_events()
    assert server.get_timer() == 70.0
    server.handle_timer(math.nextafter(70.0, 0.0))
    assert (server.pop_events(), server.session_count) == ([], 1)
    server.handle_timer(70.0)
    assert server.pop_events() == [PeerLeft(A, "timed out")]
    assert (server.session_count, server.get_timer()) == (0, None)
    assert server.room.members == {}


def test_expiry_reports_unacknowledged_replies() -> None:
    config = Config(session_expiry=5.0, give_up_after=100.0, max_transmissions=100)
    server, session = connected(config)
    server.reply("are you there?", 1.0)
    assert frames_out(server, 1.0) == [(said_data(session, 3, 1, "are you there?", 1.0), A)]
    fired = run_timers(server, 5.0 + RTT)
    # Retransmissions at rto 1 s, 2 s; expiry 5 s after "hi" arrived (at RTT).
    assert [time for time, _ in fired] == [2.0, 4.0, 5.0 + RTT]
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
    say(server, session, 4, 3, "three", B, 1.0)  # pn 4 from B: newer, so the client moved
    assert server.pop_events() == [PeerMoved(A, B)]
    assert frames_out(server, 1.0) == [(Ack(session, 3, 2, 0b1), B)]
    say(server, session, 3, 2, "two", A, 2.0)  # pn 3 from A arrives late
    assert server.pop_events() == [MessageReceived(B, "two"), MessageReceived(B, "three")]
    assert frames_out(server, 2.0) == [(Ack(session, 4, 4, 0), B)]
    server.reply("to B", 3.0)
    assert frames_out(server, 3.0) == [(said_data(session, 5, 1, "to B", 3.0), B)]
    assert server.room.members[session].address == B  # the room follows the move


def test_after_a_move_the_old_address_can_start_a_new_session() -> None:
    server, old = connected()
    feed(server, Ack(old, 3, 1, 0), B, 1.0)
    new = join(server, A, nonce=6, now=2.0)
    assert new != old
    assert server.pop_events() == [PeerMoved(A, B), PeerJoined(A)]
    assert server.session_count == 2
    # B's mapping belongs to the moved session: the same welcome again.
    assert answer(server, B, 5, 3.0) == [(Welcome(5, old, 60_000), B)]


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
    server.receive_datagram(b"from B\n", B, 2.0)  # a plain peer: the room has two members
    assert server.pop_events() == [
        PresenceNoticed("joined", B_NAME, "", 2.0),
        RoomMessage(B_NAME, "from B", 2.0, "say", B),
    ]
    assert sent_chat(server, 2.0) == [
        (Presence(PresenceKind.JOINED, B_NAME, "", 2.0), A),
        (Said(B_NAME, "from B", 2.0), A),
    ]
    feed(server, Ack(session, 3, 3, 0), A, 2.5)
    server.reply("to B", 3.0)
    assert drain(server, 3.0) == [(b"to B\n", B)]  # the bare text, in B's newline style
    say(server, session, 4, 2, "A again", A, 4.0)
    assert server.pop_events() == [RoomMessage(A_NAME, "A again", 4.0, "say", A)]
    line = plain_line(Said(A_NAME, "A again", 4.0))
    assert line is not None
    assert drain(server, 4.0) == [
        (f"{line}\n".encode(), B),
        (encode_frame(Ack(session, 5, 3, 0)), A),
    ]
    server.reply("to A", 5.0)
    assert frames_out(server, 5.0) == [(said_data(session, 6, 3, "to A", 5.0), A)]


# -- size limits ------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["x", "é", "€", "🎉"])
def test_framed_reply_is_fragmented_up_to_max_message(char: str) -> None:
    server, _ = connected(Config(max_message=200, max_datagram=64))
    check_fragmented_limit(server.reply, server, char, 200, lambda text: said_payload(text, 1.0))


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


def test_max_peers_refuses_a_new_session_rather_than_evict_a_member() -> None:
    server = make_server(Config(max_peers=2))
    first = join(server, A, nonce=1, now=0.0)
    join(server, B, nonce=2, now=1.0)
    assert answer(server, C, 3, 3.0) == []  # no welcome, no state
    assert server.pop_events() == [PeerJoined(A), PeerJoined(B)]
    assert (server.session_count, server.stats["dropped:sessions-full"]) == (2, 1)
    feed(server, Ack(first, 0, 0, 0), A, 4.0)
    assert drain(server, 4.0) == []  # A's session is intact
    # A member reconnecting replaces its own session.
    assert [type(f) for f, _ in answer(server, A, 4, 5.0)] == [Welcome]


def test_max_peers_bounds_plain_peers() -> None:
    server = make_server(Config(max_peers=3))
    for i in range(10):
        server.receive_datagram(b"hi", ("198.51.100.1", 1000 + i), float(i))
        drain(server, float(i))  # the room's lines to the other plain peers
        assert server.peer_count <= 3
        assert len(server.room.members) <= 3  # a forgotten peer leaves the room too
    assert server.stats["peers_evicted"] == 7
    server.reply("last one", 10.0)
    assert drain(server, 10.0) == [(b"last one", ("198.51.100.1", 1009))]


def test_max_peers_bounds_sessions_and_plain_peers_each() -> None:
    server = make_server(Config(max_peers=3))
    for i in range(5):
        answer(server, ("198.51.100.2", 2000 + i), i, float(i))  # 3 welcomed, 2 refused
        server.receive_datagram(b"hi", ("198.51.100.1", 1000 + i), float(i))
        drain(server, float(i))  # welcomes, and the room's lines to the other plain peers
    assert server.session_count == 3
    assert server.peer_count == 6  # three sessions and three plain peers


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xf9", "truncated"),
        (bytes([MAGIC, 1, 1]) + bytes(12), "bad-version"),
        (encode_frame(Hello(1))[:-1] + b"\x00", "bad-checksum"),
        (checksummed(bytes([MAGIC, VERSION, 0x09])), "bad-type"),
        (checksummed(bytes([MAGIC, VERSION, 0x01]) + bytes(3)), "bad-length"),
        (checksummed(bytes([MAGIC, VERSION, 0x03]) + bytes(16) + b"\x80"), "bad-flags"),
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
    # Sizes with the 4-byte CRC trailer each frame ends in; a Data frame is 24 bytes
    # and its chat payload: Say("abc") 8, Named(A_NAME) 20, B's Presence 33 and Said 36.
    server = make_server()
    session = join(server, A)  # hello 31 in, challenge 48 out, hello 31 in, welcome 27 out
    say(server, session, 0, 0, "abc", A, 0.0)  # 32 in: A joins by it
    drain(server, 0.0)  # Named 44 out, ack 35 out
    feed(server, Ack(session, 1, 1, 0), A, 0.5)  # 35 in
    server.receive_datagram(b"xy\n", B, 0.5)  # 3 in: B joins and speaks, which A hears
    server.reply("hello", 1.0)  # to B: 6 out
    server.receive_datagram(b"\xf9", C, 2.0)  # 1 in, dropped
    assert [len(data) for data, _ in drain(server, 2.0)] == [6, 57, 60]
    stats = server.stats
    assert (stats["datagrams_in"], stats["bytes_in"]) == (6, 31 + 31 + 32 + 35 + 3 + 1)
    assert (stats["datagrams_out"], stats["bytes_out"]) == (7, 48 + 27 + 44 + 35 + 6 + 57 + 60)
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
    # Chat messages (joins, names good and bad, commands; damaged ones) the sessions take.
    st.builds(Data, ids, u32s, st.integers(0, 6), st.just(0), chat_payloads),
    st.builds(Data, ids, u32s, st.integers(0, 6), st.sampled_from([0, FLAG_MORE]), chat_payloads),
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
#: What the operator may do instead of a datagram arriving.
OPERATOR_ACTIONS = ["reply", "all", "to", "who"]
steps = st.lists(
    st.tuples(
        delays,
        st.sampled_from(ADDRESSES),
        mixed(
            (2, datagrams),
            (1, st.builds(Hello, st.integers(1, 3)).map(encode_frame)),  # sessions to talk in
            (2, in_order_chat),  # from the session of that address, if it has one
            (1, st.sampled_from(OPERATOR_ACTIONS)),
        ),
    ),
    max_size=50,
)


@settings(max_examples=MORE_EXAMPLES, deadline=None)
@given(steps, st.integers(1, 3), st.integers(1, 3))
def test_arbitrary_traffic_never_raises(
    script: list[tuple[float, Address, bytes | InOrder | str]], max_peers: int, max_clients: int
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
        max_clients=max_clients,
        rate_burst=3,
        plain_expiry=5.0,
        history_count=3,
    )
    server = ServerCore(config, randbits=lambda bits: next(counter))
    heard: set[Address] = set()
    arrived = 0
    now = 0.0
    for delay, addr, data in script:
        now += delay
        run_timers(server, now)
        if isinstance(data, InOrder):
            session_id = server._by_addr.get(addr)
            if session_id is not None:
                feed(server, data.frame(server._clients[session_id].session), addr, now)
                arrived += 1
        elif isinstance(data, bytes):
            server.receive_datagram(data, addr, now)
            heard.add(addr)
            arrived += 1
        elif data == "reply":
            server.reply("réponse", now)
        elif data == "all":
            server.say_all("à tous", now)
        elif data == "to":
            server.say_to(A_NAME, "à toi", now)
        else:
            server.who(now)
        for out, to in drain(server, now):
            assert to in heard
            assert len(out) <= config.max_datagram
        assert server.session_count <= max_peers
        assert server.peer_count - server.session_count <= max_peers
        # The room holds only the living: sessions still open, plain peers remembered.
        members = server.room.members
        assert len(members) <= max_clients
        for member in members:
            assert member in (server._clients if isinstance(member, int) else server._plain)
        server.pop_events()
    assert server.stats["datagrams_in"] == arrived


def test_an_ended_session_is_remembered_until_it_would_have_expired() -> None:
    config = Config()
    server, session = connected(config)
    feed(server, Bye(session, 3, 1), A, 1.0)
    server.pop_events()
    say(server, session, 4, 2, "late", A, 2.0)
    assert frames_out(server, 2.0) == [(Reset(session, 2, known=True), A)]
    later = 1.0 + config.session_expiry
    say(server, session, 5, 2, "much later", A, later)
    assert frames_out(server, later) == [(Reset(session), A)]


def test_welcome_tells_the_session_expiry() -> None:
    server = make_server(Config(session_expiry=12.5))
    [(welcome, _)] = answer(server, A, 9, 0.0)
    assert isinstance(welcome, Welcome)
    assert welcome.expiry_ms == 12_500


# -- the room, at the session level ------------------------------------------------------------


def test_a_join_names_the_member_and_a_say_before_any_join_joins_by_address() -> None:
    server = make_server()
    named = join(server, A, nonce=1)
    feed(server, Data(named, 0, 0, 0, join_payload("alice")), A, 0.0)
    assert sent_chat(server, 0.0) == [(Named("alice"), A), (Ack(named, 1, 1, 0), A)]
    unnamed = join(server, B, nonce=2)
    say(server, unnamed, 0, 0, "no join first", B, 0.5)
    sent = sent_chat(server, 0.5)
    assert [m for m, to in sent if to == A] == [
        Presence(PresenceKind.JOINED, B_NAME, "", 0.5),
        Said(B_NAME, "no join first", 0.5),
    ]
    assert [m for m, to in sent if to == B] == [Named(B_NAME), Ack(unnamed, 1, 1, 0)]
    assert server.room.name_of(named) == "alice"
    assert server.room.name_of(unnamed) == B_NAME
    assert server.pop_events() == [
        PeerJoined(A),
        PeerJoined(B),
        PresenceNoticed("joined", B_NAME, "", 0.5),  # a second member: now it is a room
        RoomMessage(B_NAME, "no join first", 0.5, "say", B),
    ]
    server.reply("to the last speaker only", 1.0)
    assert sent_chat(server, 1.0) == [
        (Said(OPERATOR, "to the last speaker only", 1.0, SaidKind.REPLY), B),
    ]


def test_a_late_join_renames_the_auto_joined_member() -> None:
    server = make_server()
    session = join(server, A)
    say(server, session, 0, 0, "hi", A, 0.0)
    feed(server, Data(session, 1, 1, 0, join_payload("alice")), A, 0.0)
    assert [m for m, _ in sent_chat(server, 0.0)] == [
        Named(A_NAME),
        Named("alice"),
        Ack(session, 2, 2, 0),
    ]
    assert server.pop_events() == [PeerJoined(A), MessageReceived(A, "hi")]  # one member


def test_a_taken_or_bad_name_is_refused_and_the_member_named_by_address() -> None:
    server = make_server()
    for nonce, (addr, wanted) in enumerate([(A, OPERATOR), (B, "two words")], start=1):
        session = join(server, addr, nonce=nonce)
        feed(server, Data(session, 0, 0, 0, join_payload(wanted)), addr, 0.0)
        refused, named, *_ = [m for m, to in sent_chat(server, 0.0) if to == addr]
        assert isinstance(refused, Refused)
        assert refused.why == RefusedWhy.NAME
        assert named == Named(server.room.name_of(session) or "?")
    assert sorted(m.name for m in server.room.members.values()) == [A_NAME, B_NAME]


def test_classic_while_alone_a_room_with_two_and_presence_only_for_a_room() -> None:
    server, a = connected()
    b = enter(server, B, "bob", nonce=9, now=1.0)
    drain(server, 1.0 + RTT)
    assert server.pop_events() == [PeerJoined(B), PresenceNoticed("joined", "bob", "", 1.0)]
    say(server, a, 3, 2, "now a room", A, 2.0)
    feed(server, Data(b, 2, 1, 0, encode_chat(Act("waves"))), B, 2.0)
    assert server.pop_events() == [
        RoomMessage(A_NAME, "now a room", 2.0, "say", A),
        RoomMessage("bob", "waves", 2.0, "act", B),
    ]
    feed(server, Data(b, 3, 2, 0, encode_chat(Quit("bye"))), B, 3.0)  # leaves the room ...
    assert server.pop_events() == [PresenceNoticed("left", "bob", "quit: bye", 3.0)]
    assert server.session_count == 2  # ... its session ends with its Bye
    say(server, a, 4, 3, "alone again", A, 4.0)
    assert server.pop_events() == [MessageReceived(A, "alone again")]  # classic once more
    feed(server, Data(a, 5, 4, 0, encode_chat(Act("shrugs"))), A, 4.0)
    assert server.pop_events() == [RoomMessage(A_NAME, "shrugs", 4.0, "act", A)]


def test_a_whisper_reaches_one_member_and_an_unknown_name_is_refused() -> None:
    server, a = connected()
    b = enter(server, B, "bob", nonce=9, now=1.0)
    feed(server, Ack(a, 3, 2, 0), A, 1.5)  # the Presence of bob
    feed(server, Data(b, 2, 1, 0, encode_chat(Whisper(A_NAME, "psst"))), B, 2.0)
    feed(server, Data(b, 3, 2, 0, encode_chat(Whisper("nobody", "hello?"))), B, 2.0)
    feed(server, Data(b, 4, 3, 0, encode_chat(Whisper(OPERATOR, "to the operator"))), B, 2.0)
    sent = [(m, to) for m, to in sent_chat(server, 2.0) if not isinstance(m, Ack)]
    assert [m for m, to in sent if to == A] == [Said("bob", "psst", 2.0, SaidKind.PRIVATE)]
    assert [m for m, to in sent if to == B] == [
        Refused(
            RefusedWhy.NO_SUCH_MEMBER,
            "no one here is called 'nobody' (try /who); that message was not sent",
        ),
    ]
    assert server.pop_events()[-1] == RoomMessage("bob", "to the operator", 2.0, "private", B)


def test_a_rename_and_a_who_through_the_session() -> None:
    server, a = connected()
    feed(server, Data(a, 3, 2, 0, encode_chat(Rename("alice"))), A, 1.0)
    feed(server, Data(a, 4, 3, 0, encode_chat(AskWho())), A, 1.0)
    named, roster, ack = [m for m, _ in sent_chat(server, 1.0)]
    assert (named, ack) == (Named("alice"), Ack(a, 5, 4, 0))
    assert isinstance(roster, Roster)
    assert roster.entries[1:] == (RosterEntry("alice", 0),)  # "hi" was said at RTT
    assert roster.entries[0].name == OPERATOR
    assert roster.entries[0].operator
    assert server.pop_events() == []  # one member: the rename is not shown
    assert server.room.name_of(a) == "alice"


def test_a_member_over_the_rate_limit_is_told_to_slow_down_yet_acked() -> None:
    server, a = connected(Config(rate_limit=1.0, rate_burst=2))  # "hi" took one of two tokens
    say(server, a, 3, 2, "second", A, 1.0)  # the other, with two thirds of one refilled
    say(server, a, 4, 3, "too fast", A, 1.0)
    assert server.pop_events() == [MessageReceived(A, "second")]
    [refused, ack] = [m for m, _ in sent_chat(server, 1.0)]
    assert isinstance(refused, Refused)
    assert refused.why == RefusedWhy.SLOW_DOWN
    assert ack == Ack(a, 4, 4, 0)  # both acknowledged: the refusal says what happened
    say(server, a, 5, 4, "later", A, 2.0)  # a token came back
    assert server.pop_events() == [MessageReceived(A, "later")]


def test_no_rate_limit_with_rate_limit_zero() -> None:
    server, a = connected(Config(rate_limit=0))
    for i in range(50):
        say(server, a, 3 + i, 2 + i, f"m{i}", A, 1.0)
    assert server.pop_events() == [MessageReceived(A, f"m{i}") for i in range(50)]
    assert [m for m, _ in sent_chat(server, 1.0)] == [Ack(a, 3, 52, 0)]


def test_a_full_room_refuses_a_session_and_a_plain_peer() -> None:
    server, _ = connected(Config(max_clients=1))
    late = join(server, B, nonce=9, now=1.0)
    feed(server, Data(late, 0, 0, 0, join_payload("bob")), B, 1.0)
    [refused, ack] = [m for m, _ in sent_chat(server, 1.0)]
    assert isinstance(refused, Refused)
    assert refused.why == RefusedWhy.ROOM_FULL
    assert ack == Ack(late, 1, 1, 0)
    assert server.pop_events() == [PeerJoined(B)]
    assert late not in server.room.members
    server.receive_datagram(b"me too\n", C, 2.0)
    assert drain(server, 2.0) == [(b"*** the room is full (1 members)\n", C)]
    assert server.stats["dropped:room-full"] == 2
    assert server.pop_events() == []


def test_pending_and_has_room_count_only_what_the_operator_typed() -> None:
    server, a = connected(Config(window=1))
    b = join(server, B, nonce=9, now=1.0)
    feed(server, Data(b, 0, 0, 0, join_payload("bob")), B, 1.0)
    drain(server, 1.0)  # A: a Presence in flight; bob: its Named, its history waits
    assert server.pending() == []  # none of that was typed by the operator
    say(server, a, 3, 2, "hi again", A, 1.5)
    server.reply("queued behind the presence", 1.5)
    drain(server, 1.5)
    assert server.pending() == ["queued behind the presence"]
    assert not server.has_room()  # the reply waits behind the window
    feed(server, Ack(a, 4, 2, 0), A, 1.8)  # the Presence
    drain(server, 1.8)
    assert server.has_room()


def test_the_operators_all_and_to_go_through_the_room() -> None:
    server, a = connected()
    b = enter(server, B, "bob", nonce=9, now=1.0)
    feed(server, Ack(a, 3, 2, 0), A, 1.5)  # the Presence of bob
    server.say_all("to everyone", 2.0)
    server.say_to("bob", "to bob", 2.0)
    server.say_to("nobody", "to no one", 2.0)
    sent = sent_chat(server, 2.0)
    assert [m for m, to in sent if to == A] == [Said(OPERATOR, "to everyone", 2.0)]
    assert [m for m, to in sent if to == B] == [
        Said(OPERATOR, "to everyone", 2.0),
        Said(OPERATOR, "to bob", 2.0, SaidKind.PRIVATE),
    ]
    assert sorted(server.pending()) == ["to bob", "to everyone", "to everyone"]  # one each
    assert server.pop_events() == [
        PeerJoined(B),
        PresenceNoticed("joined", "bob", "", 1.0),
        CommandRejected("no one here is called 'nobody' (try /who)"),
    ]
    feed(server, Ack(a, 4, 3, 0), A, 2.5)
    feed(server, Ack(b, 2, 4, 0), B, 2.5)
    assert server.pending() == []


def test_history_replayed_to_a_newcomer_is_not_the_operator_speaking_again() -> None:
    # Regression: the replay of an operator's /all line went out with the operator's
    # text, so it was pending again and reported MessageDelivered a second time.
    server, a = connected()
    server.say_all("hello room", 1.0)
    drain(server, 1.0)
    feed(server, Ack(a, 3, 2, 0), A, 1.2)
    assert server.pop_events() == [MessageDelivered("hello room")]  # delivered, once
    b = join(server, B, nonce=9, now=2.0)
    feed(server, Data(b, 0, 0, 0, join_payload("bob")), B, 2.0)
    history = [m for m, to in sent_chat(server, 2.0) if to == B and isinstance(m, Said)]
    assert history == [
        Said(A_NAME, "hi", RTT, SaidKind.SAY, history=True),
        Said(OPERATOR, "hello room", 1.0, SaidKind.SAY, history=True),
    ]
    assert server.pending() == []
    feed(server, Ack(b, 1, 3, 0), B, 2.5)
    assert MessageDelivered("hello room") not in server.pop_events()


def test_plain_expiry_is_handled_when_due() -> None:
    # Regression (found by the fuzz test above): expire_plain compared
    # now - last_spoke >= plain_expiry while get_timer() reported last_spoke +
    # plain_expiry; in floats the first can be false at the second, so the timer
    # stayed due and the I/O layer would spin.
    server = make_server(Config(plain_expiry=5.0))
    spoke = 3.2  # (3.2 + 5.0) - 3.2 == 4.999999999999999
    server.receive_datagram(b"hi\n", B, spoke)
    assert server.get_timer() == spoke + 5.0
    server.handle_timer(spoke + 5.0)
    assert server.room.members == {}
    timer = server.get_timer()
    assert timer is None or timer > spoke + 5.0
