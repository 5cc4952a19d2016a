"""Exceptions raised by the sans-IO protocol core.

Split by fault, as h11 does: a :class:`LocalProtocolError` means this program
asked the core for something impossible; a :class:`RemoteProtocolError` means a
peer's bytes were not a valid frame.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of every error the protocol core raises."""


class LocalProtocolError(ProtocolError):
    """We misused the core (a bug or a bad call on our side)."""


class RemoteProtocolError(ProtocolError):
    """A peer sent bytes that are not a valid frame.

    ``reason`` is a short stable slug (``"truncated"``, ``"bad-version"``, ...)
    under which the drop is counted.
    """

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason
