"""Helper programs in subprocesses: a server under test, a stdlib peer.

A helper is ``python -m bench.<module> ...`` started from the project root. It
prints one JSON line when it is ready (its port), and one more when it finishes
(what it counted) after its stdin closes or it is told to stop. It accepts
``--cpus LIST`` (pin itself there) and ``--max-seconds``. Every wait here
is bounded; a helper that overstays is killed. Helpers also bound themselves
(``--max-seconds``), so none outlives a crashed benchmark run for long.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

#: The project root: helpers run with it as their working directory, so ``bench`` imports.
ROOT = Path(__file__).resolve().parent.parent

_MAX_LINE = 1 << 20


class HelperError(Exception):
    """A helper program did not start, answer or finish in time."""


def _read_line(fd: int, timeout: float) -> bytes:
    """One line from ``fd`` within ``timeout`` seconds (helpers write only a few)."""
    deadline = time.monotonic() + timeout
    line = bytearray()
    while not line.endswith(b"\n") and len(line) < _MAX_LINE:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise HelperError("the helper did not answer in time")
        chunk = os.read(fd, 1)  # one byte at a time: nothing after the line is consumed
        if not chunk:
            raise HelperError("the helper exited before answering")
        line += chunk
    return bytes(line)


class Helper:
    """``python -m bench.<module> *args`` as a context manager.

    ``ready`` is the JSON object of its first line; :meth:`finish` closes its
    stdin and returns the JSON object of its last line.
    """

    def __init__(
        self,
        module: str,
        *args: str,
        cpus: frozenset[int] | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        pin = ["--cpus", ",".join(map(str, sorted(cpus)))] if cpus is not None else []
        self._argv = [sys.executable, "-m", f"bench.{module}", *args, *pin]
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, object] = {}

    @property
    def port(self) -> int:
        """The UDP port the helper listens on (from its ready line)."""
        port = self.ready.get("port")
        if not isinstance(port, int):
            raise HelperError(f"the helper's ready line has no port: {self.ready!r}")
        return port

    @property
    def pid(self) -> int:
        """The helper's process id."""
        return self._running().pid

    def probe(self, timeout: float = 10.0) -> dict[str, object]:
        """Ask the helper for a reading (a ``probe`` line) and return its JSON answer."""
        proc = self._running()
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(b"probe\n")
        proc.stdin.flush()
        return _parse(_read_line(proc.stdout.fileno(), timeout))

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(
            self._argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        try:
            assert self._proc.stdout is not None
            self.ready = _parse(_read_line(self._proc.stdout.fileno(), self._start_timeout))
        except BaseException:
            self._kill()
            raise
        return self

    def finish(self, timeout: float = 10.0) -> dict[str, object]:
        """Close the helper's stdin, wait for it to exit, and return its last JSON line."""
        proc = self._running()
        try:
            out, _ = proc.communicate(timeout=timeout)  # closes stdin first
        except subprocess.TimeoutExpired:
            self._kill()
            raise HelperError(f"{self._argv[2]} did not finish within {timeout} s") from None
        lines = out.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise HelperError(f"{self._argv[2]} exited with status {proc.returncode}")
        return _parse(lines[-1])

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._kill()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise HelperError("the helper was not started")
        return self._proc

    def _kill(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=5.0)


def _parse(line: bytes) -> dict[str, object]:
    try:
        value = json.loads(line)
    except ValueError:
        raise HelperError(f"the helper wrote something that is not JSON: {line[:200]!r}") from None
    if not isinstance(value, dict):
        raise HelperError(f"the helper wrote JSON that is not an object: {line[:200]!r}")
    return value
