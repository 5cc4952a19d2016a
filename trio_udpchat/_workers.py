"""``server --workers N``: N server processes sharing one UDP port, and their supervisor.

Each worker is ``python -m trio_udpchat server ... --worker-index I``: it binds
the port with ``SO_REUSEPORT`` (Linux), so the kernel hashes each client's
address to one of them and keeps it there. The supervisor (this module, in the
parent process) serves nothing itself. It starts the workers, waits until
every one says it is listening (its first line on stdout), hands their output
on line by line, reports a worker that stops, and on cancellation (CTRL+C,
SIGTERM) stops them all.

Workers run in their own session, so a CTRL+C at the terminal reaches only the
supervisor, which passes it on once (as SIGTERM). Their stdin is a pipe the
supervisor holds and never writes: if the supervisor dies, even by SIGKILL, the
pipe ends and the workers stop too, rather than serve on unsupervised.
"""

from __future__ import annotations

import logging
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import trio

from ._events import Address
from ._udp import open_server_socket

_logger = logging.getLogger("trio_udpchat")

#: How long stopping workers get to exit on their own before they are killed.
STOP_TIMEOUT: Final = 5.0
#: A longer line from a worker is passed on in pieces of this size.
_MAX_LINE: Final = 1 << 16
#: Lines a worker may write on stderr before it listens; they are held until then.
_MAX_HELD: Final = 100

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class Worker:
    """A worker that is listening: its number (from 1), process id, and the first
    line it printed (its ``Listening at ...``)."""

    index: int
    pid: int
    said: bytes


class WorkerReport(Protocol):
    """Where the supervisor tells what happens to the workers (the CLI prints it)."""

    def listening(self, workers: Sequence[Worker]) -> None:
        """Every worker is listening: the server is up."""
        ...

    def output(self, index: int, stream: Stream, line: bytes) -> None:
        """Worker ``index`` wrote ``line`` (no newline) on its ``stream``."""
        ...

    def stopped(self, index: int, returncode: int, *, left: int, asked: bool) -> None:
        """Worker ``index`` ended with ``returncode``; ``left`` still serve.
        ``asked``: because the supervisor stopped it (else unexpectedly)."""
        ...

    def failed(self, index: int, returncode: int, said: Sequence[bytes]) -> None:
        """Worker ``index`` ended before listening, having ``said`` these stderr
        lines; the others are being stopped."""
        ...


def describe_exit(returncode: int) -> str:
    """How a process ended, for a person: ``killed by SIGKILL``, ``exited with status 1``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with status {returncode}"


async def probe_port(host: str, port: int) -> Address:
    """The address the workers are to share: ``host`` and ``port`` (``0``: a free one).

    Raises :class:`~trio_udpchat._udp.StartupError` if it is taken. The probe
    binds *without* ``SO_REUSEPORT``, so a port held by another group of workers
    counts as taken, rather than being joined and its clients shared with it.
    It is closed at once: a socket of ours left in the group would get clients too.
    """
    with await open_server_socket(host, port) as sock:
        address: Address = sock.getsockname()
    return address


class _Lines:
    """The lines a pipe carries, without their newlines (long ones in pieces)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def next(self) -> bytes | None:
        """The next line; ``None`` at the end of the stream."""
        while True:
            end = self._buffer.find(b"\n", 0, _MAX_LINE)
            if end >= 0:
                return self._take(end, end + 1)
            if len(self._buffer) >= _MAX_LINE:
                return self._take(_MAX_LINE, _MAX_LINE)
            chunk = await self._stream.receive_some(_MAX_LINE)
            if not chunk:  # the end: the rest is the last line, if there is a rest
                return self._take(len(self._buffer), len(self._buffer)) if self._buffer else None
            self._buffer += chunk

    def _take(self, end: int, skip: int) -> bytes:
        line = bytes(self._buffer[:end])
        del self._buffer[:skip]
        return line


class _Child:
    """One worker process and what the supervisor knows of it."""

    def __init__(self, index: int, process: trio.Process) -> None:
        self.index = index
        self.process = process
        self.said: bytes | None = None  # its first stdout line, once it listens
        self.held: list[bytes] = []  # stderr before it listens
        self.ended = False


class _Supervisor:
    def __init__(self, report: WorkerReport, count: int, stop_timeout: float) -> None:
        self._report = report
        self._count = count
        self._stop_timeout = stop_timeout
        self._children: list[_Child] = []
        self._stopping = trio.Event()
        # Set once every worker listens (or they are stopping): what a worker prints
        # after its first line waits for this, so the Listening line comes first.
        self._released = trio.Event()
        self.status = 0
        self.done = trio.Event()

    def stop(self) -> None:
        """Ask every worker still running to stop (SIGTERM); idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._released.set()
        for child in self._children:
            if not child.ended:
                child.process.send_signal(signal.SIGTERM)

    async def run(self, argvs: Sequence[Sequence[str]]) -> None:
        # Shielded: once cancelled we still pass on the workers' last words and
        # wait for them to exit; stop() and the reaper bound how long that takes.
        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reap)
                async with trio.open_nursery() as children:
                    for index, argv in enumerate(argvs, 1):
                        if self._stopping.is_set():
                            break
                        child = await self._start(index, argv)
                        if child is not None:
                            children.start_soon(self._watch, child)
                nursery.cancel_scope.cancel()  # every worker has ended: no reaper needed
        self.done.set()

    async def _start(self, index: int, argv: Sequence[str]) -> _Child | None:
        try:
            process = await trio.lowlevel.open_process(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            said = f"cannot start worker {index}: {exc.strerror or exc}".encode()
            self._failed(index, 1, [said])
            return None
        _logger.info("worker %d started: process %d", index, process.pid)
        child = _Child(index, process)
        self._children.append(child)
        if self._stopping.is_set():  # another worker failed while this one started
            process.send_signal(signal.SIGTERM)
        return child

    async def _reap(self) -> None:
        """Once stopping, give the workers ``stop_timeout`` to exit, then kill them."""
        await self._stopping.wait()
        with trio.move_on_after(self._stop_timeout):
            for child in self._children:
                await child.process.wait()
            return
        for child in self._children:
            if child.process.returncode is None:
                _logger.warning("worker %d did not stop in time: killed", child.index)
                child.process.kill()

    async def _watch(self, child: _Child) -> None:
        process = child.process
        assert process.stdout is not None
        assert process.stderr is not None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump_stdout, child, _Lines(process.stdout))
            nursery.start_soon(self._pump_stderr, child, _Lines(process.stderr))
        # Both pipes are at their end, so everything the worker said has been seen.
        returncode = await process.wait()
        if process.stdin is not None:
            await process.stdin.aclose()
        child.ended = True
        asked = self._stopping.is_set()
        if child.said is None and not asked:
            self._failed(child.index, returncode, child.held)
        elif child.said is not None:
            left = sum(not other.ended for other in self._children)
            self._report.stopped(child.index, returncode, left=left, asked=asked)
            if left == 0 and not asked:
                self.status = 1

    def _failed(self, index: int, returncode: int, said: Sequence[bytes]) -> None:
        self.status = returncode or 1
        self._report.failed(index, returncode, said)
        self.stop()

    async def _pump_stdout(self, child: _Child, lines: _Lines) -> None:
        first = await lines.next()
        if first is None:
            return
        child.said = first
        ready = [c for c in self._children if c.said is not None]
        if len(ready) == self._count and not self._stopping.is_set():
            workers = [Worker(c.index, c.process.pid, c.said or b"") for c in ready]
            self._report.listening(workers)
            self._released.set()
        await self._released.wait()
        for held in child.held:
            self._report.output(child.index, "stderr", held)
        child.held.clear()
        while (line := await lines.next()) is not None:
            self._report.output(child.index, "stdout", line)

    async def _pump_stderr(self, child: _Child, lines: _Lines) -> None:
        while (line := await lines.next()) is not None:
            if child.said is not None and self._released.is_set():
                self._report.output(child.index, "stderr", line)
            elif len(child.held) < _MAX_HELD:
                child.held.append(line)


async def supervise(
    argvs: Sequence[Sequence[str]],
    report: WorkerReport,
    *,
    stop_timeout: float = STOP_TIMEOUT,
) -> int:
    """Run one worker per argv in ``argvs`` until cancelled or none is left.

    Each worker must print one line on stdout once it listens (the server's
    ``Listening at ...``); ``report.listening`` is called when all have. What
    the workers print afterwards goes to ``report.output``.

    Cancel to stop: the workers get SIGTERM and ``stop_timeout`` seconds to
    exit before SIGKILL, and their last lines are still passed on; then the
    cancellation goes on. Without cancellation, the exit status: 1 once every
    worker has stopped by itself, or a worker's status if one failed to start
    (the others are stopped then).
    """
    supervisor = _Supervisor(report, len(argvs), stop_timeout)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervisor.run, argvs)
        try:
            await supervisor.done.wait()
        finally:
            supervisor.stop()
    return supervisor.status
