"""One reliable session between a client and the server, as either end sees it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ._config import Config
from ._events import Address
from ._reliable import Message, Receiver, Sender, expand_u32
from ._wire import Ack, Bye, Data, SessionFrame, encode_data, encode_frame


@dataclass(slots=True)
class Arrivals:
    """What one incoming frame brought: messages received (their bytes, in order),
    messages acknowledged."""

    messages: list[bytes] = field(default_factory=list)
    delivered: list[Message] = field(default_factory=list)
    bad_ack: bool = False  # it acknowledged packets never sent


class Session:
    """Packet numbers, the reliable sender and receiver, and liveness times.

    ``peer`` is where datagrams go; it follows the newest valid datagram of the
    session (roaming), never an older one that arrives late.
    """

    __slots__ = (
        "_ack_due",
        "_highest_pn",
        "_next_pn",
        "id",
        "last_heard",
        "last_sent",
        "peer",
        "receiver",
        "sender",
    )

    def __init__(
        self, session_id: int, peer: Address, config: Config, now: float, stats: Counter[str]
    ) -> None:
        self.id = session_id
        self.peer = peer
        self.sender = Sender(config, stats)
        self.receiver = Receiver(config, stats)
        self._next_pn = 0
        self._highest_pn = -1
        self._ack_due = False
        self.last_heard = now
        self.last_sent = now

    def accept(self, frame: SessionFrame, addr: Address, now: float) -> Arrivals:
        """Apply a frame that carries this session's id, from ``addr``."""
        arrivals = Arrivals()
        pn = expand_u32(frame.pn, max(self._highest_pn, 0))
        if pn > self._highest_pn:
            self._highest_pn = pn
            self.peer = addr
        self.last_heard = now
        match frame:
            case Data(seq=seq, flags=flags, payload=payload):
                self._ack_due = True
                arrivals.messages = self.receiver.on_data(seq, flags, payload)
            case Ack(next=next_seq, bitmap=bitmap):
                self._acked(next_seq, bitmap, now, arrivals)
            case Bye(next=next_seq):
                self._acked(next_seq, 0, now, arrivals)
        return arrivals

    def _acked(self, next_seq: int, bitmap: int, now: float, arrivals: Arrivals) -> None:
        delivered = self.sender.on_ack(next_seq, bitmap, now)
        if delivered is None:
            arrivals.bad_ack = True
        else:
            arrivals.delivered = delivered

    def send(self, text: str | None, payload: bytes) -> Message | None:
        """Queue a message (``text``: what to call it in reports, ``None`` for none);
        ``None`` if the send queue is full."""
        return self.sender.offer(text, payload)

    def datagrams(self, now: float) -> list[bytes]:
        """Everything this session should send now: due data, then an ack if one is owed."""
        out = [
            encode_data(self.id, self._pn(), p.seq % 2**32, p.flags, p.payload)
            for p in self.sender.transmit(now)
        ]
        if self._ack_due:
            self._ack_due = False
            next_seq, bitmap = self.receiver.ack_fields()
            out.append(encode_frame(Ack(self.id, self._pn(), next_seq, bitmap)))
        if out:
            self.last_sent = now
        return out

    def bye(self) -> bytes:
        """The goodbye frame, with a last cumulative ack."""
        next_seq, _ = self.receiver.ack_fields()
        return encode_frame(Bye(self.id, self._pn(), next_seq))

    def _pn(self) -> int:
        pn = self._next_pn % 2**32
        self._next_pn += 1
        return pn
