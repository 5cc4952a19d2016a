"""The real trio_udpchat server as a benchmark helper: ``python -m bench._chat_server``.

It runs :func:`trio_udpchat.run_server` on ``127.0.0.1`` port 0 with a terminal
that only counts what arrives, prints ``{"port": ...}``, and serves until its
stdin closes (or ``--max-seconds`` pass); then it prints what it counted: the
messages received, the CPU time it spent between the first and the last of
them, and the server core's ``stats`` counters. Each line ``probe`` on its
stdin is answered at once with a JSON line: its resident memory, CPU time,
session count and ``stats`` (the benchmark takes differences around a phase).

The server's configuration is the default one except for limits that protect
a public server from a flood but would throttle the benchmark itself: the
per-member message rate (``rate_limit=0``, like ``--rate-limit 0``), the
per-address handshake rate (every benchmark client shares 127.0.0.1), and the
numbers of sessions and members (``--max-sessions``). With ``--keyed`` the room
has a passphrase: :data:`BENCH_KEY`, which the benchmark's members know too.

With ``--bus URL`` the room is the bus room :data:`BUS_ROOM`, shared with every
other helper on that Redis (``run_server``'s ``bus``), and the ready line says
whether the link came up (``bus_up``). ``--port P --reuse-port`` binds a given
port with ``SO_REUSEPORT``: two such helpers on one port and one bus are what
``server --workers 2 --bus URL`` runs, minus the supervisor, which only passes
the workers' output on (it is not on the path of a datagram), and with each
worker's counters readable (``probe``).

Why a subprocess running ``run_server`` rather than the CLI or the same process:

* ``run_server`` with our own :class:`~trio_udpchat.ServerCore` is the real
  receive path (socket, ``_Driver`` receive task, flush, core), and passing the
  core in lets us read its counters (drops, duplicates) afterwards.
* ``python -m trio_udpchat server --no-input`` would add rendering and a write
  to a pipe per message, measuring our pipe reader as much as the server.
* In the benchmark's own process the server and the client would share one
  Trio loop, one GIL and one core; in a subprocess each side has its own, as
  in real use, and the stdlib baselines get the same arrangement.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
from functools import partial
from pathlib import Path

import trio

from trio_udpchat import Config, Event, MessageReceived, ServerCore, run_server
from trio_udpchat._crypto import KEY_SIZE, SALT_SIZE, RoomKey

from ._probe import cpu_list, pin

#: The benchmark room's key, made directly rather than derived from a passphrase:
#: the relay benchmark measures sealing and opening, not Argon2id (``derive_key``
#: costs the same once per server start whatever the load). Not a secret.
BENCH_KEY = RoomKey(
    salt=bytes(SALT_SIZE), key=hashlib.sha256(b"trio_udpchat bench room").digest()[:KEY_SIZE]
)
#: The room the helpers share on a bus (each repetition has a fresh Redis).
BUS_ROOM = "bench"


class CountingTerminal:
    """A terminal with no operator that counts the messages shown to it."""

    interactive = False

    def __init__(self) -> None:
        self.received = 0
        self.first_cpu = 0.0
        self.last_cpu = 0.0
        self.first_at = 0.0
        self.last_at = 0.0

    async def read_line(self) -> str | None:
        """End of input at once (never asked: the server runs with ``operator=False``)."""
        await trio.lowlevel.checkpoint()
        return None

    def show(self, event: Event) -> None:
        """Count a received message; ignore everything else."""
        if isinstance(event, MessageReceived):
            now, cpu = time.perf_counter(), time.process_time()
            if not self.received:
                self.first_at, self.first_cpu = now, cpu
            self.received += 1
            self.last_at, self.last_cpu = now, cpu


def bench_config(max_sessions: int, bundle: bool = True) -> Config:
    """The default configuration with the flood limits lifted (see the module doc);
    without ``bundle``, one packet per message (``Config.bundle``)."""
    default = Config()
    return Config(
        bundle=bundle,
        rate_limit=0,
        hello_rate=1e9,
        hello_burst=1_000_000,
        max_peers=max(max_sessions, default.max_peers),
        max_clients=max(max_sessions, default.max_clients),
    )


def rss_bytes() -> int:
    """This process's resident memory now (Linux ``/proc``; else the peak, from rusage)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def probe(core: ServerCore) -> dict[str, object]:
    """What a ``probe`` line is answered with."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rss_bytes": rss_bytes(),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": time.perf_counter(),
        "sessions": core.session_count,
        "stats": dict(core.stats),
    }


async def _answer_probes(core: ServerCore) -> None:
    """Answer each ``probe`` line on stdin; return at EOF (the signal to stop)."""
    while True:
        # A worker thread reads stdin, so the server's loop never blocks on it.
        line = await trio.to_thread.run_sync(sys.stdin.buffer.readline, abandon_on_cancel=True)
        if not line:
            return
        if line.strip() == b"probe":
            print(json.dumps(probe(core)), flush=True)


async def serve(args: argparse.Namespace) -> dict[str, object]:
    """Serve until stdin closes or ``--max-seconds`` pass (with :data:`BENCH_KEY` if
    ``--keyed``, on the bus if ``--bus``); return the report."""
    terminal = CountingTerminal()
    config = bench_config(args.max_sessions, bundle=not args.no_bundle)
    core = ServerCore(config, key=BENCH_KEY if args.keyed else None)
    serving = partial(
        run_server,
        terminal,
        "127.0.0.1",
        args.port,
        operator=False,
        core=core,
        bus=args.bus,
        room=BUS_ROOM,
        reuse_port=args.reuse_port,
        label=args.label,
    )
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serving)
        ready: dict[str, object] = {"port": address[1]}
        if core.link is not None:
            ready["bus_up"] = core.link.up
        print(json.dumps(ready), flush=True)
        with trio.move_on_after(args.max_seconds):
            await _answer_probes(core)
        nursery.cancel_scope.cancel()
    return {
        "received": terminal.received,
        "span_s": terminal.last_at - terminal.first_at,
        "cpu_s": terminal.last_cpu - terminal.first_cpu,
        "stats": dict(core.stats),
        "sessions": core.session_count,
    }


def main() -> int:
    """Parse the arguments, serve, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--max-sessions", type=int, default=1024)
    parser.add_argument("--cpus", type=cpu_list)
    parser.add_argument("--keyed", action="store_true", help="a room with BENCH_KEY")
    parser.add_argument("--no-bundle", action="store_true", help="one packet per message")
    parser.add_argument("--bus", help="share the room BUS_ROOM on this Redis (redis://...)")
    parser.add_argument("--label", help="how the others list this server's members (--bus)")
    parser.add_argument("--port", type=int, default=0, help="the UDP port (default: any free)")
    parser.add_argument(
        "--reuse-port", action="store_true", help="share the port (SO_REUSEPORT), as a worker"
    )
    args = parser.parse_args()
    pin(args.cpus)
    report = trio.run(serve, args)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
