"""Tier 1 and 2 tests of reliable delivery: ``Sender``, ``Receiver``, ``RttEstimator``,
``expand_u32`` and ``Session``, all with explicit time."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_udpchat._config import Config
from trio_udpchat._events import Address
from trio_udpchat._reliable import UNREPORTED, Message, Packet, Receiver, Sender, expand_u32
from trio_udpchat._rtt import RttEstimator
from trio_udpchat._session import Session
from trio_udpchat._wire import (
    DATA_OVERHEAD,
    FLAG_KEEPALIVE,
    Ack,
    Bye,
    Data,
    SessionFrame,
    decode_frame_untrusted,
)

WRAP = 2**32
A: Address = ("192.0.2.1", 40001)
B: Address = ("192.0.2.2", 40002)
#: At least this many examples; a profile asking for more (``fuzz``) wins.
MORE_EXAMPLES = max(200, settings().max_examples)
#: Config(max_datagram=64) leaves this many payload bytes per packet.
SMALL_CHUNK = 64 - DATA_OVERHEAD


def config(**overrides: Any) -> Config:
    """A config whose messages each go in a packet of their own: these tests are
    about packets (bundles have their own, in test_bundles)."""
    return Config(**{"bundle": False, **overrides})


def make_sender(cfg: Config | None = None) -> Sender:
    return Sender(cfg or config(), Counter())


def make_receiver(cfg: Config | None = None, next_seq: int = 0) -> Receiver:
    return Receiver(cfg or Config(), Counter(), next_seq)


def offer_all(sender: Sender, texts: Sequence[str]) -> list[Message]:
    messages = [sender.offer(text, text.encode()) for text in texts]
    assert all(m is not None for m in messages)
    return [m for m in messages if m is not None]


def seqs(packets: list[Packet]) -> list[int]:
    return [packet.seq for packet in packets]


def pump(
    sender: Sender,
    receiver: Receiver,
    now: float,
    lose: Callable[[Packet], bool] = lambda packet: False,
) -> list[bytes]:
    """Send what ``sender`` has at ``now`` (seq modulo 2**32, as on the wire), deliver what
    ``lose`` spares, ack back, until nothing more goes out; return the messages received."""
    received: list[bytes] = []
    for _ in range(10_000):
        packets = sender.transmit(now)
        if not packets:
            return received
        for packet in packets:
            if not lose(packet):
                received += receiver.on_data(packet.seq % WRAP, packet.flags, packet.payload, now)
        sender.on_ack(*receiver.ack_fields(), now)
    raise AssertionError("the sender never runs dry")


def deliver_until_done(
    sender: Sender, receiver: Receiver, lose: Callable[[Packet], bool]
) -> list[bytes]:
    """:func:`pump` at every deadline until nothing is in flight."""
    received = pump(sender, receiver, 0.0, lose)
    while (due := sender.deadline()) is not None:
        assert not sender.failed(due)
        received += pump(sender, receiver, due, lose)
    return received


# -- retransmission timing --------------------------------------------------------------


def test_first_retransmit_exactly_at_rto_initial() -> None:
    sender = make_sender()
    offer_all(sender, ["a"])
    [packet] = sender.transmit(10.0)
    assert (packet.seq, packet.transmissions, packet.flags) == (0, 1, 0)
    assert sender.deadline() == 11.0
    assert sender.transmit(math.nextafter(11.0, 0.0)) == []
    assert sender.transmit(11.0) == [packet]
    assert packet.transmissions == 2
    assert sender.deadline() == 11.0 + 2.0
    assert sender._stats["retransmissions"] == 1


def test_backoff_doubles_per_transmission_up_to_rto_max_then_fails() -> None:
    cfg = config(rto_initial=1.0, rto_max=10.0, max_transmissions=9, give_up_after=1000.0)
    sender = make_sender(cfg)
    offer_all(sender, ["a"])
    sender.transmit(0.0)
    sent_at = [0.0]
    while (due := sender.deadline()) is not None and not sender.failed(due):
        # As the cores do: check failed() at the timer, then transmit.
        assert not sender.failed(math.nextafter(due, 0.0))
        assert len(sender.transmit(due)) == 1
        sent_at.append(due)
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    # The 9th send was the last: its deadline is the failure time, not a moment before.
    assert due == sent_at[-1] + 10.0
    assert not sender.failed(math.nextafter(due, 0.0))


def test_transmit_never_exceeds_max_transmissions() -> None:
    sender = make_sender(config(max_transmissions=2))
    offer_all(sender, ["a"])
    sender.transmit(0.0)
    sender.transmit(1.0)
    assert sender.failed(3.0)
    sender.transmit(3.0)  # e.g. the client's flush after a datagram that arrived at 3.0
    assert sender.failed(3.0)


def test_sender_stops_at_max_transmissions() -> None:
    sender = make_sender(config(max_transmissions=3))
    offer_all(sender, ["a"])
    times = []
    now = 0.0
    while not sender.failed(now):
        if sender.transmit(now):
            times.append(now)
        due = sender.deadline()
        assert due is not None
        now = due
    assert times == [0.0, 1.0, 3.0]
    assert now == 7.0


def test_failed_after_give_up_after() -> None:
    sender = make_sender(config(give_up_after=2.5, max_transmissions=100))
    offer_all(sender, ["a"])
    sender.transmit(0.0)
    assert sender.transmit(1.0)
    assert sender.deadline() == 2.5  # before the next retransmission at 3.0
    assert not sender.failed(math.nextafter(2.5, 0.0))
    assert sender.failed(2.5)


@pytest.mark.parametrize(("first_sent", "give_up_after"), [(0.3, 0.6), (2.3, 30.0)])
def test_failed_at_the_give_up_deadline(first_sent: float, give_up_after: float) -> None:
    # Sums that are not exact in binary: the deadline and the check must agree anyway.
    sender = make_sender(config(give_up_after=give_up_after, max_transmissions=100))
    offer_all(sender, ["a"])
    sender.transmit(first_sent)
    now = first_sent
    for _ in range(100):
        due = sender.deadline()
        assert due is not None
        assert due >= now
        now = due
        if sender.failed(now):
            break
        sender.transmit(now)
    assert sender.failed(now)
    assert now == first_sent + give_up_after


@pytest.mark.parametrize(
    ("sample", "expected_rto"),
    # RFC 6298: srtt -> sample, rttvar -> 0, rto = srtt + max(G, 4 * rttvar), clamped;
    # plus the peer's ack delay (RFC 9002's PTO), 25 ms by default.
    [(0.01, 0.2), (0.5, 0.526), (20.0, 10.0)],
)
def test_rtt_estimate_converges(sample: float, expected_rto: float) -> None:
    rtt = RttEstimator(Config())
    rtt.sample(sample * 3)
    for _ in range(200):
        rtt.sample(sample)
    assert rtt.srtt == pytest.approx(sample)
    assert rtt.rttvar == pytest.approx(0.0, abs=1e-9)
    assert rtt.rto == pytest.approx(expected_rto)


def test_negative_sample_counts_as_zero() -> None:
    rtt = RttEstimator(Config())
    rtt.sample(-1.0)
    assert (rtt.srtt, rtt.rttvar, rtt.rto) == (0.0, 0.0, 0.2)


@pytest.mark.parametrize(
    ("rto", "expected"),
    [(1.0, [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]), (0.2, [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0])],
)
def test_backed_off_doubles_and_caps(rto: float, expected: list[float]) -> None:
    rtt = RttEstimator(config(rto_initial=rto))
    assert [rtt.backed_off(n) for n in range(1, len(expected) + 1)] == expected


def test_backed_off_stays_capped_for_any_transmission_count() -> None:
    assert RttEstimator(Config()).backed_off(2000) == Config().rto_max


# -- fast retransmit --------------------------------------------------------------------------


@pytest.mark.parametrize("after", [1, 3])
def test_fast_retransmit_after_acks_skip_a_packet(after: int) -> None:
    sender = make_sender(config(fast_retransmit_after=after))
    offer_all(sender, ["a", "b", "c", "d", "e"])
    first, *_ = sender.transmit(0.0)
    for i in range(1, after + 1):  # each ack reports one more packet past seq 0
        now = i / 10
        assert sender.transmit(now) == []
        assert sender.on_ack(0, (1 << i) - 1, now) == []  # selective: completes nothing
    now = after / 10
    assert sender.deadline() == now
    assert sender.transmit(now) == [first]
    assert first.transmissions == 2
    # A fast retransmission does not back the timeout off.
    assert first.deadline == now + sender.rtt.backed_off(1)
    assert seqs(sender.transmit(now)) == []  # nothing else was skipped often enough


def test_fast_retransmit_happens_once_per_packet_then_timeouts_take_over() -> None:
    sender = make_sender(config(fast_retransmit_after=2))
    offer_all(sender, ["a", "b", "c", "d", "e", "f"])
    sender.transmit(0.0)
    sender.on_ack(0, 0b1, 0.1)
    sender.on_ack(0, 0b11, 0.2)
    [packet] = sender.transmit(0.2)
    assert packet.seq == 0
    sender.on_ack(0, 0b111, 0.3)
    sender.on_ack(0, 0b1111, 0.4)
    sender.on_ack(0, 0b11111, 0.45)
    assert sender.transmit(0.45) == []  # no second fast retransmission
    due = sender.deadline()
    assert due == packet.deadline
    assert seqs(sender.transmit(due)) == [0]  # the timeout, which now doubles
    assert packet.timeouts == 1
    assert packet.deadline == due + sender.rtt.backed_off(2)


# -- acks -------------------------------------------------------------------------------------


def test_cumulative_ack_completes_messages_in_order() -> None:
    sender = make_sender()
    a, b, c = offer_all(sender, ["a", "b", "c"])
    sender.transmit(0.0)
    assert sender.on_ack(2, 0, 0.1) == [a, b]
    assert sender.in_flight == 1
    assert sender.on_ack(3, 0, 0.2) == [c]
    assert sender.in_flight == 0
    assert sender.unacknowledged() == []


def test_selective_ack_stops_retransmission_but_completes_nothing() -> None:
    sender = make_sender()
    sender_a, b = offer_all(sender, ["a", "b"])
    sender.transmit(0.0)
    assert sender.on_ack(0, 0b1, 0.1) == []  # b held out of order behind a
    assert [m.text for m in sender.unacknowledged()] == ["a", "b"]
    assert seqs(sender.transmit(1.0)) == [0]  # only the gap is retransmitted
    assert sender.on_ack(2, 0, 1.1) == [sender_a, b]


def test_message_completes_only_when_every_fragment_is_cumulatively_acked() -> None:
    sender = make_sender()
    size = Config().max_datagram - DATA_OVERHEAD
    [message] = offer_all(sender, ["x" * (2 * size + 1)])
    assert message.unacked == 3
    sender.transmit(0.0)
    assert sender.on_ack(2, 0, 0.1) == []
    assert message.unacked == 1
    assert sender.on_ack(3, 0, 0.2) == [message]


@pytest.mark.parametrize(("next_seq", "bitmap"), [(4, 0), (0, 0b100), (1, 0b10)])
def test_an_ack_of_packets_never_sent_is_rejected(next_seq: int, bitmap: int) -> None:
    sender = make_sender()
    offer_all(sender, ["a", "b", "c"])
    sender.transmit(0.0)
    assert sender.on_ack(next_seq, bitmap, 0.1) is None
    assert sender.in_flight == 3  # nothing changed


def test_karn_no_sample_from_a_retransmitted_packet() -> None:
    sender = make_sender()
    offer_all(sender, ["a"])
    sender.transmit(0.0)
    sender.transmit(1.0)  # the timeout: now ambiguous
    sender.on_ack(1, 0, 1.05)
    assert sender.rtt.srtt is None
    assert sender.rtt.rto == Config().rto_initial


def test_rtt_samples_come_from_selective_and_cumulative_acks_once_each() -> None:
    sender = make_sender()
    offer_all(sender, ["a", "b"])
    sender.transmit(0.0)
    sender.on_ack(0, 0b1, 0.3)  # b held: one sample of 0.3
    assert sender.rtt.srtt == pytest.approx(0.3)
    sender.on_ack(2, 0, 0.5)  # a: a sample of 0.5; b is not sampled again
    assert sender.rtt.srtt == pytest.approx(0.875 * 0.3 + 0.125 * 0.5)


def smoothed(sender: Sender) -> tuple[float, float]:
    """The sender's ``(srtt, rttvar)``, once it has a sample."""
    srtt = sender.rtt.srtt
    assert srtt is not None, "no RTT sample yet"
    return srtt, sender.rtt.rttvar


