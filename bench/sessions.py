"""Benchmark ``sessions``: one server holding 10,000 sessions, with keepalives flowing.

10,000 stdlib sockets in this process (one per session: the server tells
sessions apart by address) each do the handshake (Hello, Challenge, Hello with
the cookie, Welcome); the server's
resident memory before and after, divided by the sessions, is the memory per
session. Then, for a while, each session sends an idle client's keepalive
(``Config.keepalive_after``, 15 s, spread evenly) and the server acks each:
the server's CPU seconds per second of that is its idle cost. Sessions hold
no room membership (an idle client that never spoke).
"""

from __future__ import annotations

import resource
import selectors
import socket
import time
from functools import partial
from typing import Final

from trio_udpchat import Config, Hello, Welcome, decode_frame_untrusted, encode_frame
from trio_udpchat._wire import FLAG_KEEPALIVE, NO_COOKIE, Challenge, encode_data

from ._harness import Benchmark, BenchmarkResult, Case, Column, Plan, Sample, Settings
from ._helpers import Helper

SESSIONS = 10_000
QUICK_SESSIONS = 1_000
#: How long keepalives flow while the server's CPU is measured.
IDLE_SECONDS = 6.0
QUICK_IDLE_SECONDS = 2.0
_RETRY: Final = 0.5


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise RuntimeError(f"needs {needed} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _number(probe: dict[str, object], key: str) -> float:
    value = probe.get(key)
    if not isinstance(value, int | float):
        raise RuntimeError(f"the server's probe has no number {key!r}")
    return float(value)


class _Client:
    """One idle session: a socket, its session id, and its keepalive schedule."""

    __slots__ = ("cookie", "nonce", "pn", "seq", "session", "sock")

    def __init__(self, server: tuple[str, int], nonce: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(server)
        self.nonce = nonce
        self.cookie = NO_COOKIE  # until the server's Challenge gives one
        self.session: int | None = None
        self.pn = self.seq = 0

    def hello(self) -> None:
        self.sock.send(encode_frame(Hello(self.nonce, self.cookie)))

    def keepalive(self) -> None:
        assert self.session is not None
        self.pn += 1
        self.sock.send(encode_data(self.session, self.pn, self.seq, FLAG_KEEPALIVE, b""))
        self.seq += 1


def _drain_all(selector: selectors.BaseSelector, timeout: float) -> int:
    """Read whatever is waiting on every socket; answer Challenges, record Welcomes;
    return datagrams read."""
    read = 0
    for key, _ in selector.select(timeout):
        client: _Client = key.data
        while True:
            try:
                data = client.sock.recv(2048)
            except BlockingIOError:
                break
            read += 1
            if client.session is None:
                frame = decode_frame_untrusted(data)
                if isinstance(frame, Challenge) and frame.nonce == client.nonce:
                    client.cookie = frame.cookie
                    client.hello()
                elif isinstance(frame, Welcome) and frame.nonce == client.nonce:
                    client.session = frame.session
    return read


def measure(sessions: int, idle: float, timeout: float, cpus: frozenset[int] | None) -> Sample:
    """One repetition: a fresh server, ``sessions`` handshakes, ``idle`` seconds of keepalives."""
    _raise_fd_limit(sessions + 256)
    args = ("--max-seconds", str(timeout + 60), "--max-sessions", str(sessions + 16))
    with Helper("_chat_server", *args, cpus=cpus) as server, selectors.DefaultSelector() as sel:
        address = ("127.0.0.1", server.port)
        empty = server.probe()
        clients = [_Client(address, nonce) for nonce in range(1, sessions + 1)]
        try:
            for client in clients:
                sel.register(client.sock, selectors.EVENT_READ, client)
            deadline = time.monotonic() + timeout
            waiting = clients
            while waiting:  # bounded by the deadline
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(waiting)} of {sessions} handshakes unanswered")
                for i, client in enumerate(waiting):
                    client.hello()
                    if i % 256 == 255:  # let the server keep up: no drops, no retries
                        _drain_all(sel, 0)
                retry_at = time.monotonic() + _RETRY
                while time.monotonic() < retry_at and _drain_all(sel, 0.05):
                    pass
                waiting = [client for client in waiting if client.session is None]
            held = server.probe()
            # Keepalives at an idle client's pace, spread evenly over the period.
            interval = Config().keepalive_after / sessions
            started = time.monotonic()
            sent = 0
            while (now := time.monotonic()) < started + idle:
                due = int((now - started) / interval) + 1
                while sent < min(due, sessions * 64):
                    clients[sent % sessions].keepalive()
                    sent += 1
                _drain_all(sel, min(interval, 0.01))
            after = server.probe()
        finally:
            for client in clients:
                client.sock.close()
        server.finish()
    count = _number(held, "sessions")
    if count != sessions:
        raise RuntimeError(f"the server holds {count:.0f} sessions, not {sessions}")
    grown = _number(held, "rss_bytes") - _number(empty, "rss_bytes")
    busy = _number(after, "cpu_s") - _number(held, "cpu_s")
    wall = _number(after, "wall_s") - _number(held, "wall_s")
    return Sample(
        {
            "bytes_per_session": grown / sessions,
            "cpu_s_per_s": busy / wall,
            "keepalives_per_s": sent / wall,
            "rss_mib": _number(held, "rss_bytes") / 2**20,
        },
        {"empty": empty, "held": held, "after": after},
    )


def plan(settings: Settings) -> Plan:
    """One case, no baseline: the figures are absolute (targets in the notes)."""
    sessions = QUICK_SESSIONS if settings.quick else SESSIONS
    idle = QUICK_IDLE_SECONDS if settings.quick else IDLE_SECONDS
    return Plan(
        params={"sessions": sessions, "idle": idle},
        cases=[
            Case(
                "trio_udpchat",
                "run_server (subprocess), idle sessions from one process's sockets",
                partial(measure, sessions, idle, settings.case_timeout, settings.helper_cpus),
            )
        ],
    )


def summarize(result: BenchmarkResult) -> dict[str, object]:
    """The ``sessions`` entry of the JSON summary (medians)."""
    case = result.cases[0]
    per, cpu = case.spread("bytes_per_session"), case.spread("cpu_s_per_s")
    return {
        "sessions": {
            "count": result.plan.params["sessions"],
            "bytes_per_session": None if per is None else per.median,
            "cpu_s_per_s": None if cpu is None else cpu.median,
        }
    }


BENCHMARK = Benchmark(
    name="sessions",
    title="{sessions:,} idle sessions held by one server, keepalives flowing for {idle} s",
    columns=[
        Column("bytes_per_session", "memory per session (bytes, RSS delta)", ",.0f"),
        Column("cpu_s_per_s", "server CPU s per s", ".4f"),
        Column("keepalives_per_s", "keepalives/s", ",.0f"),
        Column("rss_mib", "server RSS MiB", ",.1f"),
    ],
    compare=[],
    plan=plan,
    notes=["Target (issue 7): <= 2 KiB (2,048 bytes) per idle session at 10,000 sessions."],
    summarize=summarize,
)
