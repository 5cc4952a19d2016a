"""The delayed-ack policy (QUIC's, RFC 9000 §13.2.1-2) at exact times, and the sender's
round-trip estimate, which the delay must not inflate (RFC 9002 §5.3).

A receiver acks at once when ``ack_every`` packets are unacknowledged, or when a
packet arrives out of order, leaves a gap, fills one, or is a duplicate; a lone
in-order packet is acked ``ack_delay`` after it arrived. Each Ack says how long
it was held, and the sender subtracts that (at most ``ack_delay``) from its
sample; its retransmission timeout allows ``ack_delay`` on top of the round trip.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core_helpers import (
    CLIENT,
    check_timer,
    connect,
    drain,
    feed,
    frames_out,
    join,
    make_client,
    make_server,
    run_timers,
    say_data,
)
from trio_udpchat._config import Config
from trio_udpchat._errors import LocalProtocolError
from trio_udpchat._events import Address
from trio_udpchat._reliable import Receiver, Sender
from trio_udpchat._rtt import RttEstimator
from trio_udpchat._session import Session
from trio_udpchat._wire import Ack, Data, decode_frame_untrusted

A: Address = ("192.0.2.1", 40001)
DELAY = Config().ack_delay


def make_session(config: Config | None = None) -> Session:
    return Session(1, A, config or Config(), 0.0, Counter())


def acks(session: Session, now: float) -> list[Ack]:
    """The Ack frames ``session`` sends at ``now`` (it has nothing else to send)."""
    frames = [decode_frame_untrusted(data) for data in session.datagrams(now)]
    assert all(isinstance(frame, Ack) for frame in frames), frames
    return [frame for frame in frames if isinstance(frame, Ack)]


def data(pn: int, seq: int) -> Data:
    return Data(1, pn, seq, 0, b"m%d" % seq)


# -- when an ack goes ------------------------------------------------------------------


def test_a_lone_packet_is_acked_ack_delay_after_it_arrived() -> None:
    session = make_session()
    session.accept(data(0, 0), A, 1.0)
    assert session.deadline() == 1.0 + DELAY
    assert acks(session, 1.0) == []
    assert acks(session, 1.0 + DELAY / 2) == []
    [ack] = acks(session, 1.0 + DELAY)
    assert (ack.next, ack.bitmap, ack.delay) == (1, 0, 25_000)
    assert session.deadline() is None  # nothing owed any more
    assert acks(session, 2.0) == []


def test_every_ack_every_th_packet_is_acked_at_once() -> None:
    every = Config().ack_every
    assert every > 1  # the default holds acks back (else this says nothing)
    session = make_session()
    for seq in range(every - 1):
        session.accept(data(seq, seq), A, 1.0 + seq / 1000)
        assert session.deadline() == pytest.approx(1.0 + DELAY)  # held, from the first
    session.accept(data(every - 1, every - 1), A, 1.01)
    assert session.deadline() == 1.01  # due at the last one's arrival
    [ack] = acks(session, 1.01)
    assert (ack.next, ack.delay) == (every, 0)
    session.accept(data(every, every), A, 1.2)  # the next: held again, from its own arrival
    assert session.deadline() == pytest.approx(1.2 + DELAY)
    for seq in range(every + 1, 2 * every):
        session.accept(data(seq, seq), A, 1.21)
    assert session.deadline() == 1.21
    assert [a.next for a in acks(session, 1.21)] == [2 * every]


def test_the_delay_runs_from_the_first_packet_the_ack_covers() -> None:
    # ack_every 3: the second packet does not push the deadline back.
    session = make_session(Config(ack_every=3))
    session.accept(data(0, 0), A, 1.0)
    session.accept(data(1, 1), A, 1.02)
    assert session.deadline() == 1.0 + DELAY
    [ack] = acks(session, 1.0 + DELAY)
    assert ack.next == 2
    assert ack.delay == pytest.approx(5_000, abs=1)  # 5 ms after the last


def test_a_gap_is_acked_at_once_and_so_is_the_packet_that_fills_it() -> None:
    session = make_session()
    session.accept(data(0, 1), A, 1.0)  # seq 0 is missing
    [ack] = acks(session, 1.0)
    assert (ack.next, ack.bitmap) == (0, 0b1)
    session.accept(data(1, 0), A, 1.5)  # fills it
    [ack] = acks(session, 1.5)
    assert (ack.next, ack.bitmap, ack.delay) == (2, 0, 0)


def test_a_duplicate_is_acked_at_once() -> None:
    # The sender resent it: our ack was lost, or is late. Tell it now.
    session = make_session()
    session.accept(data(0, 0), A, 1.0)
    assert acks(session, 1.0 + DELAY)
    session.accept(data(1, 0), A, 2.0)  # same seq, new pn
    assert session.deadline() == 2.0
    [ack] = acks(session, 2.0)
    assert ack.next == 1


def test_ack_every_one_acks_everything_at_once() -> None:
    session = make_session(Config(ack_every=1))
    session.accept(data(0, 0), A, 1.0)
    assert session.deadline() == 1.0
    assert [a.next for a in acks(session, 1.0)] == [1]


def test_a_held_ack_goes_with_the_next_flush_after_its_deadline() -> None:
    # A late flush (a busy loop) still sends it, and says how long it really waited.
    session = make_session()
    session.accept(data(0, 0), A, 1.0)
    [ack] = acks(session, 1.2)
    assert ack.delay == 200_000


# -- the sender's round trip ------------------------------------------------------------


def exchange_one(config: Config, one_way: float, start: float) -> tuple[Sender, float]:
    """A sender's lone packet at ``start``, received ``one_way`` later by a session that
    holds its ack; the ack takes ``one_way`` back. Returns the sender and when the
    ack arrived."""
    sender = Sender(config, Counter())
    receiver = make_session(config)
    sender.offer("x", b"x")
    [packet] = sender.transmit(start)
    receiver.accept(Data(1, 0, packet.seq, 0, packet.payload), A, start + one_way)
    due = receiver.deadline()
    assert due == start + one_way + config.ack_delay
    [ack] = acks(receiver, due)
    arrived = due + one_way
    assert sender.on_ack(ack.next, ack.bitmap, arrived, ack.delay / 1e6) is not None
    return sender, arrived


def test_a_delayed_ack_does_not_inflate_the_round_trip() -> None:
    sender, arrived = exchange_one(Config(), one_way=0.010, start=5.0)
    assert arrived == pytest.approx(5.0 + 0.020 + DELAY)  # what a naive sample would take
    assert sender.rtt.srtt == pytest.approx(0.020, abs=1e-6)


def test_the_retransmission_timeout_outlasts_a_round_trip_and_the_ack_delay() -> None:
    # A floor low enough not to hide it: after 1 ms round trips, a lone packet's
    # timer must still wait for an ack held ack_delay.
    config = Config(rto_min=0.026, ack_delay=0.025)
    sender, _ = exchange_one(config, one_way=0.0005, start=0.0)
    for i in range(50):
        sender.offer("x", b"x")
        [packet] = sender.transmit(float(i + 1))
        sender.on_ack(packet.seq + 1, 0, i + 1 + 0.001, 0.0)
    assert sender.rtt.srtt == pytest.approx(0.001)
    sender.offer("y", b"y")
    [packet] = sender.transmit(100.0)
    assert packet.deadline > 100.0 + 0.001 + config.ack_delay
    assert sender.rtt.rto == pytest.approx(0.001 + 0.001 + config.ack_delay, abs=1e-4)


@pytest.mark.parametrize("claimed", [10.0, 2**32 / 1e6])
def test_a_peer_claiming_a_huge_delay_shrinks_a_sample_by_at_most_ack_delay(
    claimed: float,
) -> None:
    rtt = RttEstimator(Config())
    rtt.sample(0.100, claimed)
    assert rtt.srtt == pytest.approx(0.100 - DELAY)
    rtt = RttEstimator(Config())
    rtt.sample(0.010, claimed)  # never below zero
    assert rtt.srtt == 0.0
    assert rtt.rto == Config().rto_min


def test_negative_delays_count_as_none() -> None:
    rtt = RttEstimator(Config())
    rtt.sample(0.1, -1.0)
    assert rtt.srtt == pytest.approx(0.1)


# -- the cores' timers ------------------------------------------------------------------


def test_the_server_holds_an_ack_and_its_timer_sends_it() -> None:
    server = make_server(delayed_acks=True)
    session = join(server, CLIENT)
    feed(server, Data(session, 0, 0, 0, b"\x10" + bytes(4)), CLIENT, 1.0)  # Join("")
    out = [frame for frame, _ in frames_out(server, 1.0)]
    assert not any(isinstance(frame, Ack) for frame in out)  # Named and history only
    feed(server, Ack(session, 1, len(out), 0), CLIENT, 1.001)
    assert drain(server, 1.001) == []
    assert server.get_timer() == 1.0 + DELAY
    [(due, sent)] = [(t, s) for t, s in run_timers(server, 1.5) if s]
    assert due == 1.0 + DELAY
    [(ack, to)] = [(decode_frame_untrusted(data), to) for data, to in sent]
    assert ack == Ack(session, len(out) + 0, 1, 0, 25_000)
    assert to == CLIENT


def test_the_server_acks_every_ack_every_th_packet_at_once() -> None:
    every = Config().ack_every
    server = make_server(delayed_acks=True)
    session = join(server, CLIENT)
    feed(server, Data(session, 0, 0, 0, b"\x10" + bytes(4)), CLIENT, 1.0)
    sent = len(frames_out(server, 1.0))  # Named and history: no ack yet
    for seq in range(1, every):
        feed(server, say_data(session, seq, seq, "hi"), CLIENT, 1.0)
    frames = [frame for frame, _ in frames_out(server, 1.0)]
    acks = [f for f in frames if isinstance(f, Ack)]
    assert acks == [Ack(session, sent + len(frames) - 1, every, 0, 0)]


def test_the_client_holds_an_ack_and_its_timer_sends_it() -> None:
    client = make_client(delayed_acks=True)
    connect(client, 7, now=0.0)
    keepalive_at = client.get_timer()
    feed(client, Data(7, 1, 0, 0, b"\x22" + bytes(3)), ("198.51.100.7", 9999), 2.0)
    assert [f for f, _ in frames_out(client, 2.0)] == []
    assert client.get_timer() == 2.0 + DELAY
    assert keepalive_at is not None
    assert keepalive_at > 2.0 + DELAY
    client.handle_timer(2.0 + DELAY)
    [(ack, _)] = frames_out(client, 2.0 + DELAY)
    assert ack == Ack(7, 1, 1, 0, 25_000)
    check_timer(client, 2.0 + DELAY)


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"ack_delay": -0.001}, {"ack_delay": 0.2}, {"ack_delay": 0.3}, {"ack_every": 0}],
)
def test_config_refuses_an_ack_policy_the_timers_cannot_honour(overrides: dict[str, float]) -> None:
    with pytest.raises(LocalProtocolError):
        Config(**overrides)  # type: ignore[arg-type]


# -- hypothesis: the policy's promises for any arrival pattern ------------------------------

arrivals = st.lists(st.tuples(st.integers(0, 12), st.floats(0.0, 0.05), st.booleans()), max_size=40)


@given(arrivals, st.integers(1, 4))
def test_an_owed_ack_is_never_later_than_the_policy_allows(
    pattern: list[tuple[int, float, bool]], every: int
) -> None:
    """Packets arrive with any seqs at any gaps, flushes come or not: an owed ack is due
    at most ``ack_delay`` after the first packet it covers, at once after ``every``
    packets, and a flush at or after its deadline always sends it."""
    config = Config(ack_every=every)
    receiver = Receiver(config, Counter())
    now = 0.0
    first: float | None = None  # arrival of the first packet not yet acked
    last_new = 0.0  # arrival of the last packet that was neither duplicate nor too far
    count = 0
    for seq, gap, flush in pattern:
        now += gap
        dropped = sum(receiver.stats.values())
        receiver.on_data(seq, 0, b"", now)
        if sum(receiver.stats.values()) == dropped:
            last_new = now
        first = now if first is None else first
        count += 1
        due = receiver.ack_deadline()
        assert due is not None
        assert first <= due <= first + config.ack_delay
        if count >= every:
            assert due <= now
        if flush and due <= now:
            next_seq, _, delay = receiver.take_ack(now)
            assert next_seq == receiver.next_seq
            assert delay == round((now - last_new) * 1e6)
            assert receiver.ack_deadline() is None
            first, count = None, 0


def test_a_stopping_server_sends_the_acks_it_holds() -> None:
    # run_server calls send_held_acks on its way out: the client's last message
    # was shown, so the client must not report it undelivered.
    server = make_server(delayed_acks=True)
    session = join(server, CLIENT)
    feed(server, Data(session, 0, 0, 0, b"\x10" + bytes(4)), CLIENT, 1.0)
    drain(server, 1.0)
    server.send_held_acks(1.001)
    acked = [frame for frame, _ in frames_out(server, 1.001) if isinstance(frame, Ack)]
    assert [(a.next, a.delay) for a in acked] == [(1, 1_000)]
    server.send_held_acks(1.002)  # nothing more is owed
    assert drain(server, 1.002) == []