def sent_apart(texts: Sequence[str], gap: float) -> Sender:
    """A sender that sent one packet per text, ``gap`` seconds apart from 0.0."""
    sender = make_sender()
    for i, text in enumerate(texts):
        offer_all(sender, [text])
        assert len(sender.transmit(i * gap)) == 1
    return sender


def test_one_rtt_sample_per_ack_from_the_newest_packet_it_acknowledges() -> None:
    sender = sent_apart(["a", "b", "c"], gap=0.1)  # sent at 0.0, 0.1, 0.2
    sender.on_ack(3, 0, 0.5)  # all three at once
    # One first sample, of c's 0.3 (QUIC's rule): not 0.5 and 0.4 folded in too.
    assert smoothed(sender) == pytest.approx((0.3, 0.15))


def test_the_rtt_sample_comes_from_the_bitmap_when_it_holds_the_newest() -> None:
    sender = sent_apart(["a", "b", "c"], gap=0.1)
    assert sender.on_ack(1, 0b1, 0.5) is not None  # a cumulatively, c (seq 2) held
    assert smoothed(sender) == pytest.approx((0.3, 0.15))


def test_no_rtt_sample_when_the_newest_newly_acked_packet_was_retransmitted() -> None:
    sender = make_sender()
    offer_all(sender, ["a", "b"])
    sender.transmit(0.0)
    sender.on_ack(0, 0b1, 0.1)  # b held: a sample of 0.1
    [again] = sender.transmit(5.0)  # a timed out: ambiguous from now on
    assert again.seq == 0
    sender.on_ack(2, 0, 5.05)  # newly acknowledges a only (b was already counted)
    assert smoothed(sender) == pytest.approx((0.1, 0.05))


