"""``trio-udpchat server|client``: flags in, one clear line out on failure.

Exit codes: 0 for a normal end (EOF, CTRL+C), 1 for a runtime failure, 2 for
bad usage. Expected failures never print a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import io
import re
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Final, NoReturn, TypeVar
from urllib.parse import urlsplit

from ._config import Config
from ._names import name_problem
from ._passphrase import ENV_VAR, PassphraseError, read_passphrase
from ._version import __version__

PROG = "trio-udpchat"
_N = TypeVar("_N", int, float)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are a single line on stderr."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _bounded(
    convert: Callable[[str], _N], what: str, low: _N, high: _N, *, above_low: bool = False
) -> Callable[[str], _N]:
    """An argparse ``type``: ``convert`` the text, and keep it within ``low``-``high``."""

    def parse(text: str) -> _N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}") from None
        if not low <= value <= high or (above_low and value == low):
            bound = f"more than {low:g}" if above_low else f"at least {low:g}"
            raise argparse.ArgumentTypeError(
                f"invalid {what} {text!r}: must be {bound} and at most {high:g}"
            )
        return value

    return parse


_port = _bounded(int, "port number", 0, 65535)
_seconds = _bounded(float, "number of seconds", 0.0, 86400.0, above_low=True)
_count = _bounded(int, "number", 1, 1_000_000)
_rate = _bounded(float, "rate (0 disables the limit)", 0.0, 1_000_000.0)


def _name(text: str) -> str:
    problem = name_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


#: A room's name on the bus.
_ROOM: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: How many worker processes ``--workers`` may start.
MAX_WORKERS: Final = 64
_workers = _bounded(int, "number of workers", 1, MAX_WORKERS)


def _bus_url(text: str) -> str:
    try:
        parts = urlsplit(text)
    except ValueError:  # a malformed IPv6 host, say
        parts = None
    if parts is None or parts.scheme not in ("redis", "rediss") or not parts.netloc:
        raise argparse.ArgumentTypeError(
            f"invalid bus URL {text!r}: expected redis://HOST[:PORT][/DB] or rediss://..."
        )
    return text


def _room(text: str) -> str:
    if _ROOM.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            f"invalid room name {text!r}: 1-64 letters, digits, '-', '_' or '.'"
        )
    return text


def _login_name() -> str:
    """The user's login name, if it makes a valid room name (else the server picks)."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no user database entry, no LOGNAME
        return ""
    return login if name_problem(login) is None else ""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``trio-udpchat`` command."""
    parser = _Parser(
        prog=PROG,
        description="A terminal chat over UDP, built on Trio.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{server,client}")

    server = commands.add_parser(
        "server",
        help="listen for clients and answer the one that spoke last",
        description="Listen for clients; each line you type answers the client that spoke last.",
    )
    client = commands.add_parser(
        "client",
        help="talk to a server",
        description="Talk to a trio-udpchat server (or, with --plain, any plain-text UDP peer).",
    )
    for sub, port_help in (
        (server, "port to listen on; 0 picks a free one (default: %(default)s)"),
        (client, "port of the server (default: %(default)s)"),
    ):
        sub.add_argument(
            "--host",
            default="127.0.0.1",
            help="host name or IP address, IPv4 or IPv6 (default: %(default)s)",
        )
        sub.add_argument("--port", type=_port, default=3000, help=port_help)
    defaults = Config()
    for sub in (server, client):
        sub.add_argument(
            "--receipts",
            action="store_true",
            help="confirm each message once the other side has acknowledged it",
        )
    for sub in (server, client):
        sub.add_argument(
            "--json",
            action="store_true",
            help="print one JSON object per event (for bots and scripts); no prompts",
        )
        sub.add_argument(
            "--no-color",
            action="store_true",
            help="never colour the output (also: the NO_COLOR environment variable)",
        )
        sub.add_argument(
            "--log",
            metavar="FILE",
            help="append the conversation to FILE (plain text, timestamped)",
        )
        sub.add_argument(
            "-v",
            "--verbose",
            action="count",
            default=0,
            help="log more on stderr: -v connection changes and a summary on exit, -vv everything",
        )
    server.add_argument(
        "--name",
        type=_name,
        default="server",
        help="your name in the room, as the operator (default: %(default)s)",
    )
    server.add_argument(
        "--max-clients",
        type=_count,
        default=defaults.max_clients,
        metavar="N",
        help="members the room holds (default: %(default)s)",
    )
    server.add_argument(
        "--rate-limit",
        type=_rate,
        default=defaults.rate_limit,
        metavar="N",
        help="messages a second a member may send, in bursts of twice that; 0: no limit"
        " (default: %(default)s)",
    )
    client.add_argument(
        "--nick",
        type=_name,
        default=_login_name(),
        metavar="NAME",
        help="your name in the room (default: your login name)",
    )
    server.add_argument(
        "--trust-plain",
        action="store_true",
        help="trust plain-text peers: they cannot prove their address, so by default each"
        " gets at most 3x the bytes it sent, and one IP address may send at most 20"
        " lines a second (a trusted LAN only)",
    )
    server.add_argument(
        "--session-timeout",
        type=_seconds,
        default=defaults.session_expiry,
        metavar="SECONDS",
        help="forget a client silent for this long (default: %(default)s)",
    )
    client.add_argument(
        "--keepalive",
        type=_seconds,
        default=defaults.keepalive_after,
        metavar="SECONDS",
        help="send a keepalive after this long without sending (default: %(default)s)",
    )
    server.add_argument(
        "--no-input",
        action="store_true",
        help="read no operator input: keep serving in the background until CTRL+C or SIGTERM",
    )
    client.add_argument(
        "--plain",
        action="store_true",
        help="speak bare UTF-8 text datagrams, for plain servers such as nc -u -l",
    )
    for sub in (server, client):
        sub.add_argument(
            "--key-file",
            metavar="PATH",
            help="the room passphrase, the file's only line: the chat is then encrypted and"
            f" authenticated (or set {ENV_VAR}; never pass a passphrase as a flag)",
        )
    server.add_argument(
        "--allow-plain",
        action="store_true",
        help="with a passphrase, still let plain-text peers (nc -u) in: they are neither"
        " encrypted nor authenticated",
    )
    server.add_argument(
        "--bus",
        type=_bus_url,
        metavar="URL",
        help="share the room with the other servers on this bus (redis://HOST[:PORT][/DB]"
        " or rediss://...); without it the room is this server's alone",
    )
    server.add_argument(
        "--room",
        type=_room,
        metavar="NAME",
        help="the shared room's name on the bus: 1-64 letters, digits, '-', '_' or '.'"
        " (default: lobby; needs --bus)",
    )
    server.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="serve from N processes sharing the port (Linux, needs --bus): the kernel keeps"
        " each client on one of them. There is no operator input then; CTRL+C stops them all"
        " (default: %(default)s)",
    )
    # What --workers starts each worker with: share the port, no operator input.
    server.add_argument("--worker-index", type=_workers, metavar="I", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 0  # CTRL+C before the run loop's signal handling was in place


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "client" and args.port == 0:
        parser.exit(2, f"{PROG} client: error: --port must be 1-65535 for a client\n")
    # Never crash on a character the terminal's encoding cannot show.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        passphrase, warnings = read_passphrase(args.key_file)
    except PassphraseError as exc:
        parser.exit(2, f"{PROG}: error: {exc}\n")
    if passphrase is not None and getattr(args, "plain", False):
        parser.exit(2, f"{PROG}: error: --plain talks to plain-text servers: no passphrase\n")
    if getattr(args, "allow_plain", False) and passphrase is None:
        parser.exit(2, f"{PROG}: error: --allow-plain needs a passphrase (--key-file)\n")
    worker: int | None = None
    if args.command == "server":
        _check_bus_flags(parser, args)
        worker = args.worker_index
    if worker is None:  # a worker's supervisor has said them already
        for warning in warnings:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
    from ._launch import launch  # not before: --help and usage errors need none of it

    return launch(args, passphrase, worker)


def _check_bus_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit with a usage error if ``--bus``, ``--room`` and ``--workers`` do not fit together."""
    if args.room is not None and args.bus is None:
        parser.exit(2, f"{PROG}: error: --room names a room on a bus: it needs --bus URL\n")
    if args.workers > 1 and args.bus is None:
        parser.exit(
            2, f"{PROG}: error: --workers needs --bus URL, so that the workers share one room\n"
        )
    sharing = args.workers > 1 or args.worker_index is not None
    if sharing and not hasattr(socket, "SO_REUSEPORT"):
        parser.exit(2, f"{PROG}: error: --workers needs SO_REUSEPORT, which Linux has\n")


#: Flags the workers do not get from the supervisor's command line, or get changed.
_NOT_FOR_WORKERS: Final = frozenset({"help", "port", "workers", "worker_index"})


def worker_argv(args: argparse.Namespace, port: int, index: int) -> list[str]:
    """The command that starts worker ``index`` of ``server --workers``: the server's
    own flags, but on ``port`` (the real one, when ``--port 0`` asked for any) and
    with ``--worker-index`` instead of ``--workers``."""
    argv = [sys.executable, "-m", "trio_udpchat", "server"]
    for action in _subparser(build_parser(), "server")._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest in _NOT_FOR_WORKERS or value is None:
            continue
        flag = action.option_strings[-1]  # the long form
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif action.nargs == 0:  # a count, such as -vv
            argv += [flag] * value
        else:
            argv.append(f"{flag}={value}")  # "=": a value may start with "-"
    return [*argv, f"--port={port}", f"--worker-index={index}"]


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise LookupError(name)
