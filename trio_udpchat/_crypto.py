"""The room passphrase, as cryptography: key derivation and one AEAD.

* **Key.** Argon2id (libsodium's ``crypto_pwhash``) turns the passphrase and the
  server's random 16-byte salt into a 32-byte key. The cost is libsodium's
  *interactive* preset (2 passes over 64 MiB, about 50 ms here), above OWASP's
  minimum for Argon2id; every guess at a passphrase costs an attacker as much.
  Deriving is slow on purpose, so the Trio layer runs :func:`derive_key` in a
  thread; this module only computes.
* **AEAD.** XChaCha20-Poly1305 (libsodium, through PyNaCl). Its 24-byte nonces
  are large enough to be random; a :class:`Sealer` makes each one a random
  16-byte prefix (drawn once per sealer) followed by a 64-bit counter, so within
  one sealer a nonce can never repeat, and across sealers that share the room
  key (every member's, the server's) a repeat needs two equal random prefixes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError
from nacl.pwhash import argon2id

from ._errors import LocalProtocolError, RemoteProtocolError
from ._wire import AEAD_NONCE_SIZE, AEAD_TAG_SIZE
from ._wire import SALT_SIZE as SALT_SIZE

#: The sizes the wire layout gives the AEAD's nonce and tag (libsodium's, checked in tests).
NONCE_SIZE: Final = AEAD_NONCE_SIZE
TAG_SIZE: Final = AEAD_TAG_SIZE
KEY_SIZE: Final = 32
_PREFIX_SIZE: Final = NONCE_SIZE - 8
_COUNTER: Final = struct.Struct("!Q")


def derive_key(passphrase: bytes, salt: bytes) -> bytes:
    """The room key for ``passphrase`` under ``salt`` (slow: run it in a thread)."""
    if len(salt) != SALT_SIZE:
        raise LocalProtocolError(f"a salt has {SALT_SIZE} bytes, not {len(salt)}")
    if not passphrase:
        raise LocalProtocolError("the passphrase is empty")
    return bytes(
        argon2id.kdf(
            KEY_SIZE,
            passphrase,
            salt,
            opslimit=argon2id.OPSLIMIT_INTERACTIVE,
            memlimit=argon2id.MEMLIMIT_INTERACTIVE,
        )
    )


@dataclass(frozen=True, slots=True)
class RoomKey:
    """A server's salt and the key derived from it."""

    salt: bytes
    key: bytes

    def __post_init__(self) -> None:
        if len(self.salt) != SALT_SIZE or len(self.key) != KEY_SIZE:
            raise LocalProtocolError("a room key has a 16-byte salt and a 32-byte key")

    def __repr__(self) -> str:
        return f"RoomKey(salt={self.salt.hex()}, key=...)"  # never print the key


class Sealer:
    """Encrypts under one key with nonces that never repeat (see the module note)."""

    __slots__ = ("_counter", "_key", "_prefix")

    def __init__(self, key: bytes, randbits: Callable[[int], int]) -> None:
        self._key = key
        self._prefix = randbits(8 * _PREFIX_SIZE).to_bytes(_PREFIX_SIZE, "big")
        self._counter = 0

    def seal(self, associated: bytes, plaintext: bytes) -> bytes:
        """``nonce + ciphertext + tag`` of ``plaintext``, ``associated`` authenticated too."""
        if self._counter >= 2**64:
            raise LocalProtocolError("this sealer has used every nonce")
        nonce = self._prefix + _COUNTER.pack(self._counter)
        self._counter += 1
        return nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, associated, nonce, self._key
        )


def open_untrusted(key: bytes, associated: bytes, sealed: bytes | memoryview) -> bytes:
    """The plaintext of what :meth:`Sealer.seal` made.

    Raises :class:`RemoteProtocolError` (reason ``bad-tag``) if it was not sealed
    with ``key`` and ``associated``, or was changed on the way.
    """
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise RemoteProtocolError("sealed frame is truncated", reason="truncated")
    nonce = bytes(sealed[:NONCE_SIZE])
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(
            bytes(sealed[NONCE_SIZE:]), associated, nonce, key
        )
    except CryptoError:
        raise RemoteProtocolError(
            "sealed frame does not authenticate (wrong key, or altered)", reason="bad-tag"
        ) from None
