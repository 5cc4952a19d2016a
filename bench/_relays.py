"""Minimal relays, the yardsticks of the ``relay`` benchmark: ``python -m bench._relays MODE``.

Both do the least a chat relay can do, with no protocol at all: a datagram that
is exactly :data:`JOIN` adds its sender to the member list (answered with
:data:`JOINED`), :data:`STOP` ends the relay, and any other datagram is sent
on to every member.

* ``blocking``: a blocking stdlib loop, ``recvfrom`` then one ``sendto`` per member.
* ``asyncio``: an :class:`asyncio.DatagramProtocol` doing the same in
  ``datagram_received`` (``transport.sendto`` writes at once while the socket
  has room, so this is asyncio at its cheapest).

Like every helper (see ``_helpers.py``), it prints ``{"port": ...}`` when ready
and a JSON report when it stops; its CPU time is read from outside, in
``/proc``, so measuring costs the relay nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
from typing import Final, cast

from ._probe import cpu_list, pin

JOIN: Final = b"JOIN"
JOINED: Final = b"JOINED"
STOP: Final = b"STOP"

_RECV_SIZE = 65536


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    return sock


def serve_blocking(max_datagrams: int) -> dict[str, object]:
    """Relay with a blocking socket until :data:`STOP`; return what was counted."""
    members: list[tuple[str, int]] = []
    relayed = 0
    with _bound_socket() as sock:
        recvfrom, sendto = sock.recvfrom, sock.sendto  # as a tuned stdlib loop would
        for _ in range(max_datagrams):
            data, addr = recvfrom(_RECV_SIZE)
            if data == JOIN:
                members.append(addr)
                sendto(JOINED, addr)
            elif data == STOP:
                break
            else:
                for member in members:
                    sendto(data, member)
                relayed += 1
    return {"relayed": relayed, "deliveries": relayed * len(members), "members": len(members)}


class _Relay(asyncio.DatagramProtocol):
    """The asyncio relay's protocol: same rules as :func:`serve_blocking`."""

    def __init__(self, stopped: asyncio.Future[None]) -> None:
        self.members: list[tuple[str, int]] = []
        self.relayed = 0
        self._stopped = stopped
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (a datagram endpoint's is always a DatagramTransport)."""
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Join, stop, or relay to every member."""
        transport = self._transport
        assert transport is not None
        if data == JOIN:
            self.members.append(addr)
            transport.sendto(JOINED, addr)
        elif data == STOP:
            if not self._stopped.done():
                self._stopped.set_result(None)
        else:
            for member in self.members:
                transport.sendto(data, member)
            self.relayed += 1


async def _serve_asyncio() -> dict[str, object]:
    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[None] = loop.create_future()
    sock = _bound_socket()
    transport, relay = await loop.create_datagram_endpoint(lambda: _Relay(stopped), sock=sock)
    try:
        await stopped
    finally:
        transport.close()
    members = len(relay.members)
    return {"relayed": relay.relayed, "deliveries": relay.relayed * members, "members": members}


def main() -> int:
    """Parse the arguments, relay until told to stop, print the report."""
    parser = argparse.ArgumentParser(description="A minimal UDP relay for the benchmarks.")
    parser.add_argument("mode", choices=["blocking", "asyncio"])
    parser.add_argument("--max-datagrams", type=int, default=100_000_000)
    parser.add_argument("--max-seconds", type=int, default=300)
    parser.add_argument("--cpus", type=cpu_list)
    args = parser.parse_args()
    pin(args.cpus)
    signal.alarm(args.max_seconds)  # a hard bound: SIGALRM ends the process
    if args.mode == "blocking":
        report = serve_blocking(args.max_datagrams)
    else:
        report = asyncio.run(_serve_asyncio())
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