def reference_rto(samples: Sequence[float], cfg: Config) -> float:
    """RFC 6298 section 2, written out independently of RttEstimator, plus the
    peer's ack delay (RFC 9002 section 6.2.1: PTO = srtt + max(4 rttvar, G) + max_ack_delay)."""
    srtt = rttvar = 0.0
    for i, r in enumerate(samples):
        if i == 0:
            srtt, rttvar = r, r / 2
        else:
            rttvar = (1 - 1 / 4) * rttvar + 1 / 4 * abs(srtt - r)
            srtt = (1 - 1 / 8) * srtt + 1 / 8 * r
    return min(max(srtt + max(0.001, 4 * rttvar) + cfg.ack_delay, cfg.rto_min), cfg.rto_max)


@given(st.lists(st.floats(0.0, 30.0), min_size=1, max_size=30))
def test_rto_follows_rfc_6298(samples: list[float]) -> None:
    rtt = RttEstimator(Config())
    for sample in samples:
        rtt.sample(sample)
    assert rtt.rto == pytest.approx(reference_rto(samples, Config()))


# -- window and send queue ---------------------------------------------------------------------


def test_window_bounds_packets_in_flight() -> None:
    sender = make_sender(config(window=4))
    offer_all(sender, [str(i) for i in range(10)])
    assert seqs(sender.transmit(0.0)) == [0, 1, 2, 3]
    assert (sender.in_flight, sender.queued) == (4, 6)
    assert sender.transmit(0.5) == []
    sender.on_ack(0, 0b101, 0.5)  # seqs 1 and 3 held out of order: still in the window
    assert sender.transmit(0.5) == []
    sender.on_ack(2, 0b1, 0.6)  # 0 and 1 done; 3 still held behind the gap at 2
    assert seqs(sender.transmit(0.6)) == [4, 5]
    assert sender.in_flight == 4


