"""/stats: the core's read-only summary, its one-line rendering, and the command end to end."""

from __future__ import annotations

from collections import Counter

from tests.fakes import FakeTerminal
from tests.test_run import running, start_client, start_server
from trio_udpchat import (
    Config,
    MessageDelivered,
    MessageReceived,
    RoundTrip,
    StatsListed,
    StatsSummary,
)
from trio_udpchat._render import render, stats_line
from trio_udpchat._rtt import RttEstimator
from trio_udpchat._stats import summarize


def test_summary_sorts_drops_and_errors_apart() -> None:
    stats = Counter(
        {
            "datagrams_in": 5,
            "datagrams_out": 7,
            "bytes_in": 100,
            "bytes_out": 20_000,
            "retransmissions": 2,
            "dropped:duplicate": 3,
            "dropped:checksum": 1,
            "dropped-out:amplification": 4,
            "dropped:never": 0,
            "send_error:101": 1,
            "refused": 2,
        }
    )
    summary = summarize(stats, [])
    assert summary.drops == (("amplification", 4), ("checksum", 1), ("duplicate", 3))
    assert summary.errors == (("refused", 2), ("send_error:101", 1))
    assert (summary.datagrams_in, summary.datagrams_out) == (5, 7)
    assert (summary.bytes_in, summary.bytes_out, summary.retransmissions) == (100, 20_000, 2)
    assert summary.round_trips == ()


def test_summary_copies_the_estimate_and_does_not_change_it() -> None:
    estimator = RttEstimator(Config())
    estimator.sample(0.05)
    (trip,) = summarize(Counter(), [estimator]).round_trips
    assert trip == RoundTrip(0.05, 0.025, estimator.rto)
    assert estimator.srtt == 0.05


def _summary(*trips: RoundTrip) -> StatsSummary:
    return StatsSummary(3, 4, 300, 400, 1, (("duplicate", 2),), (), trips)


def test_stats_line() -> None:
    line = stats_line(_summary(RoundTrip(0.0123, 0.002, 0.2)))
    assert line == (
        "sent 4 datagrams (400 B); received 3 (300 B); 1 retransmitted; dropped: duplicate 2;"
        " rtt 12.3 ms (variation 2.0 ms, timeout 200.0 ms)"
    )
    assert stats_line(_summary()).endswith("; rtt: no session")
    assert stats_line(_summary(RoundTrip(None, 0.0, 1.0))).endswith("; rtt: not measured yet")
    several = stats_line(_summary(*(RoundTrip(ms / 1000, 0.0, 0.2) for ms in (3, 1, 2))))
    assert several.endswith("rtt over 3 sessions: min 1.0 ms, median 2.0 ms, max 3.0 ms")


async def test_stats_command_on_both_ends() -> None:
    async with running() as nursery:
        server, address = await start_server(nursery)
        client = await start_client(nursery, address)
        client.enter("Hello, server!")
        await server.wait_for(MessageReceived)
        await client.wait_for(MessageDelivered)
        client.enter("/stats")
        server.enter("/stats")
        of_client = (await client.wait_for(StatsListed)).summary
        of_server = (await server.wait_for(StatsListed)).summary
    for summary in (of_client, of_server):
        assert summary.datagrams_in > 0
        assert summary.datagrams_out > 0
        assert summary.bytes_in > summary.datagrams_in
        assert len(summary.round_trips) == 1  # one session each
    # The client has an acknowledged message, so a measured round trip; the server
    # may not have had one acknowledged yet.
    (trip,) = of_client.round_trips
    assert trip.srtt is not None
    assert trip.srtt >= 0
    line = render(StatsListed(of_client), "client") or ""
    assert line.startswith("*** stats: sent ")
    assert " rtt " in line


async def test_stats_is_not_sent_as_chat() -> None:
    async with running() as nursery:
        server, address = await start_server(nursery)
        client: FakeTerminal = await start_client(nursery, address)
        client.enter("/stats", "after")
        await client.wait_for(StatsListed)
        said = await server.wait_for(MessageReceived)
    assert said.text == "after"
