"""Bundles: whole messages waiting together for a session leave as one packet.

The sender packs them when it first sends (never a fragment, never a keepalive,
never past one datagram); an ack of the packet completes them all; the receiver
takes them apart in order, and refuses (without acknowledging) a bundle whose
lengths do not tile it. The cores' tier-1 tests run one message per packet
(``one_per_packet``); here both cores bundle, as they do by default.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core_helpers import (
    ROOM_KEY,
    SERVER,
    Pair,
    connect,
    enter,
    feed,
    frames_out,
    make_client,
    make_server,
    open_any,
    run_timers,
    said_payload,
    say_data,
)
from tests.test_reliable import make_receiver, make_sender
from trio_udpchat._chat import Said, decode_chat_untrusted
from trio_udpchat._config import Config
from trio_udpchat._crypto import RoomKey
from trio_udpchat._events import Address, MessageDelivered, MessageReceived
from trio_udpchat._reliable import Sender
from trio_udpchat._wire import (
    DATA_OVERHEAD,
    FLAG_BUNDLE,
    FLAG_KEEPALIVE,
    FLAG_MORE,
    Ack,
    Data,
    encode_bundle,
    split_bundle,
)

A: Address = ("192.0.2.1", 40001)
B: Address = ("192.0.2.2", 40002)
SMALL = Config(max_datagram=64)  # 40 payload bytes per packet
ROOM = SMALL.max_datagram - DATA_OVERHEAD


# -- the sender --------------------------------------------------------------------------


def test_messages_queued_together_leave_as_one_bundle_and_one_ack_completes_them() -> None:
    out = make_sender(SMALL)
    messages = [out.offer(text, text.encode()) for text in ["a", "bb", "ccc"]]
    [packet] = out.transmit(0.0)
    assert (packet.seq, packet.flags, packet.message) == (0, FLAG_BUNDLE, None)
    assert split_bundle(packet.payload) == [b"a", b"bb", b"ccc"]
    assert out.in_flight == 1
    assert out.unacknowledged() == messages
    assert out.on_ack(1, 0, 0.1) == messages
    assert out.unacknowledged() == []


def test_a_bundle_never_outgrows_a_packet() -> None:
    out = make_sender(SMALL)
    # 2 + 18 + 2 + 18 = 40 fits; a third does not, nor would a 17-byte message.
    for text in ["x" * 18, "y" * 18, "z" * 17]:
        out.offer(text, text.encode())
    first, second = out.transmit(0.0)
    assert len(first.payload) == ROOM
    assert split_bundle(first.payload) == [b"x" * 18, b"y" * 18]
    assert (second.flags, second.payload) == (0, b"z" * 17)  # alone: not a bundle of one


def test_fragments_and_keepalives_are_never_bundled() -> None:
    out = make_sender(replace(SMALL, window=2))
    out.offer("big", bytes(2 * ROOM + 1))  # three fragments, the last one with flags 0
    out.offer("a", b"a")
    out.offer("b", b"b")
    assert [p.flags for p in out.transmit(0.0)] == [FLAG_MORE, FLAG_MORE]
    assert out.on_ack(2, 0, 0.1) == []
    # The last fragment heads the queue with flags 0, whole messages behind it: alone.
    last, bundle = out.transmit(0.1)
    assert (last.seq, last.flags, last.payload) == (2, 0, b"\x00")
    assert (bundle.seq, split_bundle(bundle.payload)) == (3, [b"a", b"b"])
    out.keepalive()
    out.offer("c", b"c")
    assert out.on_ack(4, 0, 0.2) is not None
    keepalive, alone = out.transmit(0.2)
    assert (keepalive.flags, alone.flags, alone.payload) == (FLAG_KEEPALIVE, 0, b"c")


def test_messages_wait_for_the_window_and_then_go_together() -> None:
    stats: Counter[str] = Counter()
    out = Sender(replace(SMALL, window=1), stats)
    out.offer("a", b"a")
    assert [p.payload for p in out.transmit(0.0)] == [b"a"]
    for text in ["b", "c", "d"]:
        out.offer(text, text.encode())  # the window is full: they queue
    assert out.transmit(0.0) == []
    assert [m.text for m in out.on_ack(1, 0, 0.1) or []] == ["a"]
    [bundle] = out.transmit(0.1)
    assert split_bundle(bundle.payload) == [b"b", b"c", b"d"]
    assert stats["bundled"] == 3


def test_a_lost_bundle_is_sent_again_whole_and_its_messages_fail_together() -> None:
    stats: Counter[str] = Counter()
    out = Sender(replace(SMALL, max_transmissions=2, rto_initial=1.0), stats)
    for text in ["a", "b"]:
        out.offer(text, text.encode())
    [bundle] = out.transmit(0.0)
    assert out.transmit(0.5) == []
    [again] = out.transmit(1.0)
    assert again is bundle
    assert again.payload == encode_bundle([b"a", b"b"])
    assert stats["retransmissions"] == 1
    assert not out.failed(1.5)
    deadline = out.deadline()
    assert deadline is not None
    assert out.failed(deadline)
    assert [m.text for m in out.unacknowledged()] == ["a", "b"]  # what gets reported


def test_without_bundles_each_message_has_its_own_packet() -> None:
    out = make_sender(replace(SMALL, bundle=False))
    for text in ["a", "b", "c"]:
        out.offer(text, text.encode())
    assert [(p.seq, p.flags, p.payload) for p in out.transmit(0.0)] == [
        (0, 0, b"a"),
        (1, 0, b"b"),
        (2, 0, b"c"),
    ]


# -- the receiver ------------------------------------------------------------------------


def test_a_bundle_gives_its_messages_in_order_with_what_was_waiting_for_it() -> None:
    into = make_receiver(SMALL)
    assert into.on_data(1, 0, b"after", 0.0) == []  # out of order: held
    assert into.on_data(0, FLAG_BUNDLE, encode_bundle([b"x", b"", b"yz"]), 0.0) == [
        b"x",
        b"",
        b"yz",
        b"after",
    ]
    assert into.ack_fields() == (2, 0)


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x05abc", b"\x00\x01ab"])
def test_a_bundle_that_does_not_tile_is_dropped_unacknowledged(payload: bytes) -> None:
    into = make_receiver(SMALL)
    assert into.on_data(0, FLAG_BUNDLE, payload, 0.0) == []
    assert into.stats["dropped:bad-bundle"] == 1
    assert into.ack_deadline() is None  # the sender will try again (and give up)
    assert into.on_data(0, 0, b"ok", 0.1) == [b"ok"]  # the seq is still free


def test_a_bundle_inside_a_fragmented_message_ends_that_message() -> None:
    into = make_receiver(SMALL)
    assert into.on_data(0, FLAG_MORE, b"half", 0.0) == []
    assert into.on_data(1, FLAG_BUNDLE, encode_bundle([b"a"]), 0.0) == [b"a"]
    assert into.stats["dropped:bad-bundle"] == 1
    assert into.on_data(2, 0, b"whole", 0.0) == [b"whole"]  # not "halfwhole"


def test_a_bundled_message_over_the_limit_is_dropped_alone() -> None:
    config = replace(Config(), max_message=4, message_overhead=0)
    into = make_receiver(config)
    assert into.on_data(0, FLAG_BUNDLE, encode_bundle([b"ok", b"too long", b"ok2"]), 0.0) == [
        b"ok",
        b"ok2",
    ]
    assert into.stats["dropped:oversized"] == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.binary(max_size=30), st.binary(min_size=41, max_size=130)),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.integers(1, 40), min_size=1, max_size=20),
)
def test_whatever_is_offered_arrives_whole_in_order_and_no_packet_is_too_big(
    payloads: list[bytes], flush_after: list[int]
) -> None:
    """Offers in bursts of ``flush_after`` (cycling), a flush after each burst, over a
    lossless link: the messages arrive as offered, every packet fits a datagram."""
    config = replace(SMALL, window=4, send_queue=1000)
    out, into = make_sender(config), make_receiver(config)
    got: list[bytes] = []
    offered = 0
    now = 0.0
    for round_ in range(400):
        burst = flush_after[round_ % len(flush_after)]
        for payload in payloads[offered : offered + burst]:
            assert out.offer(None, payload) is not None
        offered = min(offered + burst, len(payloads))
        for packet in out.transmit(now):
            assert len(packet.payload) <= ROOM
            got += into.on_data(packet.seq, packet.flags, packet.payload, now)
        next_seq, bitmap = into.ack_fields()
        assert out.on_ack(next_seq, bitmap, now + 0.01) is not None
        now += 0.01
        if offered == len(payloads) and out.in_flight == 0 and out.queued == 0:
            break
    assert got == payloads


# -- through the cores -------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, ROOM_KEY], ids=["clear", "sealed"])
def test_a_relay_sends_each_member_one_datagram_for_messages_said_together(
    key: RoomKey | None,
) -> None:
    server = make_server(key=key, bundles=True)
    a = enter(server, A, "alice")
    b = enter(server, B, "bob", nonce=9, now=1.0)  # alice is told of bob (seq 1) ...
    feed(server, Ack(a, 2, 2, 0), A, 1.5)  # ... and acknowledges it
    texts = ["one", "two", "three"]
    for i, text in enumerate(texts):  # one batch from the socket, one flush
        feed(server, say_data(b, 2 + i, 1 + i, text), B, 2.0)
    to_alice = [frame for frame, to in frames_out(server, 2.0) if to == A]
    [bundle] = [frame for frame in to_alice if isinstance(frame, Data)]
    assert bundle.flags == FLAG_BUNDLE
    said = [decode_chat_untrusted(part) for part in split_bundle(bundle.payload)]
    assert said == [Said("bob", text, 2.0) for text in texts]
    assert server.stats["bundled"] == 3
    assert bundle.seq == 2
    feed(server, Ack(a, 3, 3, 0), A, 2.1)  # one ack for the three
    later = [open_any(data) for _, out in run_timers(server, 40.0) for data, to in out if to == A]
    resent = [frame for frame in later if isinstance(frame, Data) and frame.seq <= 2]
    assert resent == []


def test_a_client_bundles_what_its_user_typed_together_and_the_server_takes_it_apart() -> None:
    pair = Pair(bundles=True)
    pair.connect()
    since = pair.now = 1.0
    for text in ["a", "b", "c"]:
        pair.client.send_text(text, pair.now)
    pair.exchange()
    data = [f for f in pair.frames(from_client=True, since=since) if isinstance(f, Data)]
    assert [(f.flags, len(split_bundle(f.payload))) for f in data] == [(FLAG_BUNDLE, 3)]
    received = [e for e in pair.server.pop_events() if isinstance(e, MessageReceived)]
    assert [e.text for e in received] == ["a", "b", "c"]
    delivered = [e for e in pair.client.pop_events() if isinstance(e, MessageDelivered)]
    assert [e.text for e in delivered] == ["a", "b", "c"]


def test_a_client_shows_a_bundle_from_the_server_in_order_and_acks_it_once() -> None:
    client = make_client(bundles=True)
    connect(client, 77, 0.0)
    client.pop_events()
    payload = encode_bundle([said_payload("first"), said_payload("second")])
    feed(client, Data(77, 1, 0, FLAG_BUNDLE, payload), SERVER, 1.0)
    assert client.pop_events() == [
        MessageReceived(SERVER, "first"),
        MessageReceived(SERVER, "second"),
    ]
    assert frames_out(client, 1.0) == [(Ack(77, 1, 1, 0), SERVER)]
