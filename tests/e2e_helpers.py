"""Running the real program as a subprocess, for the end-to-end tests.

Every wait here is bounded: lines are read from a pipe by a reader thread and
handed out under a deadline, processes are waited for with a timeout, and a
:class:`Launcher` kills whatever it started when the test ends, pass or fail.
Nothing sleeps to synchronise: a test waits for the line that proves the
program got where it should be.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Protocol

import pexpect  # type: ignore[import-untyped,unused-ignore]

#: The longest any single wait may take (a line, an exit, a datagram).
TIMEOUT: Final = 5.0
#: How soon after CTRL+C, SIGTERM or EOF the program must have exited.
SHUTDOWN_LIMIT: Final = 1.0
#: More lines than any test expects; a bound on every line-skipping loop.
MAX_LINES: Final = 10_000
#: How much of a program's output a failure message shows (the end of it).
SHOWN: Final = 1500

LOCALHOST: Final = "127.0.0.1"
SERVER_PROMPT: Final = "Input message to send to client: "
CLIENT_PROMPT: Final = "Input message to send to server: "
LISTENING: Final = re.compile(r"Listening at \('(?P<host>[^']+)', (?P<port>\d+)\)")
CLIENT_SAYS: Final = re.compile(
    r"The client at \('(?P<host>[^']+)', (?P<port>\d+)\) says (?P<text>.*)"
)

#: The console script that ``pip install`` puts next to the interpreter.
CONSOLE_SCRIPT: Final = Path(sys.executable).parent / "trio-udpchat"


def command(*args: str) -> list[str]:
    """The argv that runs ``trio-udpchat *args`` with this interpreter."""
    return [sys.executable, "-m", "trio_udpchat", *args]


def program_env(**extra: str) -> dict[str, str]:
    """The environment of a program under test: ours, UTF-8 stdio whatever the locale."""
    env = dict(os.environ, PYTHONUTF8="1")
    # A developer's own passphrase or colour choice must not reach the tests.
    for name in ("PYTHONWARNINGS", "PYTHONIOENCODING", "COLUMNS", "LINES", "NO_COLOR"):
        env.pop(name, None)
    env.pop("TRIO_UDPCHAT_KEY", None)
    return env | extra


def server_says(port: int, text: str, host: str = LOCALHOST) -> str:
    """The line the server prints when the client at ``(host, port)`` says ``text``."""
    return f"The client at {(host, port)!r} says {text!r}"


def server_replied(text: str) -> str:
    """The line the client prints when the server replies ``text``."""
    return f"The server replied with {text!r}"


# -- pipes ---------------------------------------------------------------------


class StreamReader:
    """Reads one pipe to its end in a thread; hands out lines under a deadline.

    Everything read is kept, so :meth:`everything` gives the whole transcript
    byte for byte once the program has exited.
    """

    def __init__(self, stream: IO[bytes], name: str) -> None:
        self._stream = stream
        self._name = name
        self._data = bytearray()
        self._consumed = 0  # bytes already handed out as lines
        self._eof = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._pump, name=name, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        fd = self._stream.fileno()
        chunk = b"-"
        while chunk:  # ends at EOF, which the process's exit guarantees
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            with self._changed:
                self._data += chunk
                self._eof = not chunk
                self._changed.notify_all()

    def readline(self, timeout: float = TIMEOUT) -> bytes | None:
        """The next line, no newline; ``None`` at EOF; ``TimeoutError`` after ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(self._line_or_eof, timeout):
                raise TimeoutError(f"{self._name}: no complete line within {timeout:.1f} s")
            end = self._data.find(b"\n", self._consumed)
            if end < 0:  # EOF: the rest, if any, is the last line
                end = len(self._data)
                if end == self._consumed:
                    return None
            line = bytes(self._data[self._consumed : end])
            self._consumed = min(end + 1, len(self._data))
            return line

    def _line_or_eof(self) -> bool:
        return self._eof or self._data.find(b"\n", self._consumed) >= 0

    def everything(self, timeout: float = TIMEOUT) -> bytes:
        """All bytes the pipe carried, once it reaches EOF (within ``timeout``)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._eof, timeout):
                raise TimeoutError(f"{self._name}: no EOF within {timeout} s")
            return bytes(self._data)

    def seen(self) -> bytes:
        """What the pipe has carried so far."""
        with self._changed:
            return bytes(self._data)

    def join(self) -> None:
        """Wait for the reader thread (the pipe must be at EOF), then close the pipe."""
        self._thread.join(TIMEOUT)
        self._stream.close()


@dataclass(frozen=True)
class Exit:
    """How a program ended: its status, how long it took, and all it wrote."""

    status: int
    seconds: float
    stdout: bytes
    stderr: str

    @property
    def stdout_lines(self) -> list[str]:
        """Stdout decoded as UTF-8, split into lines."""
        return self.stdout.decode("utf-8").splitlines()

    def assert_clean(self, within: float = TIMEOUT) -> None:
        """Exit status 0, no traceback, and done in under ``within`` seconds."""
        assert self.status == 0, f"exit status {self.status}: {self}"
        assert "Traceback" not in self.stderr, self.stderr
        assert self.seconds < within, f"took {self.seconds:.2f} s, limit {within} s: {self}"

    def assert_one_line_error(self, status: int) -> str:
        """Exit ``status`` with exactly one non-empty line on stderr; return that line."""
        assert self.status == status, f"exit status {self.status}, expected {status}: {self}"
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one stderr line: {self.stderr!r}"
        assert lines[0].strip(), f"empty stderr line: {self.stderr!r}"
        assert self.stderr.endswith("\n"), repr(self.stderr)
        return lines[0]


class Program:
    """One ``trio-udpchat`` process with piped stdout and stderr."""

    def __init__(self, *args: str, stdin: bool = True, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            command(*args),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=program_env(**(env or {})),
        )
        assert self.popen.stdout is not None
        assert self.popen.stderr is not None
        name = " ".join(args)
        self.stdout = StreamReader(self.popen.stdout, f"stdout of {name!r}")
        self.stderr = StreamReader(self.popen.stderr, f"stderr of {name!r}")

    def __repr__(self) -> str:
        return (
            f"<Program {' '.join(self.args)!r} returncode={self.popen.poll()}"
            f" stdout (tail)={self.stdout.seen()[-SHOWN:]!r}"
            f" stderr (tail)={self.stderr.seen()[-SHOWN:]!r}>"
        )

    # -- input

    def write_line(self, text: str) -> None:
        """Type ``text`` and Enter."""
        self.write((text + "\n").encode("utf-8"))

    def write(self, data: bytes) -> None:
        """Write raw bytes to the program's stdin."""
        assert self.popen.stdin is not None, "started without a stdin pipe"
        self.popen.stdin.write(data)
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        """End the program's input (EOF, as CTRL+D)."""
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.popen.stdin.close()

    # -- output

    def read_line(self, timeout: float = TIMEOUT) -> str:
        """The next stdout line (UTF-8, no newline); fails on EOF or after ``timeout``."""
        try:
            line = self.stdout.readline(timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: {self!r}") from None
        assert line is not None, f"stdout ended early: {self!r}"
        return line.decode("utf-8")

    def wait_for_line(self, ending: str, timeout: float = TIMEOUT) -> str:
        """Skip stdout lines until one ends with ``ending``; return it."""
        deadline = time.monotonic() + timeout
        for _ in range(MAX_LINES):
            line = self.read_line(max(deadline - time.monotonic(), 0.0))
            if line.endswith(ending):
                return line
        raise AssertionError(f"no line ending {ending!r} among {MAX_LINES}: {self!r}")

    def is_alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen.poll() is None

    # -- ending

    def end(self, how: Callable[[], None] | None = None, timeout: float = TIMEOUT) -> Exit:
        """Do ``how`` (a signal, closing stdin, ...), then wait for the exit and time it."""
        start = time.monotonic()
        if how is not None:
            how()
        try:
            status = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout} s later: {self!r}") from None
        seconds = time.monotonic() - start
        self.close_stdin()
        stdout = self.stdout.everything()
        stderr = self.stderr.everything().decode("utf-8", errors="replace")
        return Exit(status, seconds, stdout, stderr)

    def interrupt(self, signum: int = signal.SIGINT) -> Exit:
        """Send ``signum`` and wait for the exit."""
        return self.end(lambda: self.popen.send_signal(signum))

    def eof(self) -> Exit:
        """Close stdin and wait for the exit."""
        return self.end(self.close_stdin)

    def kill(self) -> None:
        """Kill the process if it still runs, reap it and release its pipes (idempotent)."""
        if self.popen.poll() is None:
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(TIMEOUT)
        self.close_stdin()
        self.stdout.join()
        self.stderr.join()


