"""The batched socket helpers of the Trio layer (``_batch``), on real sockets."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_udpchat._batch import MAX_BATCH, BatchSocket
from trio_udpchat._events import Address

LOOPBACK = "127.0.0.1"


def unexpected(exc: OSError) -> None:
    """An error callback for cases where the socket must report none."""
    pytest.fail(f"unexpected socket error {exc!r}")


@asynccontextmanager
async def bound_pair() -> AsyncIterator[tuple[trio.socket.SocketType, trio.socket.SocketType]]:
    """Two UDP sockets on 127.0.0.1, each bound to a free port."""
    with (
        trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
        trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
    ):
        await a.bind((LOOPBACK, 0))
        await b.bind((LOOPBACK, 0))
        yield a, b


async def test_receive_takes_what_waits_in_order_and_never_blocks() -> None:
    got: list[tuple[bytes, Address]] = []
    async with bound_pair() as (a, b):
        sender = b.getsockname()
        with BatchSocket(a) as batch, trio.fail_after(5):
            assert batch.receive(lambda d, addr: got.append((d, addr)), unexpected) == 0
            for i in range(3):
                await b.sendto(b"%d" % i, a.getsockname())
            await batch.wait_readable()
            taken = 0
            for _ in range(10):  # loopback delivers at once; bounded anyway
                taken += batch.receive(lambda d, addr: got.append((d, addr)), unexpected)
                if taken == 3:
                    break
    assert [data for data, _ in got] == [b"0", b"1", b"2"]
    assert {addr for _, addr in got} == {sender}


async def test_receive_stops_at_the_batch_limit() -> None:
    # Bounded batches are what keep the server fair: the rest waits for the next one.
    waiting = MAX_BATCH + 10
    got: list[bytes] = []
    async with bound_pair() as (a, b):
        with BatchSocket(a) as batch, trio.fail_after(5):
            for i in range(waiting):
                await b.sendto(b"%d" % i, a.getsockname())
            assert batch.receive(lambda d, _: got.append(d), unexpected) == MAX_BATCH
            assert batch.receive(lambda d, _: got.append(d), unexpected, limit=5) == 5
            assert batch.receive(lambda d, _: got.append(d), unexpected) == 5
    assert got == [b"%d" % i for i in range(waiting)]


async def test_send_sends_everything_and_reports_errors_without_stopping() -> None:
    failures: list[OSError] = []
    async with bound_pair() as (a, b):
        with BatchSocket(a) as batch, trio.fail_after(5):
            to_b = b.getsockname()
            # An IPv6 destination on an IPv4 socket fails at once, locally.
            out: list[tuple[bytes, Address]] = [
                (b"one", to_b),
                (b"bad", ("::1", 9)),
                (b"two", to_b),
            ]
            assert batch.send(out, failures.append) == 3
            assert [await b.recv(100), await b.recv(100)] == [b"one", b"two"]
    assert len(failures) == 1


async def test_a_refusal_reaches_the_error_callback() -> None:
    # A connected UDP socket learns (from ICMP) that nobody listens at the other end.
    errors: list[OSError] = []
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        await closed.bind((LOOPBACK, 0))
        nobody = closed.getsockname()
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        await sock.connect(nobody)
        with BatchSocket(sock) as batch, trio.fail_after(5):
            assert batch.send([(b"anyone?", nobody)], errors.append) == 1
            await batch.wait_readable()
            assert batch.receive(lambda d, _: pytest.fail(f"got {d!r}"), errors.append) == 1
    assert [type(e) for e in errors] == [ConnectionRefusedError]


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs Unix datagram sockets")
async def test_send_stops_when_the_kernel_is_full_and_resumes_when_writable(
    tmp_path: Path,
) -> None:
    # Unix datagram sockets block (EAGAIN) when the receiver's queue is full, where
    # UDP on loopback would drop: the way to see the "wait for room" path for real.
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver,
        trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(str(tmp_path / "r"))
        receiver.setblocking(False)
        with BatchSocket(sender) as batch, trio.fail_after(5):
            to: Any = str(tmp_path / "r")  # a path: Address is typed for IP only
            out: list[tuple[bytes, Address]] = [(b"x" * 100, to)] * 5000
            sent = batch.send(out, unexpected)
            assert 0 < sent < len(out)
            for _ in range(len(out) + 1):  # bounded: at least one datagram per round
                with contextlib.suppress(BlockingIOError):
                    while True:
                        receiver.recv(200)
                if sent == len(out):
                    break
                await batch.wait_writable()
                sent = batch.send(out, unexpected, sent)
            assert sent == len(out)
