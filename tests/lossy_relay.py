"""A seeded lossy UDP relay for tests: drops, duplicates and delays (so reorders) datagrams.

One client talks to the relay's front socket; the relay forwards to the server
from its back socket, whose source port can be changed mid-run to imitate a
NAT rebinding. In-process tests use :class:`LossyRelay` under ``autojump_clock``;
end-to-end tests run it as ``python -m tests.lossy_relay`` (it prints its port).
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

Address = tuple[Any, ...]
Send = Callable[[bytes], Awaitable[object]]

#: Datagrams that may be waiting in delay at once; beyond it, they are dropped.
MAX_IN_DELAY = 10_000


@dataclass(frozen=True)
class Impairment:
    """What the link does to each datagram, in each direction."""

    loss: float = 0.0
    duplicate: float = 0.0
    delay: tuple[float, float] = (0.0, 0.0)  # uniform; any spread reorders
    seed: int = 0


class LossyRelay:
    """Relays one client's datagrams to ``upstream`` and back, impaired."""

    def __init__(self, upstream: Address, impairment: Impairment) -> None:
        self._upstream = upstream
        self._impairment = impairment
        self._rng = random.Random(impairment.seed)
        self._client: Address | None = None
        self._nursery: trio.Nursery | None = None
        self._front: trio.socket.SocketType | None = None
        self._back_scope: trio.CancelScope | None = None
        self._in_delay = 0
        self.forwarded = 0
        self.dropped = 0
        self.duplicated = 0

    async def run(
        self, *, task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; ``task_status.started`` gets the front address."""
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as front:
            await front.bind(("127.0.0.1", 0))
            self._front = front
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self.rebind()
                nursery.start_soon(self._pump, front, self._to_server)
                task_status.started(front.getsockname())

    async def rebind(self) -> None:
        """Forward from a fresh source port from now on (the old one is closed)."""
        assert self._nursery is not None
        if self._back_scope is not None:
            self._back_scope.cancel()
        back = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await back.bind(("127.0.0.1", 0))
        self._back = back
        self._back_scope = await self._nursery.start(self._serve_back, back)

    async def _serve_back(
        self,
        back: trio.socket.SocketType,
        task_status: trio.TaskStatus[trio.CancelScope] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with back, trio.CancelScope() as scope:
            task_status.started(scope)
            await self._pump(back, self._to_client)

    async def _pump(
        self, sock: trio.socket.SocketType, route: Callable[[bytes, Address], Send | None]
    ) -> None:
        while True:
            try:
                data, addr = await sock.recvfrom(65536)
            except OSError:
                continue  # an ICMP error from a peer that went away
            send = route(data, addr)
            if send is not None:
                self._impair(data, send)

    def _to_server(self, data: bytes, addr: Address) -> Send:
        self._client = addr
        back = self._back
        return lambda payload: back.sendto(payload, self._upstream)

    def _to_client(self, data: bytes, addr: Address) -> Send | None:
        if self._client is None or self._front is None:
            return None
        front, client = self._front, self._client
        return lambda payload: front.sendto(payload, client)

    def _impair(self, data: bytes, send: Send) -> None:
        assert self._nursery is not None
        rng, link = self._rng, self._impairment
        if rng.random() < link.loss or self._in_delay >= MAX_IN_DELAY:
            self.dropped += 1
            return
        copies = 2 if rng.random() < link.duplicate else 1
        self.duplicated += copies - 1
        for _ in range(copies):
            self._in_delay += 1
            self._nursery.start_soon(self._later, rng.uniform(*link.delay), send, data)

    async def _later(self, delay: float, send: Send, data: bytes) -> None:
        try:
            await trio.sleep(delay)
            await send(data)
            self.forwarded += 1
        except (OSError, trio.ClosedResourceError):
            self.dropped += 1  # the socket was rebound or the peer is gone: lost, as on a real link
        finally:
            self._in_delay -= 1


def _main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--duplicate", type=float, default=0.0)
    parser.add_argument("--delay", type=float, nargs=2, default=(0.0, 0.0))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=120.0, help="stop after this long")
    args = parser.parse_args(argv)
    link = Impairment(args.loss, args.duplicate, tuple(args.delay), args.seed)
    relay = LossyRelay(("127.0.0.1", args.upstream_port), link)

    async def serve() -> None:
        with trio.move_on_after(args.lifetime):
            async with trio.open_nursery() as nursery:
                address = await nursery.start(relay.run)
                print(address[1], flush=True)

    trio.run(serve)


if __name__ == "__main__":
    _main(sys.argv[1:])
