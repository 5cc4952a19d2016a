"""A read-only summary of an endpoint's counters and round-trip estimates, for /stats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ._rtt import RttEstimator


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One session's round-trip estimate (RFC 6298), in seconds.

    ``srtt`` is ``None`` until the first unambiguous sample; ``rto`` is the
    timeout a first transmission would wait now.
    """

    srtt: float | None
    rttvar: float
    rto: float


@dataclass(frozen=True, slots=True)
class StatsSummary:
    """What an endpoint has sent, received, resent and dropped since it started.

    ``drops`` and ``errors`` are ``(reason, count)`` pairs sorted by reason;
    ``round_trips`` has one entry per open session (a client has at most one).
    """

    datagrams_in: int
    datagrams_out: int
    bytes_in: int
    bytes_out: int
    retransmissions: int
    drops: tuple[tuple[str, int], ...]
    errors: tuple[tuple[str, int], ...]
    round_trips: tuple[RoundTrip, ...]


#: Counter names that are socket or queue trouble rather than a dropped datagram.
_ERROR_PREFIXES = ("send_error:", "recv_error:", "refused", "send-queue-full")


def summarize(stats: Counter[str], estimators: Iterable[RttEstimator]) -> StatsSummary:
    """Build a :class:`StatsSummary` from an endpoint's counters and its sessions' RTTs."""
    drops = sorted(
        (name.partition(":")[2] or name, count)
        for name, count in stats.items()
        if name.startswith(("dropped:", "dropped-out:")) and count
    )
    errors = sorted(
        (name, count) for name, count in stats.items() if name.startswith(_ERROR_PREFIXES) and count
    )
    return StatsSummary(
        datagrams_in=stats["datagrams_in"],
        datagrams_out=stats["datagrams_out"],
        bytes_in=stats["bytes_in"],
        bytes_out=stats["bytes_out"],
        retransmissions=stats["retransmissions"],
        drops=tuple(drops),
        errors=tuple(errors),
        round_trips=tuple(RoundTrip(e.srtt, e.rttvar, e.rto) for e in estimators),
    )
