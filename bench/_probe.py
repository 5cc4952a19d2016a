"""Readings from the OS around a measurement, and a hard time limit for blocking code."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

_SNMP = Path("/proc/net/snmp")


class OvertimeError(Exception):
    """A blocking measurement ran past its time limit."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`OvertimeError` in the main thread if the block runs ``seconds``.

    A ``SIGALRM`` interval timer interrupts even a blocking ``recv`` (PEP 475
    retries a system call only if the handler returns), so a baseline can use a
    truly blocking socket, with no timeout (and no ``poll``) on every call.
    """

    def expire(signum: int, frame: FrameType | None) -> None:
        raise OvertimeError(f"over the time limit of {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def udp_receive_errors() -> float | None:
    """The kernel's count of UDP datagrams dropped on receive (a full socket buffer).

    ``RcvbufErrors`` from ``/proc/net/snmp`` (Linux). It counts every socket of
    the network namespace, not just ours: read it as "at most this many were
    ours". ``None`` where it cannot be read.
    """
    try:
        lines = _SNMP.read_text().splitlines()
    except OSError:
        return None
    udp = [line.split() for line in lines if line.startswith("Udp:")]
    if len(udp) < 2 or "RcvbufErrors" not in udp[0]:
        return None
    return float(udp[1][udp[0].index("RcvbufErrors")])


#: Where processes run: ``same`` puts the benchmark and its helpers on one CPU,
#: ``split`` gives the helpers (servers) a CPU of their own, ``none`` lets the OS choose.
PIN_MODES = ("same", "split", "none")


def placement(mode: str) -> tuple[frozenset[int] | None, frozenset[int] | None]:
    """The CPUs for ``(this process, the helpers)`` in ``mode``; ``None`` is "any"."""
    if mode == "none" or not hasattr(os, "sched_getaffinity"):
        return None, None
    allowed = sorted(os.sched_getaffinity(0))
    mine = frozenset(allowed[:1])
    if mode == "same" or len(allowed) < 2:
        return mine, mine
    return mine, frozenset(allowed[1:2])


def pin(cpus: frozenset[int] | None) -> None:
    """Keep this process on ``cpus`` (no-op for ``None``)."""
    pin_process(0, cpus)


def pin_process(pid: int, cpus: frozenset[int] | None) -> None:
    """Keep process ``pid`` (0: this one) on ``cpus`` (no-op for ``None``)."""
    if cpus is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, cpus)


@contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run this process on ``cpus`` for the block, then where it ran before."""
    if cpus is None or not hasattr(os, "sched_getaffinity"):
        yield
        return
    before = frozenset(os.sched_getaffinity(0))
    pin(cpus)
    try:
        yield
    finally:
        pin(before)


def cpu_list(text: str) -> frozenset[int]:
    """Parse ``--cpus 0,1`` (a helper's argument)."""
    return frozenset(int(part) for part in text.split(",") if part)


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used so far, read from ``/proc``.

    Read from outside, so measuring costs the process nothing; ``None`` where
    ``/proc`` is unavailable. The resolution is one clock tick (usually 10 ms).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: count fields after its ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