def test_send_queue_refuses_whole_messages_only() -> None:
    sender = make_sender(config(send_queue=5, max_datagram=64))
    assert sender.offer("three", bytes(2 * SMALL_CHUNK + 1)) is not None
    assert sender.offer("three more", bytes(3 * SMALL_CHUNK)) is None
    assert sender.queued == 3  # nothing of the refused message was queued
    assert sender.offer("two", bytes(2 * SMALL_CHUNK)) is not None
    assert sender.queued == 5
    assert sender.offer("empty", b"") is None
    assert [m.text for m in sender.unacknowledged()] == ["three", "two"]
    sender.transmit(0.0)  # the window takes the queue: room again
    assert sender.queued == 0
    assert sender.offer("empty", b"") is not None


def test_empty_message_is_one_empty_packet() -> None:
    sender = make_sender()
    offer_all(sender, [""])
    [packet] = sender.transmit(0.0)
    assert (packet.flags, packet.payload) == (0, b"")


@st.composite
def sender_scripts(draw: st.DrawFn) -> list[tuple[str, int]]:
    ops = st.one_of(
        st.tuples(st.just("offer"), st.integers(0, 5 * SMALL_CHUNK)),
        st.tuples(st.just("ack"), st.integers(0, 2**16)),
        st.tuples(st.just("time"), st.integers(1, 8)),
    )
    return draw(st.lists(ops, max_size=60))


