"""One reliable session between a client and the server, as either end sees it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ._config import Config
from ._events import Address
from ._reliable import WRAP, Message, Receiver, Sender, expand_u32
from ._replay import ReplayWindow
from ._sealed import CLEAR, Encoder
from ._wire import DATA_OVERHEAD, Ack, Bye, Data, SessionFrame


@dataclass(slots=True)
class Arrivals:
    """What one incoming frame brought: messages received (their bytes, in order),
    messages acknowledged."""

    # Sequences, empty tuples by default: most frames bring one or the other, and
    # a relay takes in one per delivery or so (no list made for nothing).
    messages: Sequence[bytes] = ()
    delivered: Sequence[Message] = ()
    bad_ack: bool = False  # it acknowledged packets never sent
    replayed: bool = False  # its packet number arrived before (or is too old): ignored


class Session:
    """Packet numbers, the reliable sender and receiver, and liveness times.

    ``peer`` is where datagrams go; it follows the newest valid datagram of the
    session (roaming), never an older one that arrives late. A packet number is
    accepted once: a datagram sent again (by the network, or by an attacker who
    captured it) is ignored. ``encode`` makes the bytes of outgoing frames
    (sealed, in a room with a passphrase), whose Data frames spend
    ``data_overhead`` bytes besides the payload.
    """

    __slots__ = (
        "_encode",
        "_next_pn",
        "_replay",
        "id",
        "last_heard",
        "last_sent",
        "peer",
        "receiver",
        "sender",
    )

    def __init__(
        self,
        session_id: int,
        peer: Address,
        config: Config,
        now: float,
        stats: Counter[str],
        encode: Encoder = CLEAR,
        data_overhead: int = DATA_OVERHEAD,
    ) -> None:
        self.id = session_id
        self.peer = peer
        self.sender = Sender(config, stats, data_overhead)
        self.receiver = Receiver(config, stats)
        self._encode = encode
        self._next_pn = 0
        self._replay = ReplayWindow(config.replay_window)
        self.last_heard = now
        self.last_sent = now

    def accept(self, frame: SessionFrame, addr: Address, now: float) -> Arrivals:
        """Apply a frame that carries this session's id, from ``addr``."""
        arrivals = Arrivals()
        pn = expand_u32(frame.pn, max(self._replay.highest, 0))
        newest = pn > self._replay.highest
        if not self._replay.accept(pn):
            arrivals.replayed = True
            return arrivals
        if newest:
            self.peer = addr
        self.last_heard = now
        match frame:
            case Data(seq=seq, flags=flags, payload=payload):
                arrivals.messages = self.receiver.on_data(seq, flags, payload, now)
            case Ack(next=next_seq, bitmap=bitmap, delay=delay):
                self._acked(next_seq, bitmap, now, arrivals, delay / 1e6)
            case Bye(next=next_seq):
                self._acked(next_seq, 0, now, arrivals)
        return arrivals

    def _acked(
        self, next_seq: int, bitmap: int, now: float, arrivals: Arrivals, delay: float = 0.0
    ) -> None:
        delivered = self.sender.on_ack(next_seq, bitmap, now, delay)
        if delivered is None:
            arrivals.bad_ack = True
        else:
            arrivals.delivered = delivered

    def send(self, text: str | None, payload: bytes) -> Message | None:
        """Queue a message (``text``: what to call it in reports, ``None`` for none);
        ``None`` if the send queue is full."""
        return self.sender.offer(text, payload)

    def datagrams(self, now: float) -> list[bytes]:
        """Everything this session should send now: due data, then an ack if one is due."""
        packets = self.sender.transmit(now)
        pn = self._next_pn
        self._next_pn = pn + len(packets)
        data, session = self._encode.data, self.id
        out = [
            data(session, (pn + i) % WRAP, p.seq % WRAP, p.flags, p.payload)
            for i, p in enumerate(packets)
        ]
        ack_at = self.receiver.ack_deadline()
        if ack_at is not None and ack_at <= now:
            next_seq, bitmap, delay = self.receiver.take_ack(now)
            out.append(self._encode.frame(Ack(self.id, self._pn(), next_seq, bitmap, delay)))
        if out:
            self.last_sent = now
        return out

    def deadline(self) -> float | None:
        """When :meth:`datagrams` next has work (a retransmission, a give-up to check,
        a delayed ack), or ``None``; new data goes out at every flush regardless."""
        sending = self.sender.deadline()
        acking = self.receiver.ack_deadline()
        if sending is None or acking is None:
            return acking if sending is None else sending
        return min(sending, acking)

    def bye(self) -> bytes:
        """The goodbye frame, with a last cumulative ack."""
        next_seq, _ = self.receiver.ack_fields()
        return self._encode.frame(Bye(self.id, self._pn(), next_seq))

    def _pn(self) -> int:
        pn = self._next_pn % WRAP
        self._next_pn += 1
        return pn