def run_to_end(*argv: str, timeout: float = TIMEOUT) -> Exit:
    """Run ``argv`` with stdin at EOF until it exits (killed after ``timeout``)."""
    start = time.monotonic()
    done = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, env=program_env(), timeout=timeout
    )
    stderr = done.stderr.decode("utf-8", errors="replace")
    return Exit(done.returncode, time.monotonic() - start, done.stdout, stderr)


# -- terminals -----------------------------------------------------------------


class Tty(Protocol):
    """The part of ``pexpect.spawn`` the tests use."""

    before: str
    match: re.Match[str]
    exitstatus: int | None
    signalstatus: int | None

    def expect(self, pattern: object, timeout: float = ...) -> int: ...
    def expect_exact(self, pattern: object, timeout: float = ...) -> int: ...
    def send(self, s: str) -> int: ...
    def sendline(self, s: str = "") -> int: ...
    def sendintr(self) -> None: ...
    def sendeof(self) -> None: ...
    def close(self, force: bool = ...) -> None: ...


@dataclass(frozen=True)
class TtyExit:
    """How a program in a pseudo-terminal ended."""

    status: int | None
    signal: int | None
    seconds: float
    output: str  # everything after the last thing we expected

    def assert_clean(self, within: float = TIMEOUT) -> None:
        """Exit status 0, no traceback, and done in under ``within`` seconds."""
        assert self.status == 0, self
        assert self.signal is None, self
        assert "Traceback" not in self.output, self.output
        assert self.seconds < within, self


