"""Every timeout, window and limit of the protocol in one frozen object.

Tests shrink these; the CLI exposes the few a user would tune. The defaults
follow the anchors in ARCHITECTURE.md (RFC 6298/9002, KCP, ENet, Mosh).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LocalProtocolError


@dataclass(frozen=True, slots=True)
class Config:
    """Tunable numbers of a trio_udpchat endpoint. Times in seconds, sizes in bytes."""

    #: Largest datagram we ever send (QUIC's safe minimum MTU, RFC 9000 §14).
    max_datagram: int = 1200
    #: Longest message text (UTF-8 bytes); longer ones are split into fragments.
    max_message: int = 65536
    #: Bytes a chat message may add around its text (names, times; see _chat).
    message_overhead: int = 1024

    #: First hello retransmission delay; it doubles up to ``hello_retry_cap``.
    hello_retry_initial: float = 1.0
    #: Longest wait between two hellos while the server is silent.
    hello_retry_cap: float = 10.0

    #: Retransmission timeout before any RTT sample (RFC 6298: 1 s).
    rto_initial: float = 1.0
    #: Floor and cap of the retransmission timeout.
    rto_min: float = 0.2
    rto_max: float = 10.0
    #: A packet not acknowledged after this many sends, or this long, fails.
    max_transmissions: int = 8
    give_up_after: float = 30.0
    #: Reliable packets in flight per session (KCP's send window).
    window: int = 32
    #: Whole messages waiting together for a session leave as one packet (a
    #: bundle), as QUIC packs several frames in one: a busy relay's members each
    #: get one datagram for several messages. False: one packet per message.
    bundle: bool = True
    #: Packets queued behind the window per session; beyond it a send is refused.
    send_queue: int = 256
    #: How far past the next expected packet the receiver buffers (KCP).
    reorder_window: int = 128
    #: A packet is retransmitted at once after this many acks skip over it.
    fast_retransmit_after: int = 3
    #: Longest a receiver holds an ack for packets that arrived in order (QUIC's
    #: max_ack_delay, RFC 9000 §13.2.1): a lone message is acknowledged this late,
    #: so its sender's retransmission timeout allows for it (RFC 9002's PTO).
    ack_delay: float = 0.025
    #: An ack goes at once when this many packets are unacknowledged; out of order
    #: or duplicate: at once. 1: always at once. QUIC acks every second packet
    #: (RFC 9000 §13.2.2) because its congestion controller is clocked by acks;
    #: our fixed window (32) is not, and every fourth halves again the acks a
    #: relay takes in (each costs it about as much as sending a message).
    ack_every: int = 4
    #: Packet numbers remembered per session, so none is accepted twice (RFC 6479).
    replay_window: int = 1024
    #: How often the server draws a new secret for handshake cookies (the previous
    #: one is still accepted), so a cookie lives between one and two of these.
    cookie_rotation: float = 120.0

    #: Hellos one IP address may send per second, sustained and in a burst (WireGuard's
    #: numbers): a flood of handshakes cannot churn the server's sessions.
    hello_rate: float = 20.0
    hello_burst: int = 5
    #: Plain-text datagrams one IP address may send per second, whatever the port
    #: (0: no limit, as for a trusted LAN with --trust-plain).
    plain_rate: float = 20.0
    plain_burst: int = 40

    #: The client sends a keepalive after this long without sending anything.
    keepalive_after: float = 15.0
    #: The server forgets a session after this long without a valid datagram.
    session_expiry: float = 60.0
    #: The client tells the user the server is silent after this long.
    server_silent_after: float = 3.0

    #: Messages a client holds while it has no session.
    max_queued_messages: int = 100
    #: After EOF, how long a client (or operator) waits for what it typed to be acknowledged.
    linger: float = 0.75
    #: How long the goodbye may take on shutdown (shielded from cancellation).
    goodbye_timeout: float = 0.25
    #: Sessions a server holds (a hello beyond is refused), and plain-text peers it
    #: remembers (the least recently heard forgotten first).
    max_peers: int = 1024

    #: Members of the room (framed clients and plain-text peers together).
    max_clients: int = 256
    #: Messages a member may send per second, sustained, and in a burst; 0: no limit.
    rate_limit: float = 10.0
    rate_burst: int = 20
    #: Room messages kept for members who join, by count and by bytes of text.
    history_count: int = 100
    history_bytes: int = 65536
    #: With a bus joining servers into one room: how long a published event may
    #: take to come back before the link counts as lost (local chat goes on
    #: meanwhile), how long the bus lists a member unless its server renews it,
    #: and how often the server does.
    bus_timeout: float = 1.0
    presence_ttl: float = 60.0
    presence_refresh: float = 20.0
    #: A plain-text peer (it has no session to expire) leaves the room after this.
    plain_expiry: float = 600.0
    #: A plain-text peer cannot prove its address: it gets at most this many times
    #: the bytes received from that address over ``plain_budget_window`` seconds.
    #: ``None``: no limit (``--trust-plain``, for a trusted LAN).
    plain_budget_factor: float | None = 3.0
    plain_budget_window: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.window <= min(self.reorder_window, 64):
            # An ack's bitmap reports 64 packets past the first missing one.
            raise LocalProtocolError("window must be between 1 and min(reorder_window, 64)")
        if self.reorder_window > 2**20:
            raise LocalProtocolError("reorder_window is unreasonably large")
        if not 0 <= self.ack_delay < self.rto_min:
            # A timeout shorter than the delay would retransmit what was received.
            raise LocalProtocolError("ack_delay must be at least 0 and below rto_min")
        if self.ack_every < 1:
            raise LocalProtocolError("ack_every must be at least 1")
        if self.max_datagram < 64:
            raise LocalProtocolError("max_datagram must be at least 64 bytes")
