"""Batched datagram I/O for the Trio layer: one scheduler checkpoint per batch.

Each ``await sock.recvfrom()`` / ``await sock.sendto()`` on a Trio socket is a
full trip through the scheduler (a checkpoint, and an epoll round when the
socket is not ready), which costs several times the system call itself: a
relay that awaits every datagram reaches about a quarter of what a blocking
stdlib loop does. Here the socket is drained with plain non-blocking stdlib
calls, up to :data:`MAX_BATCH` datagrams at a time, and datagrams are sent the
same way; the caller awaits once per batch (:meth:`BatchSocket.wait_readable`
when there was nothing to read, a checkpoint otherwise), so the server stays
fair to its other tasks and cancellable, and sending waits only when the
kernel's buffer is full (:meth:`BatchSocket.wait_writable`).

The stdlib socket is a duplicate descriptor of the Trio socket's (same
kernel socket, same non-blocking flag): the fast path needs no private Trio
attribute, and setup (bind, connect, resolve) stays on the Trio socket.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final, Self

import trio

from ._events import Address

#: Datagrams taken from the socket per batch. Large enough to amortise the
#: checkpoint (it costs about as much as 3-4 system calls), small enough that
#: the timer and input tasks run between batches within about a millisecond.
MAX_BATCH: Final = 64
#: Any UDP datagram fits; plain-text peers may send large ones.
RECV_SIZE: Final = 65536


class BatchSocket:
    """Non-blocking batched ``recvfrom``/``sendto`` on a (real) Trio UDP socket.

    Use it as a context manager inside the Trio socket's own: it closes only
    its duplicate descriptor.
    """

    __slots__ = ("_raw",)

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._raw = socket.socket(sock.family, sock.type, sock.proto, os.dup(sock.fileno()))
        self._raw.setblocking(False)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the duplicate descriptor (the Trio socket stays open)."""
        if self._raw.fileno() != -1:
            trio.lowlevel.notify_closing(self._raw)
            self._raw.close()

    def receive(
        self,
        deliver: Callable[[bytes, Address], None],
        failed: Callable[[OSError], None],
        limit: int = MAX_BATCH,
    ) -> int:
        """Hand ``deliver`` each datagram waiting, at most ``limit``; never blocks.

        A receive error (an ICMP "port unreachable" reported on the socket) goes
        to ``failed`` and counts toward ``limit``, so the loop is bounded
        whatever the socket reports. Returns how many datagrams and errors were taken.
        """
        recvfrom = self._raw.recvfrom
        taken = 0
        while taken < limit:
            try:
                data, addr = recvfrom(RECV_SIZE)
            except BlockingIOError:
                break
            except OSError as exc:
                failed(exc)
            else:
                deliver(data, addr)
            taken += 1
        return taken

    def send(
        self,
        datagrams: Sequence[tuple[bytes, Address]],
        failed: Callable[[OSError], None],
        start: int = 0,
    ) -> int:
        """Send ``datagrams[start:]`` without blocking; return the index of the first
        one not sent (``len(datagrams)``: all sent).

        Stops at the first datagram the kernel has no room for: the caller awaits
        :meth:`wait_writable` and calls again from there. Any other error (a
        refused or unreachable destination) goes to ``failed``, and that
        datagram counts as sent: UDP makes no promise, the protocol retransmits.
        """
        sendto = self._raw.sendto
        index = start
        for index in range(start, len(datagrams)):
            data, addr = datagrams[index]
            try:
                sendto(data, addr)
            except BlockingIOError:
                return index
            except OSError as exc:
                failed(exc)
        return len(datagrams)

    async def wait_readable(self) -> None:
        """Sleep until a datagram (or an error) is waiting; a checkpoint."""
        await trio.lowlevel.wait_readable(self._raw)

    async def wait_writable(self) -> None:
        """Sleep until the kernel has room for a datagram; a checkpoint."""
        await trio.lowlevel.wait_writable(self._raw)
