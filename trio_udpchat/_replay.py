"""A sliding window over packet numbers: each accepted at most once (RFC 6479's idea).

Fed only with numbers from datagrams that authenticated (or, without a key,
that decoded), so a forged datagram cannot move the window. A captured datagram
sent again is refused, as is anything older than the window.
"""

from __future__ import annotations


class ReplayWindow:
    """Which of the last ``size`` packet numbers (up to the highest seen) arrived."""

    __slots__ = ("_bits", "_highest", "_size")

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._highest = -1
        self._bits = 0  # bit i: packet number highest - i arrived

    @property
    def highest(self) -> int:
        """The highest packet number accepted so far (-1: none)."""
        return self._highest

    def accept(self, pn: int) -> bool:
        """Record ``pn``; ``False`` if it arrived before or is older than the window."""
        if pn > self._highest:
            shift = pn - self._highest
            # A jump past the window forgets it all (and never builds a huge int).
            kept = self._bits << shift if shift < self._size else 0
            self._bits = (kept | 1) & ((1 << self._size) - 1)
            self._highest = pn
            return True
        offset = self._highest - pn
        if offset >= self._size or self._bits >> offset & 1:
            return False
        self._bits |= 1 << offset
        return True
