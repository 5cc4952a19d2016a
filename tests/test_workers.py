"""``server --workers N``: its flags, and the supervisor with real worker processes.

The CLI needs ``--bus`` for ``--workers`` (workers without a shared room would
split the chat), and the bus is not wired yet; so the end-to-end tests run the
supervisor (``_workers.supervise``, or the CLI's ``run_workers`` in a driver
process) on real ``server --worker-index I`` children, which need no bus.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.e2e_helpers import (
    LOCALHOST,
    TIMEOUT,
    Exit,
    StreamReader,
    command,
    free_port,
    program_env,
    run_to_end,
)
from trio_udpchat._cli import build_parser, main, worker_argv
from trio_udpchat._events import Listening, NotEncrypted
from trio_udpchat._jsonout import json_formatter
from trio_udpchat._render import render
from trio_udpchat._workers import Stream, Worker, _Lines, describe_exit, supervise

#: Clients, each from its own port: enough that both workers surely get some.
CLIENTS = 20
#: A bound on a whole test that starts worker processes.
LIMIT = 30.0
DRIVER = Path(__file__).with_name("workers_driver.py")


# -- flags -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--workers", "2"], "--workers needs --bus"),
        (["--room", "lobby"], "--room names a room on a bus"),
        (["--bus", "http://127.0.0.1:6379/0"], "invalid bus URL"),
        (["--bus", "redis:"], "invalid bus URL"),
        (["--bus", "redis://[::1/0"], "invalid bus URL"),
        (["--bus", "redis://h", "--room", "a b"], "invalid room name"),
        (["--bus", "redis://h", "--room", ""], "invalid room name"),
        (["--bus", "redis://h", "--room", "x" * 65], "invalid room name"),
        (["--bus", "redis://h", "--room", "caf\u00e9"], "invalid room name"),
        (["--bus", "redis://h", "--workers", "0"], "invalid number of workers"),
        (["--bus", "redis://h", "--workers", "65"], "invalid number of workers"),
        (["--bus", "redis://h", "--workers", "two"], "invalid number of workers"),
    ],
)
def test_bad_bus_flags_are_one_usage_line(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["server", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert complaint in err


def test_good_bus_flags_parse() -> None:
    args = build_parser().parse_args(
        ["server", "--bus", "rediss://h:6380/1", "--room", "A.b-c_9", "--workers", "64"]
    )
    assert (args.bus, args.room, args.workers) == ("rediss://h:6380/1", "A.b-c_9", 64)
    defaults = build_parser().parse_args(["server"])
    assert (defaults.bus, defaults.room, defaults.workers) == (None, None, 1)


def test_workers_need_so_reuseport(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["server", "--bus", "redis://h", "--workers", "2"])
    assert exited.value.code == 2
    assert "SO_REUSEPORT" in capsys.readouterr().err


def test_the_worker_index_is_not_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["server", "--help"])
    out = capsys.readouterr().out
    assert "--workers N" in out
    assert "--worker-index" not in out


def test_a_worker_gets_the_servers_flags_on_the_real_port() -> None:
    parser = build_parser()
    given = ["server", "--port", "0", "--bus", "redis://h/2", "--room", "r", "--workers", "3"]
    given += ["-vv", "--json", "--name=-op", "--rate-limit", "0.5", "--trust-plain"]
    args = parser.parse_args(given)
    argv = worker_argv(args, 4321, 2)
    assert argv[:4] == [sys.executable, "-m", "trio_udpchat", "server"]
    again = parser.parse_args(argv[3:])
    assert vars(again) == vars(args) | {"port": 4321, "workers": 1, "worker_index": 2}


# -- what the supervisor prints ------------------------------------------------------


def test_the_listening_line_counts_the_workers() -> None:
    address = (LOCALHOST, 3000)
    assert render(Listening(address), "server") == "Listening at ('127.0.0.1', 3000)"
    line = render(Listening(address, workers=2), "server")
    assert line == "Listening at ('127.0.0.1', 3000) with 2 workers"
    assert json.loads(json_formatter("server")(Listening(address, workers=2)))["workers"] == 2
    assert "workers" not in json.loads(json_formatter("server")(Listening(address)))


def test_a_workers_json_says_which_worker() -> None:
    line = json_formatter("server", extra={"worker": 3})(NotEncrypted())
    assert json.loads(line)["worker"] == 3


@pytest.mark.parametrize(
    ("returncode", "said"),
    [(-9, "killed by SIGKILL"), (-15, "killed by SIGTERM"), (1, "exited with status 1")],
)
def test_describe_exit(returncode: int, said: str) -> None:
    assert describe_exit(returncode) == said


async def test_lines_are_split_bounded_and_the_last_needs_no_newline() -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    lines = _Lines(receive)
    await send.send_all(b"one\ntw")
    assert await lines.next() == b"one"
    await send.send_all(b"o\n" + b"x" * 70_000 + b"\nlast")
    await send.aclose()
    assert await lines.next() == b"two"
    assert await lines.next() == b"x" * 65536
    assert await lines.next() == b"x" * (70_000 - 65536)
    assert await lines.next() == b"last"
    assert await lines.next() is None


# -- the supervisor with real workers ---------------------------------------------------


class Recorder:
    """A :class:`~trio_udpchat._workers.WorkerReport` that keeps everything, for tests."""

    def __init__(self) -> None:
        self.workers: list[Worker] = []
        self.lines: list[tuple[int, Stream, str]] = []
        self.stops: list[tuple[int, int, int, bool]] = []
        self.failures: list[tuple[int, int, list[bytes]]] = []
        self._changed = trio.Event()

    def _change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def listening(self, workers: Sequence[Worker]) -> None:
        self.workers = list(workers)
        self._change()

    def output(self, index: int, stream: Stream, line: bytes) -> None:
        self.lines.append((index, stream, line.decode("utf-8")))
        self._change()

    def stopped(self, index: int, returncode: int, *, left: int, asked: bool) -> None:
        self.stops.append((index, returncode, left, asked))
        self._change()

    def failed(self, index: int, returncode: int, said: Sequence[bytes]) -> None:
        self.failures.append((index, returncode, list(said)))
        self._change()

    async def until(self, done: Callable[[], bool]) -> None:
        """Return once ``done()`` holds (checked after every report)."""
        while not done():
            await self._changed.wait()


def workers_on(port: int, count: int, *flags: str) -> list[list[str]]:
    """The argvs of ``count`` workers sharing ``port``."""
    return [
        command("server", "--port", str(port), "--worker-index", str(index), *flags)
        for index in range(1, count + 1)
    ]


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers inherit this process's environment: make it the one e2e programs get."""
    for name, value in program_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TRIO_UDPCHAT_KEY", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


@contextlib.contextmanager
def clients(count: int) -> Iterator[list[socket.socket]]:
    """``count`` plain UDP sockets, each on its own port."""
    with contextlib.ExitStack() as stack:
        socks = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.bind((LOCALHOST, 0))
            socks.append(sock)
        yield socks


SAID = re.compile(r"\b(?P<word>hello|again) (?P<n>\d+)\b")


def seen_by(recorder: Recorder, word: str) -> dict[int, int]:
    """Which worker showed each client's ``word`` line: client number -> worker."""
    found = {}
    for index, stream, line in recorder.lines:
        match = SAID.search(line)
        if stream == "stdout" and match is not None and match["word"] == word:
            found[int(match["n"])] = index
    return found


@pytest.mark.e2e
@pytest.mark.usefixtures("worker_env")
async def test_workers_share_the_port_and_a_killed_ones_clients_move() -> None:
    port = free_port()
    recorder = Recorder()
    with trio.fail_after(LIMIT), clients(CLIENTS) as socks:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervise, workers_on(port, 2, "--trust-plain"), recorder)
            await recorder.until(lambda: bool(recorder.workers))
            for worker in recorder.workers:  # both bound the same port
                assert f"Listening at ('127.0.0.1', {port})" == worker.said.decode()

            for n, sock in enumerate(socks):
                sock.sendto(f"hello {n}\n".encode(), (LOCALHOST, port))
            await recorder.until(lambda: len(seen_by(recorder, "hello")) == CLIENTS)
            spread = seen_by(recorder, "hello")
            counts = {i: list(spread.values()).count(i) for i in (1, 2)}
            print(f"{CLIENTS} clients over 2 workers: {counts}")
            assert all(counts.values()), f"one worker got every client: {counts}"

            first = recorder.workers[0]
            os.kill(first.pid, signal.SIGKILL)
            await recorder.until(lambda: bool(recorder.stops))
            assert recorder.stops == [(first.index, -signal.SIGKILL, 1, False)]

            for n, sock in enumerate(socks):
                sock.sendto(f"again {n}\n".encode(), (LOCALHOST, port))
            await recorder.until(lambda: len(seen_by(recorder, "again")) == CLIENTS)
            survivor = recorder.workers[1].index
            assert set(seen_by(recorder, "again").values()) == {survivor}

            start = time.monotonic()
            nursery.cancel_scope.cancel()
    assert time.monotonic() - start < TIMEOUT
    assert recorder.stops[1:] == [(survivor, 0, 0, True)]
    assert not any("Traceback" in line for _, _, line in recorder.lines), recorder.lines
    assert recorder.failures == []


@pytest.mark.e2e
@pytest.mark.usefixtures("worker_env")
async def test_when_the_last_worker_stops_so_does_the_supervisor() -> None:
    recorder = Recorder()
    with trio.fail_after(LIMIT):
        async with trio.open_nursery() as nursery:

            async def run() -> None:
                assert await supervise(workers_on(free_port(), 1), recorder) == 1

            nursery.start_soon(run)
            await recorder.until(lambda: bool(recorder.workers))
            os.kill(recorder.workers[0].pid, signal.SIGTERM)
    assert recorder.stops == [(1, 0, 0, False)]  # a clean exit, but nobody asked for it


