"""Benchmark ``latency``: a message's trip from one client through the server to another.

Subject: two real ``run_client`` instances in this process (one Trio loop)
and the real server in a helper process. Client A types a line; the clock
stops when client B shows it: A's input loop, its core and socket, the
server's receive batch, room and relay, B's socket, core and event. One
message at a time (stop-and-wait), so each trip is measured alone.

Baseline: the blocking stdlib echo (``_stdlib.py``), the same two hops
(client -> peer -> client) with nothing else.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from trio_udpchat import Config, Event, SessionStarted, run_client
from trio_udpchat._events import PresenceNoticed, RoomMessage

from . import _stdlib
from ._harness import Benchmark, BenchmarkResult, Case, Column, Compare, Plan, Sample, Settings
from ._helpers import Helper
from ._probe import time_limit

TRIPS = 2_000
QUICK_TRIPS = 200
WARMUP = 20
SIZE = 100


def percentiles(samples_s: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples_s, n=100, method="inclusive")
    return {"p50_us": cuts[49] * 1e6, "p99_us": cuts[98] * 1e6}


class _Typist:
    """Client A's terminal: types one line each time it is asked to."""

    interactive = False

    def __init__(self) -> None:
        self.started = trio.Event()
        #: Set when A is told that B joined (see ``trips_between``).
        self.joined = trio.Event()
        self._send, self._lines = trio.open_memory_channel[str](1)

    async def type(self, line: str) -> None:
        """Make ``line`` the next line typed."""
        await self._send.send(line)

    async def read_line(self) -> str | None:
        """The next line to type (waits for :meth:`type`)."""
        return await self._lines.receive()

    def show(self, event: Event) -> None:
        """Note the session start and B's join; ignore the rest."""
        if isinstance(event, SessionStarted):
            self.started.set()
        elif isinstance(event, PresenceNoticed) and event.what == "joined" and event.name == "b":
            self.joined.set()


class _Reader:
    """Client B's terminal: notes when each room message is shown."""

    interactive = False

    def __init__(self) -> None:
        self.started = trio.Event()
        #: Set when B is told that A joined (see ``trips_between``).
        self.joined = trio.Event()
        self.shown = trio.Event()
        self.shown_at = 0.0
        self.text = ""

    async def read_line(self) -> str | None:
        """Never types (sleeps until cancelled)."""
        await trio.sleep_forever()
        return None  # pragma: no cover

    def show(self, event: Event) -> None:
        """Note room messages (the time first), A's join, and the session start."""
        if isinstance(event, RoomMessage):
            self.shown_at = time.perf_counter()
            self.text = event.text
            self.shown.set()
        elif isinstance(event, PresenceNoticed) and event.what == "joined" and event.name == "a":
            self.joined.set()
        elif isinstance(event, SessionStarted):
            self.started.set()


async def trips_between(typist_port: int, reader_port: int, trips: int) -> list[float]:
    """``trips`` messages, one at a time, from client A (on the server at
    ``typist_port``) to client B (at ``reader_port``): the seconds each took."""
    typist, reader = _Typist(), _Reader()
    # B's session may start before its join has taken its place in the room's order
    # (on a bus, before it came back from Redis): a line A types then comes before
    # B in that order and is not B's. Both joins are in the order once either of
    # them is told of the other's (the one who joined first is told; on a bus that
    # may be A, when A's join reached Redis first), and A's lines come after.
    typist.joined = reader.joined = trio.Event()
    config = Config()
    filler = _stdlib.payload(SIZE).decode("ascii")
    out: list[float] = []
    async with trio.open_nursery() as nursery:
        client = partial(run_client, host="127.0.0.1", config=config)
        await nursery.start(partial(client, reader, port=reader_port, name="b"))
        await reader.started.wait()
        await nursery.start(partial(client, typist, port=typist_port, name="a"))
        await typist.started.wait()
        await reader.joined.wait()  # B told of A, or A of B
        for i in range(WARMUP + trips):
            line = f"{i:08d}{filler}"[:SIZE]
            reader.shown = trio.Event()
            sent = time.perf_counter()
            await typist.type(line)
            await reader.shown.wait()
            if reader.text != line:
                raise RuntimeError(f"B showed {reader.text!r}, expected {line!r}")
            if i >= WARMUP:
                out.append(reader.shown_at - sent)
        nursery.cancel_scope.cancel()
    return out


def measure_trio_udpchat(trips: int, timeout: float, cpus: frozenset[int] | None) -> Sample:
    """One repetition: a fresh server, two fresh clients, ``trips`` messages A -> B."""
    with Helper("_chat_server", "--max-seconds", str(timeout + 30), cpus=cpus) as server:
        rtts = trio.run(within, timeout, partial(trips_between, server.port, server.port, trips))
        server.finish()
    return Sample(percentiles(rtts))


async def within(seconds: float, run: Callable[[], Awaitable[list[float]]]) -> list[float]:
    with trio.fail_after(seconds):
        return await run()


def measure_stdlib(trips: int, timeout: float, cpus: frozenset[int] | None) -> Sample:
    """One repetition of the baseline: a fresh blocking echo, ``trips`` round trips."""
    data = _stdlib.payload(SIZE)
    rtts: list[float] = []
    with Helper("_stdlib", "echo", "--max-seconds", "300", cpus=cpus) as peer:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, time_limit(timeout):
            sock.connect(("127.0.0.1", peer.port))
            for i in range(WARMUP + trips):
                sent = time.perf_counter()
                sock.send(data)
                sock.recv(65536)
                if i >= WARMUP:
                    rtts.append(time.perf_counter() - sent)
        _stdlib.stop_peer(peer.port)
        peer.finish()
    return Sample(percentiles(rtts))


def plan(settings: Settings) -> Plan:
    """Our client -> server -> client trip, and the stdlib echo."""
    trips = settings.messages or (QUICK_TRIPS if settings.quick else TRIPS)
    timeout, cpus = settings.case_timeout, settings.helper_cpus
    return Plan(
        params={"trips": trips, "size": SIZE},
        cases=[
            Case(
                "trio_udpchat",
                "run_client A -> run_server (subprocess) -> run_client B, one at a time",
                partial(measure_trio_udpchat, trips, timeout, cpus),
            ),
            Case(
                "stdlib_blocking",
                "blocking send, blocking recv of the echo (subprocess)",
                partial(measure_stdlib, trips, timeout, cpus),
                baseline=True,
            ),
        ],
    )


def summarize(result: BenchmarkResult) -> dict[str, object]:
    """The ``rtt_us`` entries of the JSON summary (medians over the repetitions)."""
    rows: list[dict[str, object]] = []
    for case in result.cases:
        p50, p99 = case.spread("p50_us"), case.spread("p99_us")
        if p50 is not None and p99 is not None:
            rows.append({"impl": case.case.name, "p50": p50.median, "p99": p99.median})
    return {"rtt_us": rows}


BENCHMARK = Benchmark(
    name="latency",
    title="{trips:,} messages of {size} bytes, client -> server -> client, one at a time",
    columns=[Column("p50_us", "p50 us", ",.0f"), Column("p99_us", "p99 us", ",.0f")],
    compare=[Compare("p50_us", higher_is_better=False), Compare("p99_us", higher_is_better=False)],
    plan=plan,
    notes=["Target (issue 7): trio_udpchat p50 within 3x the blocking echo's."],
    summarize=summarize,
)
