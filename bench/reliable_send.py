"""Benchmark ``reliable_send``: one client sends N messages to the server, reliably.

Subject: the real server (``run_server`` in a helper process, see
``_chat_server.py``) and a client in this process that types N lines of 100
bytes through the real reliable path: ``run_client`` and its input loop (with its scripted
input backpressure), ``ClientCore.send_text``, the sender's window of
``Config.window`` packets in flight, acks back through the receive task. The
clock starts when the session is up and the first line is typed, and stops when
the client has seen every message acknowledged (an ack implies the server
received and delivered it; the server's own count is checked too).

Baselines, same machine, same run, same sizes, the peer likewise in a helper:

* ``stdlib echo``: blocking stop-and-wait, send a datagram and wait for its echo.
* ``stdlib window``: a blocking one-way blast with cumulative acks and the same
  window as ours in flight (go-back-N on a timeout), i.e. the cheapest program
  that does what the reliable path does, minus everything else it does.

On loopback the window is not what limits us (a window of 1 measured within 10%
of 32 when this was written): the CPU spent per message on each side is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from trio_udpchat import (
    ClientCore,
    Config,
    Event,
    MessageDelivered,
    NotDelivered,
    SessionLost,
    SessionStarted,
    run_client,
)

from . import _stdlib
from ._harness import Benchmark, Case, Column, Compare, Figures, Plan, Sample, Settings
from ._helpers import Helper
from ._probe import udp_receive_errors

SIZE = 100
MESSAGES = 10_000
QUICK_MESSAGES = 1_000


class ScriptedTerminal:
    """Types ``lines`` as fast as the client takes them (a pipe), and times their delivery.

    It is not ``interactive``, so the client's input loop waits for room in the
    send window before taking each line, as it does for piped input.
    """

    interactive = False

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self._typed = 0
        self.delivered = 0
        self.failures: list[NotDelivered | SessionLost] = []
        self.session_started = trio.Event()
        self.finished = trio.Event()  # everything acknowledged, or something failed
        self.started_at = self.finished_at = math.nan
        self.started_cpu = self.finished_cpu = math.nan

    async def read_line(self) -> str | None:
        """The next line, once the session is up; ``None`` after the last one."""
        if self._typed == 0:
            await self.session_started.wait()
            self.started_at, self.started_cpu = time.perf_counter(), time.process_time()
        else:
            await trio.lowlevel.checkpoint()  # as reading from a pipe would
        if self._typed == len(self._lines):
            return None
        self._typed += 1
        return self._lines[self._typed - 1]

    def show(self, event: Event) -> None:
        """Count deliveries; note the session start and any failure."""
        if isinstance(event, MessageDelivered):
            self.delivered += 1
            if self.delivered == len(self._lines):
                self.finished_at, self.finished_cpu = time.perf_counter(), time.process_time()
                self.finished.set()
        elif isinstance(event, SessionStarted):
            self.session_started.set()
        elif isinstance(event, NotDelivered | SessionLost):
            self.failures.append(event)
            self.finished.set()


def lines(messages: int, size: int) -> list[str]:
    """``messages`` distinct lines of exactly ``size`` ASCII characters (not commands)."""
    filler = _stdlib.payload(size).decode("ascii")
    return [f"{i:08d}{filler}"[:size] for i in range(messages)]


async def send_all(port: int, terminal: ScriptedTerminal, config: Config) -> ClientCore:
    """Run the real ``run_client`` until ``terminal`` has seen everything acknowledged
    (or a failure), then stop it; return its core, for its ``stats``."""
    async with trio.open_nursery() as nursery:
        core: ClientCore = await nursery.start(
            partial(run_client, terminal, "127.0.0.1", port, config)
        )
        await terminal.finished.wait()
        nursery.cancel_scope.cancel()
    return core


async def _within(seconds: float, run: Callable[[], Awaitable[ClientCore]]) -> ClientCore:
    with trio.fail_after(seconds):
        return await run()


def measure_trio_udpchat(
    messages: int, size: int, timeout: float, cpus: frozenset[int] | None
) -> Sample:
    """One repetition of the subject: a fresh server process, a fresh client."""
    config = Config()
    terminal = ScriptedTerminal(lines(messages, size))
    with Helper("_chat_server", "--max-seconds", str(timeout + 30), cpus=cpus) as server:
        drops_before = udp_receive_errors()
        try:
            core = trio.run(_within, timeout, partial(send_all, server.port, terminal, config))
        except trio.TooSlowError:
            raise RuntimeError(
                f"not done within {timeout} s: {terminal.delivered} of {messages} acknowledged"
            ) from None
        drops_after = udp_receive_errors()
        report = server.finish()
    if terminal.failures:
        raise RuntimeError(f"the client reported {terminal.failures[0]}")
    if terminal.delivered != messages or report.get("received") != messages:
        raise RuntimeError(
            f"acknowledged {terminal.delivered} and the server received"
            f" {report.get('received')}, of {messages}"
        )
    wall = terminal.finished_at - terminal.started_at
    figures = {
        "msgs_per_s": messages / wall,
        "wall_s": wall,
        "retransmissions": float(core.stats["retransmissions"]),
        "client_cpu_us": (terminal.finished_cpu - terminal.started_cpu) / messages * 1e6,
        "server_cpu_us": _number(report, "cpu_s") / messages * 1e6,
    }
    server_stats = report.get("stats")
    if isinstance(server_stats, dict):
        figures["server_dropped"] = float(
            sum(n for name, n in server_stats.items() if str(name).startswith("dropped:"))
        )
    _derived(figures, drops_before, drops_after)
    return Sample(figures, {"client_stats": dict(core.stats), "server": report})


def measure_stdlib(
    mode: str, client: Callable[[int], Sample], messages: int, cpus: frozenset[int] | None
) -> Sample:
    """One repetition of a baseline: a fresh stdlib peer process in ``mode``, ``client`` here."""
    with Helper("_stdlib", mode, "--max-seconds", "300", cpus=cpus) as peer:
        drops_before = udp_receive_errors()
        sample = client(peer.port)
        drops_after = udp_receive_errors()
        _stdlib.stop_peer(peer.port)
        report = peer.finish()
    received = _number(report, "received")
    if received < messages:
        raise RuntimeError(f"the peer received {received:.0f} datagrams of {messages}")
    figures = dict(sample.figures)
    figures["server_cpu_us"] = _number(report, "cpu_s") / messages * 1e6
    _derived(figures, drops_before, drops_after)
    return Sample(figures, {**sample.details, "server": report})


def _number(report: dict[str, object], key: str) -> float:
    value = report.get(key)
    if not isinstance(value, int | float):
        raise RuntimeError(f"the helper reported no number {key!r}: {report!r}")
    return float(value)


def _derived(figures: Figures, drops_before: float | None, drops_after: float | None) -> None:
    # Cores kept busy: about 1 when client and server took turns on one core (the
    # other was busy elsewhere, or they never overlapped), about 2 when both ran
    # at once. Figures from runs with different values are not comparable.
    figures["cpu_us"] = figures["client_cpu_us"] + figures["server_cpu_us"]
    figures["cores_busy"] = figures["cpu_us"] * figures["msgs_per_s"] / 1e6
    if drops_before is not None and drops_after is not None:
        figures["kernel_udp_drops"] = drops_after - drops_before


def plan(settings: Settings) -> Plan:
    """Cases for this run: the subject and the two stdlib baselines, same sizes."""
    messages = settings.messages or (QUICK_MESSAGES if settings.quick else MESSAGES)
    config = Config()
    timeout, cpus = settings.case_timeout, settings.helper_cpus
    # The window baseline retransmits after the same floor our RTO settles on (loopback).
    rto = config.rto_min
    return Plan(
        params={"messages": messages, "size": SIZE, "window": config.window},
        cases=[
            Case(
                "trio_udpchat",
                "run_server (subprocess) <- run_client, reliable path",
                partial(measure_trio_udpchat, messages, SIZE, timeout, cpus),
            ),
            Case(
                "stdlib echo",
                "blocking recvfrom/sendto echo; client sends, waits for the echo",
                partial(
                    measure_stdlib,
                    "echo",
                    partial(_stdlib.echo_client, messages=messages, size=SIZE, timeout=timeout),
                    messages,
                    cpus,
                ),
                baseline=True,
            ),
            Case(
                "stdlib window",
                f"blocking blast, cumulative acks, {config.window} in flight, go-back-N",
                partial(
                    measure_stdlib,
                    "ack",
                    partial(
                        _stdlib.window_client,
                        messages=messages,
                        size=SIZE,
                        window=config.window,
                        rto=rto,
                        timeout=timeout,
                    ),
                    messages,
                    cpus,
                ),
                baseline=True,
            ),
        ],
    )


BENCHMARK = Benchmark(
    name="reliable_send",
    title="one client sends {messages:,} messages of {size} bytes to the server, reliably"
    " (window {window})",
    columns=[
        Column("msgs_per_s", "msgs/s", ",.0f"),
        Column("wall_s", "wall s", ".3f"),
        Column("retransmissions", "retransmissions", ",.0f"),
        Column("client_cpu_us", "client CPU us/msg", ",.1f"),
        Column("server_cpu_us", "server CPU us/msg", ",.1f"),
        Column("cpu_us", "total CPU us/msg", ",.1f"),
        Column("cores_busy", "cores busy (CPU/wall)", ".2f"),
        Column("server_dropped", "server drops (stats)", ",.0f"),
        Column("kernel_udp_drops", "kernel UDP drops *", ",.0f"),
    ],
    # msgs/s is the headline; CPU per message barely moves with other load on the machine.
    compare=[
        Compare("msgs_per_s", higher_is_better=True),
        Compare("cpu_us", higher_is_better=False),
    ],
    plan=plan,
    notes=[
        "The window (32 in flight) would allow far more on loopback; CPU per message bounds",
        "msgs/s here. With --pin same, msgs/s ~ 1e6 / total CPU us/msg, times cores busy.",
        "* RcvbufErrors from /proc/net/snmp: every socket on the machine, not only ours.",
    ],
)
