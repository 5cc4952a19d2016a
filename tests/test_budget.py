"""The amplification budget for addresses that cannot prove themselves (RFC 9000 §8)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core_helpers import drain, feed, frames_out, join, make_server
from trio_udpchat import Config, NotDelivered
from trio_udpchat._budget import AmplificationBudget
from trio_udpchat._wire import Challenge, Hello

PEER = ("198.51.100.9", 4000)


def test_at_most_three_times_what_was_received() -> None:
    budget = AmplificationBudget(3.0, 60.0)
    budget.received(10, 0.0)
    assert budget.spend(30, 0.0)
    assert not budget.spend(1, 0.5)
    budget.received(1, 1.0)
    assert budget.spend(3, 1.0)
    assert not budget.spend(1, 1.0)


def test_the_window_slides() -> None:
    budget = AmplificationBudget(3.0, 60.0)
    budget.received(10, 0.0)
    assert budget.spend(30, 0.0)
    budget.received(10, 30.0)
    assert budget.spend(30, 59.0)  # 20 in: 60 may go, 30 had gone
    assert not budget.spend(1, 59.0)
    # At 60 s the first second falls out: 10 in and 60 out remain, so nothing more.
    assert not budget.spend(1, 60.0)
    # At 90 s the second second falls out too: nothing in, nothing may go.
    assert not budget.spend(1, 90.5)


@settings(max_examples=max(200, settings().max_examples))
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 2000), st.floats(0, 5)), max_size=60))
def test_never_more_than_the_factor_within_any_window(
    steps: list[tuple[bool, int, float]],
) -> None:
    budget = AmplificationBudget(3.0, 60.0)
    now = 0.0
    events: list[tuple[float, int, int]] = []  # time, in, out
    for incoming, size, delay in steps:
        now += delay
        if incoming:
            budget.received(size, now)
            events.append((now, size, 0))
        elif budget.spend(size, now):
            events.append((now, 0, size))
            # Whenever something goes out, the last minute (the budget's own buckets,
            # whole seconds) holds at most 3x out what it holds in. (Checked at sends
            # only: a send earned by bytes that have since left the window is fine.)
            start = int(now) - 59
            window = [(i, o) for t, i, o in events if int(t) >= start]
            assert sum(o for _, o in window) <= 3 * sum(i for i, _ in window)


def test_a_spoofed_plain_datagram_cannot_make_the_server_an_amplifier() -> None:
    server = make_server(Config(), trust_plain=False)
    server.receive_datagram(b"hi", PEER, 0.0)  # 2 bytes "from" a victim
    server.reply("x" * 100, 0.1)  # the operator answers the last speaker
    assert drain(server, 0.1) == []
    assert server.pop_events()[-1] == NotDelivered(
        "x" * 100, "an unverified address gets at most 3x what it sent (--trust-plain)"
    )
    assert server.stats["dropped-out:amplification"] == 1


def test_the_classic_exchange_fits_the_budget() -> None:
    server = make_server(Config(), trust_plain=False)
    server.receive_datagram(b"Hello, server!", PEER, 0.0)
    server.reply("Hello, client!", 0.1)
    assert drain(server, 0.1) == [(b"Hello, client!", PEER)]


def test_trust_plain_lifts_the_budget() -> None:
    server = make_server(Config(plain_budget_factor=None), trust_plain=False)
    server.receive_datagram(b"hi", PEER, 0.0)
    server.reply("x" * 100, 0.1)
    assert drain(server, 0.1) == [(b"x" * 100, PEER)]


def test_hellos_from_one_ip_are_rate_limited_whatever_the_port() -> None:
    server = make_server(Config(hello_rate=20.0, hello_burst=5))
    for port in range(6):
        feed(server, Hello(port), ("198.51.100.1", 5000 + port), 0.0)
    challenges = [frame for frame, _ in frames_out(server, 0.0) if isinstance(frame, Challenge)]
    assert len(challenges) == 5
    assert server.stats["dropped:hello-rate"] == 1
    assert server.session_count == 0  # a challenge costs the server no state
    feed(server, Hello(99), ("198.51.100.2", 5000), 0.0)  # another address: its own budget
    feed(server, Hello(98), ("198.51.100.1", 6000), 0.05)  # one more token after 50 ms
    assert len(frames_out(server, 0.05)) == 2


def test_a_hello_flood_cannot_evict_the_real_members() -> None:
    server = make_server(Config(max_peers=8))  # the flood fills the rest, then is refused
    join(server, ("192.0.2.10", 1000), nonce=1)
    for i in range(10_000):  # 250 hosts, many ports, in a second, answering challenges
        addr, now = (f"198.51.100.{i % 250}", 1024 + i), i / 10_000
        feed(server, Hello(i + 2), addr, now)
        for frame, _ in frames_out(server, now):
            if isinstance(frame, Challenge):
                feed(server, Hello(i + 2, frame.cookie), addr, now)
                drain(server, now)
    assert ("192.0.2.10", 1000) in server._by_addr
    assert server.session_count == 8
    assert server.stats["dropped:sessions-full"] > 0


def test_plain_lines_from_one_ip_are_rate_limited_whatever_the_port() -> None:
    server = make_server(Config(plain_rate=20.0, plain_burst=40, rate_limit=0))
    for i in range(100):  # a burst from 100 ports of one host
        server.receive_datagram(b"spam", ("198.51.100.5", 2000 + i), 0.0)
    assert len(server.room.members) == 40
    assert server.stats["dropped:plain-rate"] == 60
    server.receive_datagram(b"hello", ("198.51.100.6", 2000), 0.0)  # another host
    assert len(server.room.members) == 41


def test_no_plain_rate_limit_when_plain_peers_are_trusted() -> None:
    server = make_server(Config(plain_rate=0, rate_limit=0))
    for i in range(100):
        server.receive_datagram(b"hi", ("198.51.100.5", 2000 + i), 0.0)
    assert len(server.room.members) == 100
