"""Benchmark ``bus_latency``: what the Redis bus adds to a message's trip between two clients.

Subjects: two real servers (``_chat_server.py`` helpers with ``--bus``) sharing
one room on a private ``redis-server``; client A types on server 1 and the clock
stops when client B, on server 2, shows the line (``bus_cross_server``): A's
client, server 1's receive and room, the publish (a Lua script giving the
message its ``(epoch, seq)``), Redis's pub/sub to both servers, server 2's
delivery, B's client. ``bus_same_server`` puts both clients on server 1: with a
bus even a local message waits for its copy from Redis before delivery (one
order for everyone), so this isolates the Redis round trip from the second server.

Baseline: the same two clients on ONE server without a bus (``one_server``),
the ``latency`` benchmark's subject, measured again here so the difference and
ratio come from one run. The clients are ``latency``'s: two ``run_client`` in
this process, one message at a time.

Placement (``--pin split``): the servers and Redis share the helpers' CPU, the
clients have the other, as in ``latency``; one message is in flight at a time,
so the server processes take turns rather than compete (only Redis's copy to
both servers arrives at two processes at once).
"""

from __future__ import annotations

from contextlib import ExitStack
from functools import partial

import trio

from ._chat_server import BUS_ROOM
from ._harness import Benchmark, BenchmarkResult, Case, Column, Compare, Plan, Sample, Settings
from ._helpers import Helper
from ._redis import missing, private_redis
from .latency import QUICK_TRIPS, SIZE, percentiles, trips_between, within

#: Trips per repetition: half the ``latency`` benchmark's, as each takes ~4x as
#: long; the p99 is then the 10th-slowest trip.
TRIPS = 1_000
#: The issue's target for the p50 the bus adds, on loopback.
TARGET_ADDED_US = 1000.0

CASES = {
    "one_server": "A and B on one server, no bus (the latency benchmark's subject)",
    "bus_same_server": "A and B on server 1 of two on one Redis (the message goes via Redis)",
    "bus_cross_server": "A on server 1, B on server 2, one Redis between them",
}
BASELINE = "one_server"


def _server(timeout: float, cpus: frozenset[int] | None, *bus: str) -> Helper:
    return Helper("_chat_server", "--max-seconds", str(timeout + 30), *bus, cpus=cpus)


def measure(case: str, trips: int, timeout: float, cpus: frozenset[int] | None) -> Sample:
    """One repetition: fresh servers (and a fresh Redis), two fresh clients, ``trips``
    messages A -> B."""
    with ExitStack() as stack:
        details: dict[str, object] = {}
        if case == BASELINE:
            first = second = stack.enter_context(_server(timeout, cpus))
            servers = [first]
        else:
            redis = stack.enter_context(private_redis(cpus))
            servers = [
                stack.enter_context(_server(timeout, cpus, "--bus", redis.url, "--label", label))
                for label in ("server1", "server2")
            ]
            down = [s.ready for s in servers if s.ready.get("bus_up") is not True]
            if down:
                raise RuntimeError(f"a server did not reach the bus: {down}")
            first = servers[0]
            second = servers[1] if case == "bus_cross_server" else first
            details["room"] = BUS_ROOM
        run = partial(trips_between, first.port, second.port, trips)
        seconds = trio.run(within, timeout, run)
        details["servers"] = [server.finish() for server in servers]
    return Sample(percentiles(seconds), details)


def plan(settings: Settings) -> Plan:
    """The three placements of A and B; skipped without Redis or coredis."""
    trips = settings.messages or (QUICK_TRIPS if settings.quick else TRIPS)
    skip = missing()
    timeout, cpus = settings.case_timeout, settings.helper_cpus
    cases = [
        Case(name, label, partial(measure, name, trips, timeout, cpus), baseline=name == BASELINE)
        for name, label in CASES.items()
    ]
    return Plan(
        params={"trips": trips, "size": SIZE},
        cases=[] if skip else cases,
        ratios=[(name, BASELINE) for name in CASES if name != BASELINE],
        skip=skip,
    )


def _spread_of(result: BenchmarkResult, key: str, subject: str) -> dict[str, float] | None:
    for ratio in result.ratios():
        compare = ratio.compare
        if compare.key == key and compare.difference and ratio.subject == subject:
            return ratio.spread.as_dict()
    return None


def summarize(result: BenchmarkResult) -> dict[str, object]:
    """The ``bus`` summary's latency entries: the p50 and p99 the bus adds across
    servers (median and min-max of the paired repetitions), and every case's."""
    if result.plan.skip is not None:
        return {"bus": {"skipped": result.plan.skip}}
    rows: list[dict[str, object]] = []
    for case in result.cases:
        p50, p99 = case.spread("p50_us"), case.spread("p99_us")
        if p50 is not None and p99 is not None:
            rows.append({"impl": case.case.name, "p50": p50.median, "p99": p99.median})
    added_p50 = _spread_of(result, "p50_us", "bus_cross_server")
    added = {
        "p50": added_p50,
        "p99": _spread_of(result, "p99_us", "bus_cross_server"),
        "same_server_p50": _spread_of(result, "p50_us", "bus_same_server"),
        "target_p50": TARGET_ADDED_US,
        "met": None if added_p50 is None else added_p50["median"] < TARGET_ADDED_US,
    }
    return {"bus": {"added_latency_us": added, "latency_us": rows}}


BENCHMARK = Benchmark(
    name="bus_latency",
    title="{trips:,} messages of {size} bytes, client A -> server(s) -> client B, one at a"
    " time, with and without the Redis bus",
    columns=[Column("p50_us", "p50 us", ",.0f"), Column("p99_us", "p99 us", ",.0f")],
    compare=[
        Compare("p50_us", higher_is_better=False, difference=True),
        Compare("p99_us", higher_is_better=False, difference=True),
        Compare("p50_us", higher_is_better=False),
        Compare("p99_us", higher_is_better=False),
    ],
    plan=plan,
    notes=[
        "Target (issue 8): the p50 the bus adds across servers (bus_cross_server -"
        f" one_server) under {TARGET_ADDED_US:,.0f} us on loopback.",
        "Redis runs on the servers' CPU; the clients on theirs.",
    ],
    summarize=summarize,
)
