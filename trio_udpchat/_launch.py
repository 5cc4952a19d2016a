"""Running what the command line asked for: the terminal, the run loop, the
workers' supervisor.

``_cli`` imports this only once the arguments are parsed and checked, so
``--help`` and a usage error cost neither Trio nor the protocol's modules.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TextIO

import trio

from ._cli import PROG, worker_argv
from ._colour import PLAIN, AnsiStyle, Style, colour_wanted
from ._config import Config
from ._events import Address, Event, Listening, NotEncrypted
from ._jsonout import json_formatter
from ._logfile import LogFile
from ._run import run_client, run_server, run_until_signalled
from ._terminal import StdioTerminal
from ._udp import StartupError
from ._verbosity import configure_logging, log_above, log_event
from ._workers import Stream, Worker, describe_exit, probe_port, supervise


def launch(args: argparse.Namespace, passphrase: bytes | None, worker: int | None) -> int:
    """Run the command ``args`` parsed (``worker``: this server's index under
    ``--workers``); return the exit status."""
    configure_logging(args.verbose)
    if args.command == "server" and args.workers > 1:
        return _serve_with_workers(args, encrypted=passphrase is not None)
    log_file: LogFile | None = None
    if args.log is not None:
        try:
            log_file = LogFile(args.log, args.command, receipts=args.receipts)
        except OSError as exc:
            print(
                f"{PROG}: error: cannot open log file {args.log!r}: {exc.strerror}", file=sys.stderr
            )
            return 1
    observers: list[Callable[[Event], None]] = [log_event]
    if log_file is not None:
        observers.append(log_file)
    terminal = StdioTerminal(
        args.command,
        receipts=args.receipts,
        style=_style(args),
        formatter=json_formatter(args.command, extra=_worker_field(worker)) if args.json else None,
        observers=observers,
        on_typed=None if log_file is None else log_file.typed,
        # The supervisor says once for all its workers that the chat is not encrypted.
        hidden=() if worker is None else (NotEncrypted,),
    )
    log_above(terminal.line_editor)
    if args.command == "server":
        config = replace(
            Config(),
            session_expiry=args.session_timeout,
            max_clients=args.max_clients,
            rate_limit=args.rate_limit,
            rate_burst=max(1, round(2 * args.rate_limit)),
            plain_budget_factor=None if args.trust_plain else Config().plain_budget_factor,
            plain_rate=0.0 if args.trust_plain else Config().plain_rate,
        )
        run = partial(
            run_server,
            terminal,
            args.host,
            args.port,
            config,
            operator=not args.no_input and worker is None,
            name=args.name,
            passphrase=passphrase,
            allow_plain=args.allow_plain,
            bus=args.bus,
            room=args.room or "lobby",
            reuse_port=worker is not None,
            label=None if worker is None else f"{args.host}:{args.port}#{worker}",
        )
        if worker is not None:
            run = partial(_serve_until_input_ends, terminal, run)
    else:
        config = replace(Config(), keepalive_after=args.keepalive)
        run = partial(
            run_client,
            terminal,
            args.host,
            args.port,
            config,
            plain=args.plain,
            name=args.nick,
            passphrase=passphrase,
        )
    status = 0
    try:
        trio.run(run_until_signalled, run)
    except* StartupError as group:
        print(f"{PROG}: error: {_first(group)}", file=sys.stderr)
        status = 1
    except* BrokenPipeError:
        status = 0  # our reader went away: nothing left to say
    except* KeyboardInterrupt:
        status = 0  # CTRL+C before the signal handler was installed
    finally:
        log_above(None)
        terminal.close()
        if log_file is not None:
            log_file.close()
    if (
        args.command == "server"
        and terminal.input_ended
        and not terminal.interactive
        and not worker
    ):
        # A server started in the background (stdin /dev/null) stops at once: say why.
        print(
            f"{PROG}: end of input, server stopped (--no-input keeps it serving)", file=sys.stderr
        )
    return status


def _first(group: BaseExceptionGroup[StartupError]) -> StartupError:
    """The first error in ``group``, however deep in nested nurseries it was raised."""
    found: StartupError | BaseExceptionGroup[StartupError] = group
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found


def _style(args: argparse.Namespace) -> Style:
    wanted = colour_wanted(sys.stdout, os.environ, disabled=args.no_color)
    return AnsiStyle() if wanted else PLAIN


def _worker_field(worker: int | None) -> dict[str, int] | None:
    """The field a worker adds to its JSON objects (a line prefix would break them)."""
    return None if worker is None else {"worker": worker}


async def _serve_until_input_ends(
    terminal: StdioTerminal, serve: Callable[[], Awaitable[None]]
) -> None:
    """Run ``serve`` until stdin ends. A worker's stdin is a pipe its supervisor holds
    and never writes to, so it ends when the supervisor does, however it died."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        while await terminal.read_line() is not None:
            pass
        nursery.cancel_scope.cancel()


