"""Every timeout, window and limit of the protocol in one frozen object.

Tests shrink these; the CLI exposes the few a user would tune.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Config:
    """Tunable numbers of a trio_udpchat endpoint.

    Times are in seconds, sizes in bytes.
    """

    #: Largest datagram we ever send (QUIC's safe minimum MTU, RFC 9000 §14).
    max_datagram: int = 1200
    #: First hello retransmission delay; it doubles up to ``hello_retry_cap``.
    hello_retry_initial: float = 1.0
    #: Longest wait between two hellos while the server is silent.
    hello_retry_cap: float = 10.0
    #: How long a client waits for a welcome before telling the user.
    server_silent_after: float = 3.0
    #: Messages a client holds while it has no session yet.
    max_queued_messages: int = 100
    #: After EOF, how long a client waits to hand over messages still queued.
    linger: float = 0.5
    #: How long the goodbye may take on shutdown (shielded from cancellation).
    goodbye_timeout: float = 0.25
    #: Peers (framed or plain) a server remembers; the least recently heard goes first.
    max_peers: int = 1024
