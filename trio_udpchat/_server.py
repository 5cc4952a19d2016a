"""The server's sans-IO core: who is talking to us, and where replies go."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ._config import Config
from ._endpoint import Endpoint
from ._events import (
    Address,
    MessageReceived,
    MessageTooLong,
    NoRecipient,
    PeerJoined,
    PeerLeft,
)
from ._plaintext import PlainStyle, split_plaintext
from ._wire import TEXT_OVERHEAD, Bye, Hello, Reset, Text, Welcome, encode_frame, is_frame


@dataclass(slots=True)
class _Peer:
    """What the server remembers of one address."""

    session: int | None = None  # None: a plain-text peer
    nonce: int = 0
    style: PlainStyle = field(default_factory=PlainStyle)


class ServerCore(Endpoint):
    """Serves framed clients and plain-text peers on one socket.

    The operator's :meth:`reply` goes to whoever spoke last, as in the classic
    demo. Peers are remembered least-recently-heard first, at most
    ``config.max_peers`` of them.
    """

    def __init__(
        self, config: Config | None = None, *, randbits: Callable[[int], int] = secrets.randbits
    ) -> None:
        super().__init__(config or Config())
        self._randbits = randbits
        self._peers: OrderedDict[Address, _Peer] = OrderedDict()
        self._last_speaker: Address | None = None

    @property
    def peer_count(self) -> int:
        """How many addresses the server currently remembers."""
        return len(self._peers)

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Take in one datagram from ``addr``; never raises on bad bytes."""
        self._count_in(data)
        if not is_frame(data):
            self._receive_plain(data, addr)
            return
        match self._decode(data):
            case Hello(nonce=nonce):
                self._receive_hello(nonce, addr)
            case Text(session=session, text=text):
                if self._session_peer(session, addr, reset=True) is not None:
                    self._last_speaker = addr
                    self._emit(MessageReceived(addr, text))
            case Bye(session=session):
                if self._session_peer(session, addr, reset=False) is not None:
                    del self._peers[addr]
                    self._emit(PeerLeft(addr))
            case Welcome() | Reset():
                self._drop("unexpected")
            case None:
                pass

    def reply(self, text: str, now: float) -> None:
        """Send the operator's ``text`` to the peer that spoke last."""
        addr = self._last_speaker
        peer = None if addr is None else self._peers.get(addr)
        if addr is None or peer is None:
            self._emit(NoRecipient(text, left=addr))
            return
        if peer.session is None:
            data = peer.style.encode(text)
            overhead = len(data) - len(text.encode("utf-8", errors="replace"))
        else:
            data = encode_frame(Text(peer.session, text))
            overhead = TEXT_OVERHEAD
        if len(data) > self.config.max_datagram:
            limit = self.config.max_datagram - overhead
            self._emit(MessageTooLong(text, len(data) - overhead, limit))
            return
        self._send(data, addr)

    def _remember(self, addr: Address) -> _Peer:
        peer = self._peers.get(addr)
        if peer is None:
            peer = self._peers[addr] = _Peer()
            if len(self._peers) > self.config.max_peers:
                self._peers.popitem(last=False)
                self.stats["peers_evicted"] += 1
        else:
            self._peers.move_to_end(addr)
        return peer

    def _receive_plain(self, data: bytes, addr: Address) -> None:
        peer = self._remember(addr)
        peer.style.observe(data)
        self._last_speaker = addr
        for line in split_plaintext(data):
            self._emit(MessageReceived(addr, line, plain=True))

    def _receive_hello(self, nonce: int, addr: Address) -> None:
        known = self._peers.get(addr)
        if known is None or known.session is None or known.nonce != nonce:
            peer = self._remember(addr)
            peer.session = self._randbits(64)
            peer.nonce = nonce
            self._emit(PeerJoined(addr))
        else:
            # A retransmitted hello: the welcome was lost, so send the same one again.
            peer = self._remember(addr)
        assert peer.session is not None
        self._send_frame(Welcome(nonce, peer.session), addr)

    def _session_peer(self, session: int, addr: Address, *, reset: bool) -> _Peer | None:
        """The peer at ``addr`` if it holds ``session``; otherwise count a drop.

        With ``reset``, tell the sender we hold no such session, so a client of a
        restarted server reconnects. The reset is no larger than the frame that
        triggered it, so it cannot amplify traffic at a spoofed address.
        """
        peer = self._peers.get(addr)
        if peer is None or peer.session != session:
            self._drop("unknown-session")
            if reset:
                self._send_frame(Reset(session), addr)
            return None
        self._peers.move_to_end(addr)
        return peer