@pytest.mark.e2e
@pytest.mark.usefixtures("worker_env")
async def test_a_worker_that_cannot_start_stops_the_others() -> None:
    with trio.fail_after(LIMIT), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOCALHOST, 0))  # without SO_REUSEPORT: no worker can share it
        port = taken.getsockname()[1]
        recorder = Recorder()
        status = await supervise(workers_on(port, 3), recorder)
    assert status == 1
    assert recorder.workers == []
    [(_, returncode, said)] = recorder.failures
    assert returncode == 1
    assert said == [
        f"trio-udpchat: error: cannot listen on 127.0.0.1 port {port}:"
        " the port is already in use (is another server running?)".encode()
    ]


# -- the supervising process -----------------------------------------------------------


def gone(pid: int, timeout: float = TIMEOUT) -> bool:
    """Whether process ``pid`` has ended (waiting up to ``timeout`` for it)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])  # readable once it exits
    finally:
        os.close(fd)


class Driver:
    """``tests/workers_driver.py``: the CLI's supervisor of ``count`` workers on ``port``."""

    def __init__(self, port: int, count: int) -> None:
        argv = [sys.executable, str(DRIVER), str(port), str(count), "--trust-plain"]
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=program_env(),
        )
        assert self.popen.stdout is not None
        assert self.popen.stderr is not None
        self.stdout = StreamReader(self.popen.stdout, "driver stdout")
        self.stderr = StreamReader(self.popen.stderr, "driver stderr")

    def line(self, reader: StreamReader, pattern: str) -> re.Match[str]:
        """Skip ``reader``'s lines until one matches ``pattern``."""
        deadline = time.monotonic() + TIMEOUT
        while (line := reader.readline(max(deadline - time.monotonic(), 0.0))) is not None:
            match = re.fullmatch(pattern, line.decode("utf-8"))
            if match is not None:
                return match
        raise AssertionError(f"no line matching {pattern!r}: {reader.seen()!r}")

    def end(self, signum: int) -> Exit:
        start = time.monotonic()
        self.popen.send_signal(signum)
        status = self.popen.wait(TIMEOUT)
        seconds = time.monotonic() - start
        return Exit(
            status, seconds, self.stdout.everything(), self.stderr.everything().decode("utf-8")
        )

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(TIMEOUT)
        self.stdout.join()
        self.stderr.join()


@pytest.fixture
def driver() -> Iterator[Callable[[int, int], Driver]]:
    started: list[Driver] = []

    def start(port: int, count: int) -> Driver:
        started.append(Driver(port, count))
        return started[-1]

    yield start
    for one in started:
        one.kill()


@pytest.mark.e2e
def test_ctrl_c_stops_the_supervisor_and_every_worker(
    driver: Callable[[int, int], Driver],
) -> None:
    port = free_port()
    parent = driver(port, 2)
    pids = {}
    for _ in range(2):
        started = parent.line(
            parent.stderr, r"trio_udpchat: INFO: worker (\d) started: process (\d+)"
        )
        pids[int(started[1])] = int(started[2])
    parent.line(parent.stdout, re.escape(f"Listening at ('127.0.0.1', {port}) with 2 workers"))
    with clients(1) as [sock]:
        sock.sendto(b"hello 1\n", (LOCALHOST, port))
        said = parent.line(parent.stdout, r"\[worker (\d)\] The client at .* says 'hello 1'")
    talked_to = int(said[1])
    other = 3 - talked_to
    os.kill(pids[other], signal.SIGKILL)
    parent.line(
        parent.stderr, rf"\*\*\* worker {other} stopped \(killed by SIGKILL\); 1 still serving"
    )
    ended = parent.end(signal.SIGINT)
    ended.assert_clean()
    assert gone(pids[talked_to], timeout=0)
    assert ended.stderr.count("still serving") == 1, ended.stderr


@pytest.mark.e2e
def test_killing_the_supervisor_stops_its_workers(driver: Callable[[int, int], Driver]) -> None:
    parent = driver(free_port(), 2)
    pids = [
        int(parent.line(parent.stderr, r"trio_udpchat: INFO: worker \d started: process (\d+)")[1])
        for _ in range(2)
    ]
    parent.line(parent.stdout, r"Listening at .* with 2 workers")
    parent.popen.kill()
    # Nobody passes a signal on now: the workers see their stdin end.
    assert all(gone(pid) for pid in pids)


@pytest.mark.e2e
def test_a_taken_port_is_one_line_before_any_worker_starts() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOCALHOST, 0))
        port = str(taken.getsockname()[1])
        args = ["server", "--workers", "2", "--bus", "redis://127.0.0.1:9/0", "--port", port]
        ended = run_to_end(*command(*args))
    line = ended.assert_one_line_error(1)
    assert line.endswith("the port is already in use (is another server running?)")
