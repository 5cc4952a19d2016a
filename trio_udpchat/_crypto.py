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
from typing import Any, Final

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError
from nacl.pwhash import argon2id

from ._errors import LocalProtocolError, RemoteProtocolError
from ._wire import AEAD_NONCE_SIZE, AEAD_TAG_SIZE
from ._wire import SALT_SIZE as SALT_SIZE

try:  # libsodium's own functions, as PyNaCl's bindings call them (see _encrypt)
    from nacl import _sodium
except ImportError:  # pragma: no cover - a PyNaCl that moved its private module
    _sodium = None
_ffi: Any = getattr(_sodium, "ffi", None)
_lib: Any = getattr(_sodium, "lib", None)

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
        if len(key) != KEY_SIZE:  # checked once here: sealing calls libsodium directly
            raise LocalProtocolError(f"a room key has {KEY_SIZE} bytes, not {len(key)}")
        self._key = key
        self._prefix = randbits(8 * _PREFIX_SIZE).to_bytes(_PREFIX_SIZE, "big")
        self._counter = 0

    def seal(self, associated: bytes, plaintext: bytes) -> bytes:
        """``nonce + ciphertext + tag`` of ``plaintext``, ``associated`` authenticated too."""
        if self._counter >= 2**64:
            raise LocalProtocolError("this sealer has used every nonce")
        nonce = self._prefix + _COUNTER.pack(self._counter)
        self._counter += 1
        return nonce + _encrypt(plaintext, associated, nonce, self._key)


def open_untrusted(key: bytes, associated: bytes, sealed: bytes | memoryview) -> bytes:
    """The plaintext of what :meth:`Sealer.seal` made.

    Raises :class:`RemoteProtocolError` (reason ``bad-tag``) if it was not sealed
    with ``key`` and ``associated``, or was changed on the way.
    """
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise RemoteProtocolError("sealed frame is truncated", reason="truncated")
    nonce = bytes(sealed[:NONCE_SIZE])
    plaintext = _decrypt(bytes(sealed[NONCE_SIZE:]), associated, nonce, key)
    if plaintext is None:
        raise RemoteProtocolError(
            "sealed frame does not authenticate (wrong key, or altered)", reason="bad-tag"
        )
    return plaintext


# A relay seals once per member per packet and opens every ack: PyNaCl's
# binding functions check and format their arguments on each call, which took
# twice as long as the encryption itself (3.4 vs 1.2-1.5 us for a 130-byte
# frame). Our arguments are checked once (sizes fixed by the wire layout), so
# call libsodium's functions directly through PyNaCl's own cffi module; the
# bindings remain the fallback, and the tests hold both to the same bytes.


def _encrypt_checked(plaintext: bytes, associated: bytes, nonce: bytes, key: bytes) -> bytes:
    return crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, associated, nonce, key)


def _decrypt_checked(sealed: bytes, associated: bytes, nonce: bytes, key: bytes) -> bytes | None:
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, associated, nonce, key)
    except CryptoError:
        return None


def _encrypt_direct(plaintext: bytes, associated: bytes, nonce: bytes, key: bytes) -> bytes:
    out = _ffi.new("unsigned char[]", len(plaintext) + TAG_SIZE)
    _lib.crypto_aead_xchacha20poly1305_ietf_encrypt(
        out,
        _ffi.NULL,
        plaintext,
        len(plaintext),
        associated,
        len(associated),
        _ffi.NULL,
        nonce,
        key,
    )
    return bytes(_ffi.buffer(out))


def _decrypt_direct(sealed: bytes, associated: bytes, nonce: bytes, key: bytes) -> bytes | None:
    if len(sealed) < TAG_SIZE or len(nonce) != NONCE_SIZE or len(key) != KEY_SIZE:
        return None
    out = _ffi.new("unsigned char[]", len(sealed) - TAG_SIZE)
    failed = _lib.crypto_aead_xchacha20poly1305_ietf_decrypt(
        out,
        _ffi.NULL,
        _ffi.NULL,
        sealed,
        len(sealed),
        associated,
        len(associated),
        nonce,
        key,
    )
    return None if failed else bytes(_ffi.buffer(out))


if _lib is None:  # pragma: no cover
    _encrypt, _decrypt = _encrypt_checked, _decrypt_checked
else:
    _encrypt, _decrypt = _encrypt_direct, _decrypt_direct