@settings(max_examples=MORE_EXAMPLES)
@given(sender_scripts(), st.integers(1, 6), st.integers(1, 12))
def test_window_and_queue_bounds_hold(
    script: list[tuple[str, int]], window: int, queue: int
) -> None:
    cfg = config(window=window, send_queue=queue, max_datagram=64, max_transmissions=1000)
    sender = make_sender(cfg)
    first_sends: list[int] = []
    now = 0.0
    for op, arg in script:
        if op == "offer":
            before = sender.queued
            taken = sender.offer("t", bytes(arg))
            chunks = max(1, math.ceil(arg / SMALL_CHUNK))
            assert sender.queued == (before + chunks if taken else before)
            assert (taken is None) == (before + chunks > queue)
        elif op == "ack":
            lowest = min((p.seq for p in sender._in_flight.values()), default=0)
            sender.on_ack((lowest + arg % 3) % WRAP, arg, now)
        else:
            now += arg / 4
        first_sends += [p.seq for p in sender.transmit(now) if p.transmissions == 1]
        assert sender.in_flight <= window
        assert sender.queued <= queue
    assert first_sends == list(range(len(first_sends)))  # in order, none skipped or repeated


# -- receiver ------------------------------------------------------------------------------------


def test_receiver_drops_duplicates() -> None:
    receiver = make_receiver()
    assert receiver.on_data(0, 0, b"a", 0.0) == [b"a"]
    assert receiver.on_data(0, 0, b"a", 0.0) == []
    assert receiver.on_data(2, 0, b"c", 0.0) == []
    assert receiver.on_data(2, 0, b"c", 0.0) == []  # already buffered
    assert receiver.stats["dropped:duplicate"] == 2
    assert receiver.on_data(1, 0, b"b", 0.0) == [b"b", b"c"]


def test_receiver_releases_buffered_packets_in_order() -> None:
    receiver = make_receiver()
    assert receiver.on_data(3, 0, b"d", 0.0) == []
    assert receiver.on_data(1, 0, b"b", 0.0) == []
    assert receiver.on_data(2, 0, b"c", 0.0) == []
    assert receiver.ack_fields() == (0, 0b111)
    assert receiver.on_data(0, 0, b"a", 0.0) == [b"a", b"b", b"c", b"d"]
    assert receiver.ack_fields() == (4, 0)


def test_receiver_drops_packets_beyond_reorder_window() -> None:
    receiver = make_receiver(config(reorder_window=8, window=4))
    assert receiver.on_data(8, 0, b"far", 0.0) == []
    assert receiver.stats["dropped:beyond-window"] == 1
    assert receiver.on_data(7, 0, b"7", 0.0) == []  # the last seq that fits
    released = [receiver.on_data(i, 0, str(i).encode(), 0.0) for i in range(7)]
    assert released[-1] == [b"6", b"7"]
    assert receiver.next_seq == 8
    assert receiver.on_data(8, 0, b"8", 0.0) == [b"8"]  # the window moved on


def test_ack_fields_bitmap() -> None:
    receiver = make_receiver()
    receiver.on_data(0, 0, b"", 0.0)
    for seq in (2, 4, 65, 66):  # offsets 0, 2, 63 from next + 1; 66 does not fit
        receiver.on_data(seq, 0, b"", 0.0)
    assert receiver.ack_fields() == (1, 1 << 0 | 1 << 2 | 1 << 63)


def test_keepalive_is_acked_but_never_delivered() -> None:
    receiver = make_receiver()
    assert receiver.on_data(1, 0, b"after", 0.0) == []
    assert receiver.on_data(0, FLAG_KEEPALIVE, b"", 0.0) == [b"after"]
    assert receiver.ack_fields() == (2, 0)
    sender = make_sender()
    sender.keepalive()
    [packet] = sender.transmit(0.0)
    assert (packet.flags, packet.payload, packet.message) == (FLAG_KEEPALIVE, b"", None)
    assert sender.unacknowledged() == []
    assert sender.on_ack(1, 0, 0.1) == []
    assert (sender.in_flight, sender.rtt.srtt) == (0, 0.1)


def test_64_kib_message_reassembles_from_fragments() -> None:
    sender, receiver = make_sender(), make_receiver()
    payload = bytes(range(256)) * 256
    assert len(payload) == 65536
    assert sender.offer("big", payload) is not None
    assert sender.queued == math.ceil(65536 / 1180) == 56
    assert pump(sender, receiver, 0.0) == [payload]
    assert receiver.stats == Counter()