def end_tty(child: Tty, key: str) -> TtyExit:
    """Press CTRL+C (``key="intr"``) or CTRL+D (``key="eof"``) and wait for the exit."""
    start = time.monotonic()
    if key == "intr":
        child.sendintr()
    else:
        assert key == "eof", key
        child.sendeof()
    child.expect(pexpect.EOF, timeout=TIMEOUT)
    seconds = time.monotonic() - start
    child.close()
    return TtyExit(child.exitstatus, child.signalstatus, seconds, child.before)


# -- the launcher --------------------------------------------------------------


class Launcher(contextlib.ExitStack):
    """Starts servers, clients and terminals; kills every one of them on exit."""

    def start(self, *args: str, stdin: bool = True, env: dict[str, str] | None = None) -> Program:
        """Start ``trio-udpchat *args`` (with ``env`` added to its environment)."""
        program = Program(*args, stdin=stdin, env=env)
        self.callback(program.kill)
        return program

    def server(self, *args: str, host: str = LOCALHOST, stdin: bool = True) -> tuple[Program, int]:
        """A server on a free port of ``host``, and that port (read from its first line)."""
        server = self.start("server", "--host", host, "--port", "0", *args, stdin=stdin)
        return server, listening_port(server.read_line(), host)

    def client(
        self, port: int, *args: str, host: str = LOCALHOST, env: dict[str, str] | None = None
    ) -> Program:
        """A client of the server at ``host`` and ``port``."""
        return self.start("client", "--host", host, "--port", str(port), *args, env=env)

    def chatting(self, host: str = LOCALHOST, *server_args: str) -> tuple[Program, Program, int]:
        """A server and a client that has said ``Hello, server!``; also the client's port."""
        server, port = self.server(*server_args, host=host)
        client = self.client(port, host=host)
        return server, client, say(client, server, "Hello, server!", host)

    def tty(self, *args: str, env: dict[str, str] | None = None) -> Tty:
        """``trio-udpchat *args`` in a 24x200 pseudo-terminal (``env``: added variables)."""
        child: Tty = pexpect.spawn(
            sys.executable,
            ["-m", "trio_udpchat", *args],
            env=program_env(TERM="xterm", **(env or {})),
            dimensions=(24, 200),
            timeout=TIMEOUT,
            encoding="utf-8",
        )
        self.callback(child.close, force=True)
        return child


def listening_port(line: str, host: str = LOCALHOST) -> int:
    """The port in a ``Listening at (host, port)`` line."""
    match = LISTENING.fullmatch(line)
    assert match is not None, f"not a Listening line: {line!r}"
    assert is_host(match["host"], host), line
    return int(match["port"])


def is_host(shown: str, host: str) -> bool:
    """Whether the address part ``shown`` is ``host`` (``localhost``: either loopback)."""
    return shown == host or (host == "localhost" and shown in (LOCALHOST, "::1"))


def say(client: Program, server: Program, text: str, host: str = LOCALHOST) -> int:
    """``client`` sends ``text``; check the server shows it; return the client's port."""
    client.write_line(text)
    line = server.read_line()
    match = CLIENT_SAYS.fullmatch(line)
    assert match is not None, f"not a 'client says' line: {line!r}"
    assert is_host(match["host"], host), line
    assert match["text"] == repr(text), line
    return int(match["port"])


def reply(server: Program, client: Program, text: str) -> None:
    """The operator types ``text``; check the client shows it."""
    server.write_line(text)
    assert client.read_line() == server_replied(text)


# -- sockets -------------------------------------------------------------------


def family_of(host: str) -> socket.AddressFamily:
    """The address family of a numeric ``host``."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@contextlib.contextmanager
def udp_socket(host: str = LOCALHOST) -> Iterator[socket.socket]:
    """A blocking stdlib UDP socket bound to a free port of ``host``, timing out after a while."""
    with socket.socket(family_of(host), socket.SOCK_DGRAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.bind((host, 0))
        yield sock


def free_port(host: str = LOCALHOST) -> int:
    """A UDP port nothing listens on (bound, then released)."""
    with udp_socket(host) as sock:
        port: int = sock.getsockname()[1]
    return port


def can_bind(host: str) -> bool:
    """Whether a UDP socket can be bound on ``host`` (``::1`` may be disabled)."""
    try:
        free_port(host)
    except OSError:
        return False
    return True