def _serve_with_workers(args: argparse.Namespace, *, encrypted: bool) -> int:
    """``server --workers N``: check the port is free, then supervise N workers on it."""
    try:
        address = trio.run(probe_port, args.host, args.port)
    except StartupError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    argvs = [worker_argv(args, address[1], index) for index in range(1, args.workers + 1)]
    return run_workers(argvs, address, json=args.json, encrypted=encrypted, style=_style(args))


def run_workers(
    argvs: Sequence[Sequence[str]],
    address: Address,
    *,
    json: bool = False,
    encrypted: bool = False,
    style: Style = PLAIN,
) -> int:
    """Supervise one worker per argv, listening at ``address``, until CTRL+C or
    SIGTERM (exit status 0) or until none is left (1); print what they say."""
    terminal = StdioTerminal(
        "server",
        style=style,
        formatter=json_formatter("server") if json else None,
        line_editing=False,
    )
    output = _WorkerOutput(terminal, address, json=json, encrypted=encrypted)
    status = 0

    async def main() -> None:
        nonlocal status
        status = await supervise(argvs, output)

    try:
        trio.run(run_until_signalled, main)
    except* KeyboardInterrupt:
        status = 0  # CTRL+C before the signal handler was installed
    finally:
        terminal.close()
    return status


def _write_line(out: TextIO, line: bytes) -> None:
    """Write ``line`` and a newline to ``out`` as they are: a worker's bytes, passed on."""
    out.flush()
    out.buffer.write(line + b"\n")
    out.buffer.flush()


class _WorkerOutput:
    """What ``server --workers`` prints: one ``Listening`` line for all, then each
    worker's lines marked ``[worker I]`` (its JSON objects carry ``"worker"`` instead)."""

    def __init__(
        self, terminal: StdioTerminal, address: Address, *, json: bool, encrypted: bool
    ) -> None:
        self._terminal = terminal
        self._address = address
        self._json = json
        self._encrypted = encrypted

    def listening(self, workers: Sequence[Worker]) -> None:
        """Say once that the server listens, and whether the chat is encrypted."""
        self._terminal.show(Listening(self._address, workers=len(workers)))
        if not self._encrypted:
            self._terminal.show(NotEncrypted())

    def output(self, index: int, stream: Stream, line: bytes) -> None:
        """Pass a worker's line on, marked with its number."""
        if stream == "stdout":
            _write_line(sys.stdout, line if self._json else f"[worker {index}] ".encode() + line)
        else:
            _write_line(sys.stderr, f"[worker {index}] ".encode() + line)

    def stopped(self, index: int, returncode: int, *, left: int, asked: bool) -> None:
        """Say that a worker stopped by itself, and how many are left."""
        if asked:
            return
        still = f"{left} still serving" if left else "none left, so the server stops"
        print(
            f"*** worker {index} stopped ({describe_exit(returncode)}); {still}",
            file=sys.stderr,
            flush=True,
        )

    def failed(self, index: int, returncode: int, said: Sequence[bytes]) -> None:
        """Pass on what a worker that could not start said (its one error line)."""
        for line in said:
            _write_line(sys.stderr, line)
        if not said:
            print(
                f"{PROG}: error: worker {index} {describe_exit(returncode)} before listening",
                file=sys.stderr,
            )
