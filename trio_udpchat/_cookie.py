"""Stateless handshake cookies: proof that a client receives at its address.

A spoofed source never sees our reply, so it cannot echo the cookie we sent it,
and the server keeps nothing for an address until a hello comes back with a
valid one (DTLS's HelloVerifyRequest, RFC 6347 §4.2.1; QUIC's Retry, RFC 9000
§8.1). A cookie is an HMAC-SHA256, cut to 16 bytes, over the time epoch, the
address and the client's hello nonce. Each epoch (``rotation`` seconds) has its
own random secret; the previous epoch's is still accepted, so a cookie lives
between one and two epochs, and anything older fails.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from collections.abc import Callable
from typing import Final

from ._events import Address
from ._wire import COOKIE_SIZE

_EPOCH_NONCE: Final = struct.Struct("!qQ")


class CookieJar:
    """Makes and checks cookies with a secret that rotates every ``rotation`` seconds."""

    __slots__ = ("_randbits", "_rotation", "_secrets")

    def __init__(self, randbits: Callable[[int], int], rotation: float) -> None:
        self._randbits = randbits
        self._rotation = rotation
        self._secrets: dict[int, bytes] = {}  # epoch -> secret: this one and the last

    def make(self, addr: Address, nonce: int, now: float) -> bytes:
        """The cookie for a hello with ``nonce`` from ``addr``."""
        epoch = self._rotate(now)
        return self._mac(self._secrets[epoch], epoch, addr, nonce)

    def check(self, addr: Address, nonce: int, cookie: bytes, now: float) -> bool:
        """Whether ``cookie`` was made for ``addr`` and ``nonce`` in this epoch or the last."""
        epoch = self._rotate(now)
        for candidate in (epoch, epoch - 1):
            secret = self._secrets.get(candidate)
            if secret is not None and hmac.compare_digest(
                self._mac(secret, candidate, addr, nonce), cookie
            ):
                return True
        return False

    def _rotate(self, now: float) -> int:
        """Draw the secret of the current epoch if new; forget all but it and the last."""
        epoch = math.floor(now / self._rotation)
        if epoch not in self._secrets:
            self._secrets[epoch] = self._randbits(256).to_bytes(32, "big")
            for old in [e for e in self._secrets if e < epoch - 1]:
                del self._secrets[old]
        return epoch

    @staticmethod
    def _mac(secret: bytes, epoch: int, addr: Address, nonce: int) -> bytes:
        # The host as text and the port: the same for an IPv4 or IPv6 tuple.
        where = f"{addr[0]}|{addr[1]}".encode("utf-8", errors="replace")
        message = _EPOCH_NONCE.pack(epoch, nonce) + where
        return hmac.new(secret, message, hashlib.sha256).digest()[:COOKIE_SIZE]
