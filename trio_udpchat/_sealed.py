"""Frames under the room key: sealing, opening, and the proof in a hello.

The layout is in ``_wire``; the cryptography in ``_crypto``. Without a
passphrase, frames go clear (:data:`CLEAR`) and none of the rest is used.
"""

from __future__ import annotations

from typing import Final, Protocol

from ._crypto import Sealer, open_untrusted
from ._errors import RemoteProtocolError
from ._wire import (
    HEADER_SIZE,
    Frame,
    Hello,
    check_sealed_header_untrusted,
    decode_inner_untrusted,
    encode_data,
    encode_data_inner,
    encode_frame,
    encode_inner,
    sealed_header,
)


class Encoder(Protocol):
    """Turns frames into the bytes that go out (clear, or sealed under a key)."""

    def frame(self, frame: Frame) -> bytes:
        """The bytes of ``frame``."""
        ...

    def data(self, session: int, pn: int, seq: int, flags: int, payload: bytes) -> bytes:
        """The bytes of a Data frame: the hot path, so no frame object is needed."""
        ...


class _Clear:
    """Frames as they are, each with its CRC-32."""

    __slots__ = ()

    def frame(self, frame: Frame) -> bytes:
        return encode_frame(frame)

    def data(self, session: int, pn: int, seq: int, flags: int, payload: bytes) -> bytes:
        return encode_data(session, pn, seq, flags, payload)


#: The encoder without a passphrase.
CLEAR: Final[Encoder] = _Clear()


class _Sealing:
    """Every frame sealed with one sealer (its nonces never repeat)."""

    __slots__ = ("_header", "_sealer")

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer
        self._header = sealed_header()

    def frame(self, frame: Frame) -> bytes:
        return self._seal(encode_inner(frame))

    def data(self, session: int, pn: int, seq: int, flags: int, payload: bytes) -> bytes:
        return self._seal(encode_data_inner(session, pn, seq, flags, payload))

    def _seal(self, inner: bytes) -> bytes:
        return self._header + self._sealer.seal(self._header, inner)


def sealing(sealer: Sealer) -> Encoder:
    """An encoder that seals every frame with ``sealer``."""
    return _Sealing(sealer)


def open_frame_untrusted(data: bytes, key: bytes) -> Frame:
    """The frame inside a sealed datagram.

    Raises :class:`RemoteProtocolError` if ``data`` is not sealed, does not
    authenticate under ``key``, or holds no valid sealable frame.
    """
    check_sealed_header_untrusted(data)
    inner = open_untrusted(key, data[:HEADER_SIZE], memoryview(data)[HEADER_SIZE:])
    return decode_inner_untrusted(inner)


def _proof_input(hello: Hello) -> bytes:
    """What a hello's proof authenticates: its header, nonce and cookie."""
    return encode_frame(Hello(hello.nonce, hello.cookie))[:-4]  # without the CRC


def prove(hello: Hello, sealer: Sealer) -> Hello:
    """``hello`` with a proof that its sender knows ``sealer``'s key."""
    return Hello(hello.nonce, hello.cookie, sealer.seal(_proof_input(hello), b""))


def proven(hello: Hello, key: bytes) -> bool:
    """Whether ``hello`` carries a valid proof under ``key``."""
    if not hello.proof:
        return False
    try:
        open_untrusted(key, _proof_input(hello), hello.proof)
    except RemoteProtocolError:
        return False
    return True
