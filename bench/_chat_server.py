"""The real trio_udpchat server as a benchmark helper: ``python -m bench._chat_server``.

It runs :func:`trio_udpchat.run_server` on ``127.0.0.1`` port 0 with a terminal
that only counts what arrives, prints ``{"port": ...}``, and serves until its
stdin closes (or ``--max-seconds`` pass); then it prints what it counted: the
messages received, the CPU time it spent between the first and the last of
them, and the server core's ``stats`` counters.

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
import json
import sys
import time
from functools import partial

import trio

from trio_udpchat import Config, Event, MessageReceived, ServerCore, run_server

from ._probe import cpu_list, pin


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


async def serve(max_seconds: float) -> dict[str, object]:
    """Serve until stdin closes or ``max_seconds`` pass; return the report."""
    terminal = CountingTerminal()
    core = ServerCore(Config(rate_limit=0))  # a benchmark: no "slow down"
    async with trio.open_nursery() as nursery:
        address = await nursery.start(
            partial(run_server, terminal, "127.0.0.1", 0, operator=False, core=core)
        )
        print(json.dumps({"port": address[1]}), flush=True)
        with trio.move_on_after(max_seconds):
            # stdin closing is the signal to stop; a worker thread waits for it.
            await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
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
    parser.add_argument("--cpus", type=cpu_list)
    args = parser.parse_args()
    pin(args.cpus)
    report = trio.run(serve, args.max_seconds)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