@pytest.mark.parametrize("size", [121, 4 * SMALL_CHUNK, 4 * SMALL_CHUNK + 1, 300])
def test_oversized_reassembly_is_discarded_then_recovers(size: int) -> None:
    # The bound is max_message (the text) plus message_overhead (the chat message around it).
    cfg = config(max_message=100, message_overhead=20, max_datagram=64)
    sender, receiver = make_sender(cfg), make_receiver(cfg)
    for payload in (bytes(size), b"ok", bytes(120)):
        assert sender.offer("", payload) is not None
    assert pump(sender, receiver, 0.0) == [b"ok", bytes(120)]
    assert receiver.stats["dropped:oversized"] == 1


def test_the_reassembly_bound_leaves_room_for_the_default_overhead() -> None:
    cfg = config(max_message=100, max_datagram=64)  # message_overhead 1024
    sender, receiver = make_sender(cfg), make_receiver(cfg)
    for payload in (bytes(1124), bytes(1125)):
        assert sender.offer(None, payload) is not None
    assert pump(sender, receiver, 0.0) == [bytes(1124)]
    assert receiver.stats["dropped:oversized"] == 1


def test_loss_and_reordering_still_deliver_in_order() -> None:
    sender, receiver = make_sender(config(window=8)), make_receiver()
    texts = [f"message {i}" for i in range(20)]
    for text in texts:
        sender.offer(text, text.encode())
    lost: set[int] = set()

    def lose_first_copy_of_every_third(packet: Packet) -> bool:
        if packet.seq % 3 == 1 and packet.seq not in lost:
            lost.add(packet.seq)
            return True
        return False

    received = deliver_until_done(sender, receiver, lose_first_copy_of_every_third)
    assert received == [text.encode() for text in texts]
    assert sender.unacknowledged() == []


# -- sequence numbers modulo 2**32 ---------------------------------------------------------------


@given(st.integers(0, 2**40), st.integers(-(2**31), 2**31 - 1))
def test_expand_u32_recovers_the_nearby_number(near: int, delta: int) -> None:
    assert expand_u32((near + delta) % WRAP, near) == near + delta


@pytest.mark.parametrize(
    ("wire", "near", "expected"),
    [
        (5, 5, 5),
        (0, WRAP - 1, WRAP),
        (WRAP - 1, WRAP, WRAP - 1),
        (2**31, 0, -(2**31)),  # exactly half way: the lower one
        (2**31 - 1, 0, 2**31 - 1),
        (3, 5 * WRAP + 10, 5 * WRAP + 3),
    ],
)
def test_expand_u32_examples(wire: int, near: int, expected: int) -> None:
    assert expand_u32(wire, near) == expected


@pytest.mark.parametrize("start", [WRAP - 3, 2 * WRAP - 1])
def test_sender_and_receiver_work_across_the_wrap(start: int) -> None:
    sender = make_sender(config(window=4))
    sender._next_seq = start
    receiver = make_receiver(next_seq=start)
    texts = [f"t{i}" for i in range(10)]
    offer_all(sender, texts)
    wire_seqs: list[int] = []

    def lose_the_wrap_once(packet: Packet) -> bool:
        wire_seqs.append(packet.seq % WRAP)
        return packet.seq % WRAP == 0 and wire_seqs.count(0) == 1

    assert deliver_until_done(sender, receiver, lose_the_wrap_once) == [t.encode() for t in texts]
    assert 0 in wire_seqs
    assert WRAP - 1 in wire_seqs
    assert receiver.next_seq == start + 10
    assert receiver.stats == Counter()


# -- session ------------------------------------------------------------------------------------


def make_session(peer: Address = A, session_id: int = 1) -> Session:
    return Session(session_id, peer, config(), 0.0, Counter())


def test_session_roams_to_the_newest_datagram_only() -> None:
    session = make_session()
    session.accept(Data(1, 0, 0, 0, b"x"), A, 1.0)
    assert session.peer == A
    session.accept(Ack(1, 2, 0, 0), B, 2.0)  # newer pn from B: move
    assert session.peer == B
    arrivals = session.accept(Data(1, 1, 1, 0, b"late"), A, 3.0)  # older pn from A
    assert session.peer == B
    assert arrivals.messages == [b"late"]  # still accepted, just not a move
    assert session.last_heard == 3.0
    session.accept(Bye(1, 2, 0), A, 4.0)  # the same pn again: not newer either
    assert session.peer == B
    session.accept(Ack(1, 3, 0, 0), A, 5.0)
    assert session.peer == A


