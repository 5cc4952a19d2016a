"""Budgets: how much the server may send to an address it cannot trust (QUIC's rule,
RFC 9000 §8), and how often something may happen (a token bucket).

A plain-text peer never proves it owns its address: anyone can send a datagram
that claims it. So the server sends such an address at most ``factor`` times
the bytes it received from it over the last ``window`` seconds, and drops the
rest, and a spoofed datagram cannot make the server a traffic amplifier.
"""

from __future__ import annotations

from collections import deque


class AmplificationBudget:
    """Bytes in and out for one address, in one-second buckets over a sliding window."""

    __slots__ = ("_buckets", "_factor", "_window")

    def __init__(self, factor: float, window: float) -> None:
        self._factor = factor
        self._window = window
        #: ``[second, bytes in, bytes out]``, oldest first; at most window + 1 of them.
        self._buckets: deque[list[int]] = deque()

    def received(self, size: int, now: float) -> None:
        """``size`` bytes arrived from the address."""
        self._bucket(now)[1] += size

    def spend(self, size: int, now: float) -> bool:
        """Whether ``size`` more bytes may go to the address; if so, they are counted."""
        bucket = self._bucket(now)
        received = sum(b[1] for b in self._buckets)
        sent = sum(b[2] for b in self._buckets)
        if sent + size > self._factor * received:
            return False
        bucket[2] += size
        return True

    def _bucket(self, now: float) -> list[int]:
        second = int(now)
        while self._buckets and self._buckets[0][0] <= second - self._window:
            self._buckets.popleft()
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        return self._buckets[-1]


class TokenBucket:
    """A token bucket: ``rate`` per second sustained, ``burst`` at once (rate 0: no limit)."""

    __slots__ = ("_at", "_burst", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self._rate = rate
        self._burst = float(max(burst, 1))
        self._tokens = self._burst
        self._at = now

    def allow(self, now: float) -> bool:
        """Whether one more is allowed at ``now``; if so, it is counted."""
        if self._rate <= 0:
            return True
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
