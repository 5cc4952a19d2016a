"""The cryptography under a room passphrase: key derivation, sealing, opening."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_ABYTES,
    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
)
from nacl.pwhash import argon2id

from tests.core_helpers import seeded
from trio_udpchat._crypto import (
    KEY_SIZE,
    NONCE_SIZE,
    SALT_SIZE,
    TAG_SIZE,
    RoomKey,
    Sealer,
    _decrypt_checked,
    _decrypt_direct,
    _encrypt_checked,
    _encrypt_direct,
    derive_key,
    open_untrusted,
)
from trio_udpchat._errors import LocalProtocolError, RemoteProtocolError

SALT = bytes(range(16))
KEY = bytes(range(32))


def test_derivation_is_deterministic_and_depends_on_passphrase_and_salt() -> None:
    # One derivation costs ~50 ms (Argon2id, 64 MiB): a handful here, none elsewhere.
    key = derive_key(b"correct horse battery staple", SALT)
    assert len(key) == KEY_SIZE
    assert derive_key(b"correct horse battery staple", SALT) == key
    assert derive_key(b"correct horse battery stapler", SALT) != key
    assert derive_key(b"correct horse battery staple", bytes(16)) != key


@pytest.mark.parametrize(
    ("passphrase", "salt"), [(b"", SALT), (b"pw", b"short"), (b"pw", SALT * 2)]
)
def test_derivation_refuses_an_empty_passphrase_or_a_bad_salt(
    passphrase: bytes, salt: bytes
) -> None:
    with pytest.raises(LocalProtocolError):
        derive_key(passphrase, salt)


def test_a_room_key_never_shows_its_key() -> None:
    shown = repr(RoomKey(SALT, KEY))
    assert SALT.hex() in shown
    assert KEY.hex() not in shown
    assert str(list(KEY)) not in shown
    with pytest.raises(LocalProtocolError):
        RoomKey(SALT, KEY[:16])


@given(st.binary(max_size=64), st.binary(max_size=300))
def test_seal_then_open_round_trips(associated: bytes, plaintext: bytes) -> None:
    sealed = Sealer(KEY, seeded(1)).seal(associated, plaintext)
    assert len(sealed) == NONCE_SIZE + len(plaintext) + 16
    assert open_untrusted(KEY, associated, sealed) == plaintext


@given(st.binary(min_size=1, max_size=40), st.data())
def test_any_change_fails_to_open(plaintext: bytes, data: st.DataObject) -> None:
    sealed = bytearray(Sealer(KEY, seeded(2)).seal(b"header", plaintext))
    index = data.draw(st.integers(0, len(sealed) - 1))
    sealed[index] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(RemoteProtocolError) as caught:
        open_untrusted(KEY, b"header", bytes(sealed))
    assert caught.value.reason == "bad-tag"


def test_associated_data_and_key_are_authenticated() -> None:
    sealed = Sealer(KEY, seeded(3)).seal(b"header", b"text")
    for key, associated in ((KEY, b"Header"), (bytes(32), b"header")):
        with pytest.raises(RemoteProtocolError):
            open_untrusted(key, associated, sealed)


def test_nonces_count_up_after_a_random_prefix() -> None:
    sealer = Sealer(KEY, seeded(4))
    nonces = [sealer.seal(b"", b"")[:NONCE_SIZE] for _ in range(1000)]
    assert len(set(nonces)) == 1000
    assert {nonce[:16] for nonce in nonces} == {nonces[0][:16]}
    assert [int.from_bytes(nonce[16:], "big") for nonce in nonces] == list(range(1000))


def test_the_wire_sizes_are_libsodiums() -> None:
    # The layout in _wire names these sizes; libsodium is what must agree with them.
    assert SALT_SIZE == argon2id.SALTBYTES
    assert crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == NONCE_SIZE
    assert crypto_aead_xchacha20poly1305_ietf_ABYTES == TAG_SIZE


def test_a_truncated_seal_is_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        open_untrusted(KEY, b"", bytes(NONCE_SIZE + 15))
    assert caught.value.reason == "truncated"


# -- libsodium called directly (the hot path) and through PyNaCl's bindings ---------------


@given(st.binary(max_size=300), st.binary(max_size=40), st.binary(min_size=24, max_size=24))
def test_direct_calls_seal_and_open_exactly_as_the_bindings_do(
    plaintext: bytes, associated: bytes, nonce: bytes
) -> None:
    key = bytes(range(32))
    sealed = _encrypt_direct(plaintext, associated, nonce, key)
    assert sealed == _encrypt_checked(plaintext, associated, nonce, key)
    assert _decrypt_direct(sealed, associated, nonce, key) == plaintext
    assert _decrypt_checked(sealed, associated, nonce, key) == plaintext
    altered = bytes([sealed[0] ^ 1]) + sealed[1:]
    assert _decrypt_direct(altered, associated, nonce, key) is None
    assert _decrypt_checked(altered, associated, nonce, key) is None


def test_direct_opening_refuses_sizes_libsodium_would_read_past() -> None:
    key, nonce = bytes(32), bytes(24)
    sealed = _encrypt_direct(b"x", b"", nonce, key)
    assert _decrypt_direct(sealed[: TAG_SIZE - 1], b"", nonce, key) is None  # shorter than a tag
    assert _decrypt_direct(sealed, b"", nonce[:-1], key) is None
    assert _decrypt_direct(sealed, b"", nonce, key[:-1]) is None
    assert _decrypt_direct(sealed, b"", nonce, key) == b"x"


def test_a_sealer_refuses_a_key_of_the_wrong_size() -> None:
    with pytest.raises(LocalProtocolError, match="32 bytes"):
        Sealer(bytes(31), seeded(1))