def test_session_roams_across_the_pn_wrap() -> None:
    session = make_session()
    session._replay.accept(WRAP - 1)
    session.accept(Ack(1, 0, 0, 0), B, 1.0)  # pn 2**32: newer
    assert session.peer == B
    session.accept(Ack(1, WRAP - 2, 0, 0), A, 2.0)  # pn 2**32 - 2: older
    assert session.peer == B


def test_session_sends_data_then_ack_with_increasing_pn() -> None:
    session = make_session()
    assert session.datagrams(0.0) == []
    session.accept(Data(1, 0, 0, 0, b"hi"), A, 1.0)
    session.send("yo", b"yo")
    frames = [decode_frame_untrusted(d) for d in session.datagrams(1.5)]
    # The ack of a lone packet was due at 1.025; sent at 1.5, it says it waited 0.5 s.
    assert frames == [Data(1, 0, 0, 0, b"yo"), Ack(1, 1, 1, 0, 500_000)]
    assert session.last_sent == 1.5
    assert session.datagrams(1.6) == []  # the ack is owed once
    assert decode_frame_untrusted(session.bye()) == Bye(1, 2, 1)  # acks the data it got


def test_session_reacks_duplicate_data() -> None:
    # A retransmission (same seq, new pn: our ack was lost) is acknowledged again.
    # The first is acked after the delay; the duplicate at once, with the delay
    # since the packet arrived.
    session = make_session()
    assert session.accept(Data(1, 0, 0, 0, b"again"), A, 1.0).messages == [b"again"]
    assert session.datagrams(1.0) == []
    assert [decode_frame_untrusted(d) for d in session.datagrams(1.025)] == [
        Ack(1, 0, 1, 0, 25_000)
    ]
    assert session.accept(Data(1, 1, 0, 0, b"again"), A, 2.0).messages == []
    assert [decode_frame_untrusted(d) for d in session.datagrams(2.0)] == [
        Ack(1, 1, 1, 0, 1_000_000)
    ]


def test_session_ignores_a_datagram_seen_before() -> None:
    # The very same datagram again (same pn): a network duplicate, or a replay.
    session = make_session()
    assert session.accept(Data(1, 7, 0, 0, b"once"), A, 1.0).messages == [b"once"]
    session.datagrams(1.5)  # and its ack, due at 1.025
    again = session.accept(Data(1, 7, 0, 0, b"once"), B, 2.0)
    assert again.replayed
    assert not again.messages
    assert session.datagrams(2.0) == []  # nothing owed: no ack, no roaming
    assert session.peer == A


def test_session_hands_over_payload_bytes_undecoded() -> None:
    # Decoding (chat messages, UTF-8) is the cores' business: the session passes bytes on.
    session = make_session()
    arrivals = session.accept(Data(1, 0, 0, 0, b"\xff\xfe"), A, 1.0)
    assert (list(arrivals.messages), list(arrivals.delivered), arrivals.bad_ack) == (
        [b"\xff\xfe"],
        [],
        False,
    )
    arrivals = session.accept(Data(1, 1, 1, FLAG_KEEPALIVE, b""), A, 1.5)
    assert arrivals.messages == []  # a keepalive carries no message


def test_a_one_packet_message_without_text_is_sent_but_never_reported() -> None:
    # Text None (a join, a notice, a relayed line) is nothing the cores report: a
    # one-packet one gets no Message of its own (a relay queues one per member).
    session = make_session()
    quiet = session.send(None, b"\x10\x00\x00\x00\x00")
    loud = session.send("hello", b"hello")
    assert quiet is UNREPORTED
    assert loud is not None
    assert session.sender.unacknowledged() == [loud]
    assert [p.payload for p in session.sender.transmit(0.0)] == [b"\x10\x00\x00\x00\x00", b"hello"]
    assert session.accept(Ack(1, 0, 2, 0), A, 0.5).delivered == [loud]


def test_a_long_message_without_text_is_reported_when_whole() -> None:
    sender = make_sender(config(max_datagram=64))
    quiet = sender.offer(None, bytes(2 * SMALL_CHUNK))
    assert quiet is not None
    assert quiet is not UNREPORTED
    sender.transmit(0.0)
    assert sender.on_ack(1, 0, 0.1) == []
    assert sender.on_ack(2, 0, 0.2) == [quiet]


