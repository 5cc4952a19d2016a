"""A private ``redis-server`` for tests: the ``redis_server`` fixture.

Each test gets its own server on a free loopback port, persistence off, so a
restart comes back empty (as a bus that lost its data does). Without
``redis-server`` the tests that use it are skipped, except in CI (``CI=true``),
where a missing server is a failure: CI must not go green by testing nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: How long a starting server may take to answer PING.
START_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One private ``redis-server`` process, and ways to hurt it."""

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it answers."""
        assert self._process is None, "already running"
        log = (self.workdir / "redis.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                [self.executable, *(arg for pair in self._options().items() for arg in pair)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers_ping(self.port):
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT} s")
            # real-time: a starting process has no "ready" event to wait on; each PING
            # is the check, the pause only spaces them out (bounded by the deadline).
            time.sleep(0.01)

    def _options(self) -> dict[str, str]:
        # Our own config on the command line (no config file), so the Debian
        # package's /etc/redis and its service play no part. --save '' and
        # --appendonly no: nothing survives a restart.
        return {
            "--port": str(self.port),
            "--bind": "127.0.0.1",
            "--save": "",
            "--appendonly": "no",
            "--dir": str(self.workdir),
            "--daemonize": "no",
        }

    def log(self) -> str:
        """What the server wrote so far."""
        return (self.workdir / "redis.log").read_text(errors="replace")[-2000:]

    def kill(self) -> None:
        """SIGKILL the server: sockets close at once, everything in it is gone."""
        process = self._take()
        if self._paused:
            # SIGKILL ends a stopped process too; resuming it first means no stopped
            # child is left behind should the kill itself fail.
            process.send_signal(signal.SIGCONT)
            self._paused = False
        process.kill()
        process.wait(timeout=START_TIMEOUT)

    def restart(self) -> None:
        """Kill the server if it runs, then start a new, empty one on the same port."""
        if self._process is not None:
            self.kill()
        self.start()

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open but nothing answers."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused server."""
        self._signal(signal.SIGCONT)
        self._paused = False

    def stop(self) -> None:
        """End the server for good (teardown); SIGKILL, since it has nothing to save."""
        if self._process is not None:
            self.kill()

    def _take(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "not running"
        process, self._process = self._process, None
        return process

    def _signal(self, signum: signal.Signals) -> None:
        assert self._process is not None, "not running"
        os.kill(self._process.pid, signum)


def redis_executable() -> str:
    """The path of ``redis-server``; skips the test if missing (fails it in CI)."""
    found = shutil.which("redis-server")
    if found is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, empty ``redis-server``, stopped after the test."""
    server = RedisServer(redis_executable(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
