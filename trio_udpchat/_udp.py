"""Opening the trio.socket UDP socket; any failure becomes one sentence for the user."""

from __future__ import annotations

import contextlib
import errno
import socket

import trio

from ._events import Address


class StartupError(Exception):
    """The endpoint could not start. ``str()`` is one line meant for the user."""


async def resolve(host: str, port: int) -> tuple[socket.AddressFamily, Address]:
    """The first address ``host`` and ``port`` resolve to, for a UDP socket."""
    try:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    except UnicodeError:
        raise StartupError(f"cannot resolve host {host!r}: not a valid host name") from None
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def _bind_failure(host: str, port: int, exc: OSError) -> StartupError:
    if exc.errno == errno.EADDRINUSE:
        why = "the port is already in use (is another server running?)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "that address does not belong to this machine"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    else:
        why = exc.strerror or str(exc)
    return StartupError(f"cannot listen on {host} port {port}: {why}")


#: Receive buffer the server asks for (Linux grants up to ``net.core.rmem_max``).
#: A relay's datagrams come in bursts: each message it relays to K members is
#: answered by up to K acks at once, which overflow the ~200 KiB default on
#: Linux at K = 100, and every datagram dropped there costs a retransmission.
SERVER_RECEIVE_BUFFER = 4 << 20


async def open_server_socket(
    host: str, port: int, *, reuse_port: bool = False
) -> trio.socket.SocketType:
    """A UDP socket bound to ``host`` and ``port`` (``0`` picks a free port).

    With ``reuse_port`` (``SO_REUSEPORT``, Linux), sockets of the same user may
    share the port: the kernel spreads clients over them by their address.
    """
    family, sockaddr = await resolve(host, port)
    sock = trio.socket.socket(family, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):  # a smaller buffer is a slower server, not a broken one
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SERVER_RECEIVE_BUFFER)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise _bind_failure(host, port, exc) from None
    return sock


async def open_client_socket(host: str, port: int) -> tuple[trio.socket.SocketType, Address]:
    """A UDP socket connected to the server, and the server's address.

    Connecting lets the OS report "port unreachable" back to us and filters out
    datagrams from anyone but the server.
    """
    family, sockaddr = await resolve(host, port)
    sock = trio.socket.socket(family, socket.SOCK_DGRAM)
    try:
        await sock.connect(sockaddr)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot reach {host} port {port}: {exc.strerror or exc}") from None
    return sock, sockaddr
