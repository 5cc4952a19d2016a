"""A private, throwaway ``redis-server`` for the bus benchmarks.

:func:`missing` says why the bus benchmarks cannot run here (no ``redis-server``
on the PATH, or no ``coredis`` to talk to it), so they are skipped with that
reason rather than failing. :func:`private_redis` starts a server on a free
loopback port with persistence off, waits until it answers, and kills it on the
way out, whatever happened: nothing of one repetition survives into the next.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ._probe import pin_process

#: How long a fresh server may take to answer ``PING``.
START_TIMEOUT = 10.0


def missing() -> str | None:
    """Why the Redis bus cannot be benchmarked here; ``None`` if it can."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (apt-get install redis-server)"
    if importlib.util.find_spec("coredis") is None:
        return "coredis is not installed (pip install 'trio-udpchat[redis]')"
    return None


@dataclass(frozen=True, slots=True)
class Redis:
    """A running private server: where to reach it, and its process (for its CPU time)."""

    url: str
    pid: int


def _unused_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def private_redis(cpus: frozenset[int] | None = None) -> Iterator[Redis]:
    """A fresh, empty ``redis-server`` on ``127.0.0.1`` (on ``cpus``, if given)."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError(missing())
    port = _unused_tcp_port()
    argv = [executable, "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        pin_process(proc.pid, cpus)
        deadline = time.monotonic() + START_TIMEOUT
        while not _pong(port):
            if proc.poll() is not None:
                said = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"redis-server exited with status {proc.returncode}: {said}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT} s")
            time.sleep(0.01)
        yield Redis(f"redis://127.0.0.1:{port}/0", proc.pid)
    finally:
        proc.kill()  # nothing to save: persistence is off
        proc.communicate(timeout=START_TIMEOUT)