def test_session_flags_an_ack_of_packets_never_sent() -> None:
    session = make_session()
    session.send("one", b"one")
    session.datagrams(0.0)
    assert session.accept(Ack(1, 0, 5, 0), A, 0.5).bad_ack
    assert session.sender.in_flight == 1


def shuttle(left: Session, right: Session, now: float) -> tuple[list[bytes], list[bytes]]:
    """Carry datagrams between two sessions at ``now`` until quiet; messages each one got."""
    got: tuple[list[bytes], list[bytes]] = ([], [])
    for _ in range(1000):
        moved = False
        for src, dst, box, addr in ((left, right, got[1], A), (right, left, got[0], B)):
            for data in src.datagrams(now):
                frame = decode_frame_untrusted(data)
                assert isinstance(frame, SessionFrame)
                box += dst.accept(frame, addr, now).messages
                moved = True
        if not moved:
            return got
    raise AssertionError("the sessions never go quiet")


def test_sessions_keep_working_across_seq_and_pn_wrap() -> None:
    left, right = make_session(peer=B), make_session(peer=A)
    for session in (left, right):
        session._next_pn = WRAP - 2
        session._replay.accept(WRAP - 3)
        session.sender._next_seq = WRAP - 2
        session.receiver.next_seq = WRAP - 2
    texts = [f"m{i}" for i in range(6)]
    for text in texts:
        left.send(text, text.encode())
        right.send(text.upper(), text.upper().encode())
    assert shuttle(left, right, 1.0) == (
        [t.upper().encode() for t in texts],
        [t.encode() for t in texts],
    )
    assert (left.sender.in_flight, right.sender.in_flight) == (0, 0)
    assert (left.peer, right.peer) == (B, A)
    assert right.receiver.next_seq == WRAP + 4


# -- the sender's cached earliest deadline -------------------------------------------------

sender_ops = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), st.integers(1, 3)),
        st.tuples(st.just("transmit"), st.floats(0.0, 2.0)),
        st.tuples(st.just("timer")),
        st.tuples(st.just("ack"), st.integers(0, 40), st.integers(0, 2**8 - 1)),
        st.tuples(st.just("ack-all")),
    ),
    max_size=60,
)


def _exact_deadline(sender: Sender) -> float | None:
    """What a full scan of the window gives for deadline()."""
    in_flight = list(sender._in_flight.values())
    if not in_flight:
        return None
    waiting = [p.deadline for p in in_flight if not p.sacked]
    return min([in_flight[0].first_sent + sender._config.give_up_after, *waiting])


@given(sender_ops)
def test_the_cached_deadline_is_never_late_and_exact_once_due(ops: list[tuple[Any, ...]]) -> None:
    """Whatever is offered, sent, acked (with any bitmap) or retransmitted, deadline()
    is never later than a full scan of the window says (a late timer would delay a
    retransmission); after an ack it may be earlier (acks do not rescan), and then
    the timer firing at it (a transmit) finds it exact again."""
    sender = Sender(config(window=8, fast_retransmit_after=2), Counter())
    now = 0.0
    for op in ops:
        due = sender.deadline()
        if op[0] == "offer":
            sender.offer("x", b"x" * op[1])
        elif op[0] == "transmit":
            now += op[1]
            sender.transmit(now)
        elif op[0] == "timer":
            now = max(now, due if due is not None else now)
            sender.transmit(now)
        elif op[0] == "ack-all":
            in_flight = list(sender._in_flight)
            if in_flight:
                sender.on_ack((in_flight[-1] + 1) % 2**32, 0, now)
        else:
            sender.on_ack(op[1], op[2], now)
        expected = _exact_deadline(sender)
        found = sender.deadline()
        assert (found is None) == (expected is None)
        if found is not None and expected is not None:
            assert found <= expected
            if op[0] in ("transmit", "timer") and due is not None and now >= due:
                assert found == expected


def test_a_timer_left_early_by_an_ack_retransmits_nothing() -> None:
    sender = make_sender()
    sender.offer("a", b"a")
    sender.transmit(0.0)
    sender.offer("b", b"b")
    [b] = sender.transmit(0.5)
    first = sender.deadline()
    assert first is not None
    assert first == pytest.approx(sender.rtt.rto)  # "a"'s
    sender.on_ack(1, 0, 0.6)  # "a" acknowledged; "b" is due later
    assert sender.deadline() == first  # not rescanned: early, never late
    assert sender.transmit(first) == []
    assert sender._stats["retransmissions"] == 0
    assert sender.deadline() == b.deadline  # exact again
