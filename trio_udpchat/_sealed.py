"""Frames under the room key: sealing, opening, and the proof in a hello.

The layout is in ``_wire``; the cryptography in ``_crypto``. Without a
passphrase, frames go clear (``encode_frame``) and none of this is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from ._crypto import Sealer, open_untrusted
from ._errors import RemoteProtocolError
from ._wire import (
    HEADER_SIZE,
    Frame,
    Hello,
    check_sealed_header_untrusted,
    decode_inner_untrusted,
    encode_frame,
    encode_inner,
    sealed_header,
)

#: Turns a frame into the bytes that go out (clear, or sealed under a key).
Encoder: TypeAlias = Callable[[Frame], bytes]


def sealing(sealer: Sealer) -> Encoder:
    """An encoder that seals every frame with ``sealer``."""
    header = sealed_header()

    def seal(frame: Frame) -> bytes:
        return header + sealer.seal(header, encode_inner(frame))

    return seal


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
