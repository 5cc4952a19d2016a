"""Round-trip time estimation and the retransmission timeout (RFC 6298)."""

from __future__ import annotations

from ._config import Config


class RttEstimator:
    """Smoothed RTT and its variation; ``rto`` is the timeout for a first transmission.

    Only samples from packets sent once may be fed in (Karn's rule), so a
    retransmission's ambiguous ack never skews the estimate.
    """

    __slots__ = ("_config", "rto", "rttvar", "srtt")

    def __init__(self, config: Config) -> None:
        self._config = config
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = config.rto_initial

    def sample(self, rtt: float, ack_delay: float = 0.0) -> None:
        """Fold in one measured round trip of ``rtt`` seconds, of which the receiver
        says it held the ack ``ack_delay`` seconds.

        The delay is subtracted (RFC 9002 §5.3), capped at ``config.ack_delay``: a
        peer that claims more can shrink a sample by no more than an honest one,
        and ``rto_min`` exceeds that cap, so the timeout stays sane. (RFC 9002 also
        keeps a sample from dropping below the smallest one seen; here that would
        leave the first sample, usually a delayed ack of the Join, inflated.)
        """
        rtt = max(rtt - min(max(ack_delay, 0.0), self._config.ack_delay), 0.0)
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        # RFC 6298 (2.3) with a clock granularity G of 1 ms, plus the longest the
        # peer may hold its ack (RFC 9002's PTO), then clamped.
        rto = self.srtt + max(0.001, 4 * self.rttvar) + self._config.ack_delay
        self.rto = min(max(rto, self._config.rto_min), self._config.rto_max)

    def backed_off(self, transmissions: int) -> float:
        """The timeout after the ``transmissions``-th send of one packet: doubling, capped."""
        doublings = min(transmissions - 1, 64)  # past the cap long before; no overflow
        return min(self.rto * 2.0**doublings, self._config.rto_max)
