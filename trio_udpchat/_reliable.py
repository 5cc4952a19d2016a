"""Reliable, ordered delivery over datagrams: the sending and receiving halves.

The sender splits each message into packets that fit one datagram, packs
whole messages waiting together into one packet (a bundle: a busy relay's
members each get one datagram for several messages), keeps at
most ``config.window`` packets in flight, retransmits each on its own
RTT-based timeout (doubling, capped; at once after ``fast_retransmit_after``
acks skip it), and fails after ``max_transmissions`` sends or
``give_up_after`` seconds. The receiver drops duplicates, buffers up to
``reorder_window`` packets ahead, releases them in order and reassembles
fragments into messages. Sequence numbers are unbounded here and travel
modulo 2**32 on the wire.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final

from ._config import Config
from ._errors import RemoteProtocolError
from ._rtt import RttEstimator
from ._wire import (
    ACK_BITS,
    DATA_OVERHEAD,
    FLAG_BUNDLE,
    FLAG_KEEPALIVE,
    FLAG_MORE,
    bundle_overhead,
    encode_bundle,
    split_bundle,
)

#: Sequence (and packet) numbers travel modulo this.
WRAP = 2**32


def expand_u32(wire: int, near: int) -> int:
    """The unbounded number closest to ``near`` whose low 32 bits are ``wire``."""
    return near + ((wire - near + WRAP // 2) % WRAP) - WRAP // 2


def _is_acked(seq: int, next_seq: int, bitmap: int) -> bool:
    offset = seq - next_seq - 1
    return seq < next_seq or (0 <= offset < ACK_BITS and bool(bitmap >> offset & 1))


@dataclass(slots=True, eq=False)
class Message:
    """One message on its way out; ``unacked`` counts its packets not yet acknowledged.

    ``text`` is what reports call it (``None``: not worth a report, e.g. a notice).
    """

    text: str | None
    payload: bytes
    unacked: int


#: What :meth:`Sender.offer` returns for a one-packet message without a text:
#: nothing will ask about it (a relay's hot path: no object per member per message).
UNREPORTED: Final = Message(None, b"", 0)


@dataclass(slots=True, eq=False)
class Packet:
    """One reliable packet in the send queue (a fragment or a keepalive) or in flight.

    Its ``seq`` is given when it is first sent (-1 while queued).
    """

    seq: int
    flags: int
    payload: bytes
    message: Message | None  # None for a keepalive or a bundle
    bundle: tuple[Message, ...] = ()  # a bundle's messages, in order
    first_sent: float = math.nan
    sent_at: float = math.nan
    transmissions: int = 0
    deadline: float = math.inf
    timeouts: int = 0  # retransmission timeouts so far: the backoff exponent
    skipped: int = 0  # acks that reported packets after this one
    fast: bool = False  # fast retransmission triggered (once per packet)
    fast_pending: bool = False  # ... and not yet sent
    sacked: bool = False  # the receiver holds it out of order: do not retransmit


class Sender:
    """The sending half of a reliable session."""

    __slots__ = (
        "_bundling",
        "_config",
        "_due",
        "_fragment",
        "_in_flight",
        "_next_seq",
        "_queue",
        "_stats",
        "rtt",
    )

    def __init__(
        self, config: Config, stats: Counter[str], data_overhead: int = DATA_OVERHEAD
    ) -> None:
        self._config = config
        self._stats = stats
        #: Payload bytes per fragment: what a Data frame (clear or sealed) leaves.
        self._fragment = config.max_datagram - data_overhead
        self._bundling = config.bundle
        self.rtt = RttEstimator(config)
        self._next_seq = 0  # of the next packet sent for the first time
        self._in_flight: dict[int, Packet] = {}  # insertion order is seq order
        #: A whole message waits as itself (it may leave in a bundle, its packet
        #: made when it goes), or as its bare payload if it has no text to report;
        #: a longer one as its fragments, a keepalive as a packet.
        self._queue: deque[Packet | Message | bytes] = deque()
        #: No later than the earliest deadline in flight (not sacked): exact after a
        #: scan, and an ack leaves it as it was rather than scanning again (acks only
        #: remove deadlines). A relay asks every member's sender for it at every
        #: flush; a stale value costs one early timer, whose transmit() rescans.
        self._due = math.inf

    @property
    def in_flight(self) -> int:
        """Packets sent and not yet acknowledged."""
        return len(self._in_flight)

    @property
    def queued(self) -> int:
        """Packets waiting for room in the window (before bundling: at most this many)."""
        return len(self._queue)

    def offer(self, text: str | None, payload: bytes) -> Message | None:
        """Queue ``payload`` (``text`` encoded) as one message; ``None`` if the queue is full.

        A one-packet message without a text is never reported or resent as a
        message (only its packet is), so it gets no :class:`Message`: the result
        is :data:`UNREPORTED`.
        """
        size = self._fragment
        if len(payload) <= size:  # a relay's hot path: one packet, no slicing
            if len(self._queue) >= self._config.send_queue:
                return None
            if text is None:
                self._queue.append(payload)
                return UNREPORTED
            message = Message(text, payload, 1)
            self._queue.append(message)
            return message
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
        if len(self._queue) + len(chunks) > self._config.send_queue:
            return None
        message = Message(text, payload, len(chunks))
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            self._queue.append(Packet(-1, FLAG_MORE if i < last else 0, chunk, message))
        return message

    def keepalive(self) -> None:
        """Queue an empty packet that only asks for an ack."""
        self._queue.append(Packet(-1, FLAG_KEEPALIVE, b"", None))

    def on_ack(
        self, next_wire: int, bitmap: int, now: float, ack_delay: float = 0.0
    ) -> list[Message] | None:
        """Apply an ack; return the messages it completed, oldest first.

        Only the cumulative part (every seq below ``next``) completes packets: the
        bitmap says what the receiver holds out of order, which it would lose if
        its session ended, so those packets are just not retransmitted. Returns
        ``None`` for an ack of packets never sent (corrupt or forged).

        An ack gives at most one RTT sample, as in QUIC (RFC 9002 section 5.1):
        from the newest packet it newly acknowledges (cumulatively or in the
        bitmap), the one whose arrival most likely sent it; older packets it
        covers may have waited for a lost ack, and sampling each cost a relay
        time on every ack. Karn's rule still holds: no sample if that packet
        was retransmitted. ``ack_delay`` is how long the receiver says it held
        the ack (seconds): not part of the round trip.
        """
        if not self._in_flight:
            return []
        lowest = next(iter(self._in_flight))
        next_seq = expand_u32(next_wire, lowest)
        if next_seq > self._next_seq or bitmap >> max(self._next_seq - next_seq - 1, 0):
            return None
        done: list[Message] = []
        newest: Packet | None = None  # the newest packet this ack newly acknowledges
        while self._in_flight and (seq := next(iter(self._in_flight))) < next_seq:
            packet = self._in_flight.pop(seq)
            if not packet.sacked:
                newest = packet
            message = packet.message
            if message is not None:
                message.unacked -= 1
                if message.unacked == 0:
                    done.append(message)
            else:
                for message in packet.bundle:  # whole messages: this packet was their last
                    message.unacked -= 1
                    done.append(message)
        if not self._in_flight:
            self._due = math.inf
        highest = next_seq - 1
        for seq, packet in self._in_flight.items() if bitmap else ():  # the common ack: none
            if not packet.sacked and _is_acked(seq, next_seq, bitmap):
                packet.sacked = True
                newest = packet
                highest = seq
        if newest is not None and newest.transmissions == 1:  # Karn: unambiguous only
            self.rtt.sample(now - newest.sent_at, ack_delay)
        threshold = self._config.fast_retransmit_after
        for seq, packet in self._in_flight.items():
            if seq > highest:
                break
            if not packet.sacked and not packet.fast:
                packet.skipped += 1
                if packet.skipped >= threshold:
                    packet.fast = packet.fast_pending = True
                    packet.deadline = now
                    self._due = min(self._due, now)
        return done

    def transmit(self, now: float) -> list[Packet]:
        """The packets to send now: due retransmissions, then new ones the window allows.

        A packet that has used its last transmission is not sent again: it waits
        for :meth:`failed`.
        """
        limit = self._config.max_transmissions
        out = []
        if self._due <= now:
            out = [
                packet
                for packet in self._in_flight.values()
                if packet.deadline <= now and packet.transmissions < limit and not packet.sacked
            ]
            for packet in out:
                self._stats["retransmissions"] += 1
                if packet.fast_pending:
                    packet.fast_pending = False  # the backoff stays as it was
                else:
                    packet.timeouts += 1
                self._sent(packet, now)
            # Exact again (deadlines moved later, or the bound was stale). A packet
            # out of transmissions keeps its past deadline: failed() has work.
            waiting = (p.deadline for p in self._in_flight.values() if not p.sacked)
            self._due = min(waiting, default=math.inf)
        queue, in_flight = self._queue, self._in_flight
        room = self._config.window - len(in_flight)
        if room > 0 and queue:
            # New packets: _sent() for a first transmission, inlined (a relay's hot path).
            deadline = now + self.rtt.backed_off(1)
            seq = self._next_seq
            while room > 0 and queue:
                item = queue.popleft()
                packet = item if isinstance(item, Packet) else self._whole(item, seq)
                packet.seq = seq
                packet.first_sent = packet.sent_at = now
                packet.transmissions = 1
                packet.deadline = deadline
                in_flight[seq] = packet
                out.append(packet)
                seq += 1
                room -= 1
            self._next_seq = seq
            if deadline < self._due:
                self._due = deadline
        return out

    def _whole(self, first: Message | bytes, seq: int) -> Packet:
        """The packet of ``first``, a whole message, and of the whole messages queued
        right after it that fit with it in one packet (a bundle), if any."""
        queue = self._queue
        if not self._bundling:
            return _alone(first, seq)
        parts = [first]
        room = self._fragment - bundle_overhead(1) - _size(first)
        while queue and not isinstance(after := queue[0], Packet):
            room -= bundle_overhead(1) + _size(after)
            if room < 0:
                break
            parts.append(after)
            queue.popleft()
        if len(parts) == 1:
            return _alone(first, seq)
        self._stats["bundled"] += len(parts)
        payload = encode_bundle([p if isinstance(p, bytes) else p.payload for p in parts])
        reported = tuple(p for p in parts if isinstance(p, Message))
        return Packet(seq, FLAG_BUNDLE, payload, None, reported)

    def _sent(self, packet: Packet, now: float) -> None:
        packet.transmissions += 1
        packet.sent_at = now
        packet.deadline = now + self.rtt.backed_off(packet.timeouts + 1)

    def deadline(self) -> float | None:
        """When :meth:`transmit` or :meth:`failed` next has work (or, after acks,
        somewhat before: then :meth:`transmit` finds nothing due and looks again
        from scratch), or ``None``.

        Queued packets the window has room for are not counted: every flush of
        the I/O layer calls :meth:`transmit`, which sends them at once.
        """
        if not self._in_flight:
            return None
        oldest = next(iter(self._in_flight.values()))
        return min(self._give_up_at(oldest), self._due)

    def _give_up_at(self, packet: Packet) -> float:
        # The one expression both deadline() and failed() use, so rounding cannot
        # make a due give-up look not yet due (and spin the timer).
        return packet.first_sent + self._config.give_up_after

    def oldest_unacked(self) -> float | None:
        """When the oldest packet still in flight was first sent."""
        if not self._in_flight:
            return None
        return next(iter(self._in_flight.values())).first_sent

    def failed(self, now: float) -> bool:
        """Whether some packet has used up its retry budget without an ack."""
        limit = self._config.max_transmissions
        for packet in self._in_flight.values():
            if now >= self._give_up_at(packet):
                return True
            if packet.transmissions >= limit and packet.deadline <= now and not packet.sacked:
                return True
        return False

    def unacknowledged(self) -> list[Message]:
        """Every message not yet fully acknowledged, oldest first (for reports and requeues)."""
        seen: dict[int, Message] = {}
        for item in (*self._in_flight.values(), *self._queue):
            if isinstance(item, bytes):
                continue  # nothing to report
            if isinstance(item, Message):
                seen.setdefault(id(item), item)
                continue
            for message in item.bundle or (() if item.message is None else (item.message,)):
                seen.setdefault(id(message), message)
        return list(seen.values())


def _size(whole: Message | bytes) -> int:
    return len(whole) if isinstance(whole, bytes) else len(whole.payload)


def _alone(whole: Message | bytes, seq: int) -> Packet:
    if isinstance(whole, bytes):
        return Packet(seq, 0, whole, None)
    return Packet(seq, 0, whole.payload, whole)


@dataclass(slots=True)
class Receiver:
    """The receiving half of a reliable session, and when it owes an ack.

    Acks are delayed as in QUIC (RFC 9000 §13.2.1-2): an ack goes at once when
    ``config.ack_every`` packets are unacknowledged, or when a packet arrives out
    of order, leaves a gap, or is a duplicate (so the sender learns of a loss,
    or of a lost ack, without waiting); otherwise at most ``config.ack_delay``
    after the first packet it covers. A relay's members each ack every fourth
    message (by default) instead of every one: a quarter of the acks to take in.
    """

    config: Config
    stats: Counter[str]
    next_seq: int = 0
    #: Packets ahead of ``next_seq``: (flags, payload), or a bundle's messages.
    _buffer: dict[int, tuple[int, bytes] | list[bytes]] = field(default_factory=dict)
    _assembly: list[bytes] = field(default_factory=list)
    _assembly_size: int = 0
    _discarding: bool = False
    _owed: int = 0  # packets that arrived since the last ack (0: no ack owed)
    _ack_at: float = math.inf  # when the owed ack must go
    #: When the last new packet arrived: the one whose ack the sender times (it
    #: samples the newest packet an ack newly covers; see Sender.on_ack).
    _arrived_at: float = 0.0

    def on_data(self, seq_wire: int, flags: int, payload: bytes, now: float) -> list[bytes]:
        """Take in one packet, arrived at ``now``; return the messages it completed, in order."""
        seq = expand_u32(seq_wire, self.next_seq)
        if seq < self.next_seq or seq in self._buffer:
            self.stats["dropped:duplicate"] += 1
            self._owe(now, at_once=True)  # our ack was lost, or is late: repeat it now
            return []
        if seq >= self.next_seq + self.config.reorder_window:
            self.stats["dropped:beyond-window"] += 1
            self._owe(now, at_once=True)
            return []
        entry: tuple[int, bytes] | list[bytes] = (flags, payload)
        if flags & FLAG_BUNDLE:
            try:
                entry = split_bundle(payload)
            except RemoteProtocolError:
                self.stats["dropped:bad-bundle"] += 1
                return []  # not acknowledged: it cannot be taken as it is
        in_order = seq == self.next_seq and not self._buffer  # nothing missing, before or after
        self._arrived_at = now
        self._buffer[seq] = entry
        complete: list[bytes] = []
        while self.next_seq in self._buffer:
            entry = self._buffer.pop(self.next_seq)
            self.next_seq += 1
            if isinstance(entry, list):
                complete += self._unbundle(entry)
                continue
            flags, payload = entry
            if flags & FLAG_KEEPALIVE:
                continue
            message = self._assemble(flags, payload)
            if message is not None:
                complete.append(message)
        self._owe(now, at_once=not in_order)
        return complete

    def _owe(self, now: float, at_once: bool) -> None:
        # A deadline only ever moves earlier: the first packet an ack covers sets it.
        self._owed += 1
        due = now if at_once or self._owed >= self.config.ack_every else now + self.config.ack_delay
        self._ack_at = min(self._ack_at, due)

    def hurry(self, now: float) -> None:
        """Make an owed ack due at ``now`` (say, before the endpoint goes away)."""
        if self._owed:
            self._ack_at = min(self._ack_at, now)

    def ack_deadline(self) -> float | None:
        """When the ack owed must go (at or before a past time: now); ``None`` if none is owed."""
        return self._ack_at if self._owed else None

    def take_ack(self, now: float) -> tuple[int, int, int]:
        """``(next, bitmap, delay)`` for an Ack frame sent at ``now``; no ack is owed after.

        ``delay`` is in microseconds since the last new packet arrived: what the
        sender subtracts from its round-trip sample.
        """
        self._owed = 0
        self._ack_at = math.inf
        next_seq, bitmap = self.ack_fields()
        delay = min(max(round((now - self._arrived_at) * 1e6), 0), WRAP - 1)
        return next_seq, bitmap, delay

    def _unbundle(self, messages: list[bytes]) -> list[bytes]:
        if self._assembly or self._discarding:  # a peer's bug: a bundle inside a message
            self.stats["dropped:bad-bundle"] += 1
            self._end_assembly()
        limit = self.config.max_message + self.config.message_overhead
        if any(len(message) > limit for message in messages):
            self.stats["dropped:oversized"] += 1
            return [message for message in messages if len(message) <= limit]
        return messages

    def _assemble(self, flags: int, payload: bytes) -> bytes | None:
        more = bool(flags & FLAG_MORE)
        if not self._discarding:
            self._assembly.append(payload)
            self._assembly_size += len(payload)
            if self._assembly_size > self.config.max_message + self.config.message_overhead:
                self.stats["dropped:oversized"] += 1
                self._discarding = True
        if more:
            if self._discarding:
                self._assembly.clear()
                self._assembly_size = 0
            return None
        message = b"".join(self._assembly)
        discarded = self._discarding
        self._end_assembly()
        return None if discarded else message

    def _end_assembly(self) -> None:
        self._assembly.clear()
        self._assembly_size = 0
        self._discarding = False

    def ack_fields(self) -> tuple[int, int]:
        """``(next, bitmap)`` for an Ack frame: what has arrived."""
        bitmap = 0
        for seq in self._buffer:
            offset = seq - self.next_seq - 1
            if 0 <= offset < ACK_BITS:
                bitmap |= 1 << offset
        return self.next_seq % WRAP, bitmap
