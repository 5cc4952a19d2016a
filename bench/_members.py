"""Room members for the ``relay`` benchmark: one sender and K receivers, in this process.

Why not K real clients: on 2 cores, 100 ``run_client`` processes (or Trio
loops) would spend far more CPU receiving than the server spends relaying,
and the benchmark would measure them. These members are the least a receiver
can be, one stdlib socket each, all driven by one ``selectors`` loop:

* against the minimal relays (``_relays.py``), a member joins with
  :data:`~bench._relays.JOIN` and only counts what arrives;
* against trio_udpchat, a member does what our client does on the wire (the
  handshake: Hello, Challenge, Hello with the cookie, Welcome; a Join message;
  then cumulative Acks with the client's policy, ``Config.ack_every`` and
  ``ack_delay``: after a drained batch, as ``run_client`` flushes once per
  batch, an Ack goes at once if two or more packets (or one out of order, or
  a duplicate) are unacknowledged, else it is held until ``ack_delay`` after
  the first, unless more arrive), parsing only the Data header it needs
  (loopback: no corruption to check for), and a bundle's lengths to count
  the messages in it. Our sender is a member too and its messages are
  real ``Say`` frames, resent go-back-N (with fresh packet numbers, as the
  server refuses a packet number twice) if the server's acks stall, so the
  server does all its protocol work: decode, room, per-member reliable queues,
  encode, acks in and out.
* in a room with a passphrase (a :class:`~trio_udpchat._crypto.RoomKey`), a
  member proves the key in its second hello and seals and opens every session
  frame with it, through the client's own functions (``_sealed``): each
  delivery then costs the member one decryption, as it would a real client.

Flow control is the same for every relay: the sender keeps at most ``window``
messages outstanding, counting a message done when K deliveries have arrived
(loopback keeps order per socket, so ``delivered // K`` is exact).
"""

from __future__ import annotations

import math
import secrets
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import count
from typing import Final, Protocol, TypeVar

from trio_udpchat import (
    Ack,
    Config,
    Data,
    Hello,
    RemoteProtocolError,
    Welcome,
    decode_frame_untrusted,
    encode_frame,
)
from trio_udpchat._chat import Join, Say, encode_chat
from trio_udpchat._crypto import RoomKey, Sealer
from trio_udpchat._sealed import CLEAR, Encoder, open_frame_untrusted, prove, sealing
from trio_udpchat._wire import (
    FLAG_BUNDLE,
    FLAG_KEEPALIVE,
    SEALED,
    Challenge,
    Denied,
    Frame,
    frame_type,
    split_bundle,
)

from ._relays import JOIN, JOINED

#: The part of a Data frame a member reads: after the 3-byte header, session, pn, seq, flags.
_DATA_HEAD: Final = struct.Struct("!QIIB")
_ACK_HEAD: Final = struct.Struct("!QII")
_MAGIC: Final = 0xF9
_DATA: Final = 0x03
_ACK: Final = 0x04
_CRC_SIZE: Final = 4
_RECV_SIZE = 2048
_SOCKET_BUFFER = 1 << 20  # asked for; Linux grants up to net.core.rmem_max
#: The client's ack policy (the defaults ``run_client`` uses).
_ACK_EVERY: Final = Config().ack_every
_ACK_DELAY: Final = Config().ack_delay

_nonces = count(1)

_T = TypeVar("_T")
_Answer = TypeVar("_Answer", Challenge, Welcome)
#: What a member reads of a datagram: (_DATA, seq, messages in it), (_ACK, next, 0), or None.
_Reader = Callable[[bytes], tuple[int, int, int] | None]


class Member(Protocol):
    """A receiving end: drains its socket and counts deliveries."""

    sock: socket.socket

    def drain(self) -> int:
        """Read everything waiting; return how many new deliveries arrived."""
        ...

    def ack_due(self) -> float:
        """When an ack held back must go (``time.monotonic()``); ``inf``: none is."""
        ...

    def send_held_ack(self) -> None:
        """Send the ack held back, if any."""
        ...


def _socket(relay: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
    sock.bind(("127.0.0.1", 0))
    sock.connect(relay)
    return sock


def _exchange(
    sock: socket.socket, request: bytes, timeout: float, accept: Callable[[bytes], _T | None]
) -> _T:
    """Send ``request`` and return the first answer ``accept`` takes (not ``None``),
    resending every 0.2 s until ``timeout``; answers it does not take are skipped."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.send(request)
            resend_at = min(time.monotonic() + 0.2, deadline)
            while (left := resend_at - time.monotonic()) > 0:
                sock.settimeout(left)
                try:
                    answer = accept(sock.recv(_RECV_SIZE))
                except TimeoutError:
                    break
                if answer is not None:
                    return answer
    finally:
        sock.setblocking(False)
    raise TimeoutError("the relay did not answer")


def _frame_untrusted(data: bytes, key: bytes | None) -> Frame:
    """The frame in a datagram from the server: opened with ``key`` if it is sealed."""
    if key is not None and frame_type(data) == SEALED:
        return open_frame_untrusted(data, key)
    return decode_frame_untrusted(data)


def _answer_to(
    nonce: int, kind: type[_Answer], key: bytes | None
) -> Callable[[bytes], _Answer | None]:
    """Takes the server's ``kind`` of answer to the hello with ``nonce``."""

    def accept(data: bytes) -> _Answer | None:
        try:
            frame = _frame_untrusted(data, key)
        except RemoteProtocolError:
            return None
        if isinstance(frame, Denied) and frame.nonce == nonce:
            raise RuntimeError("the server denied the key: its passphrase is another")
        return frame if isinstance(frame, kind) and frame.nonce == nonce else None

    return accept


def _messages(flags: int, payload: bytes) -> int:
    """Whole messages a Data packet brings: a bundle's count, 0 for a keepalive."""
    if flags & FLAG_BUNDLE:
        return len(split_bundle(payload))
    return 0 if flags & FLAG_KEEPALIVE else 1


def _read_clear(data: bytes) -> tuple[int, int, int] | None:
    """The Data or Ack header of a clear frame (no checksum check: loopback)."""
    if len(data) < 3 + _ACK_HEAD.size or data[0] != _MAGIC:
        return None
    if data[2] == _DATA:
        _, _, seq, flags = _DATA_HEAD.unpack_from(data, 3)
        return _DATA, seq, _messages(flags, data[3 + _DATA_HEAD.size : -_CRC_SIZE])
    if data[2] == _ACK:
        _, _, acked = _ACK_HEAD.unpack_from(data, 3)
        return _ACK, acked, 0
    return None


def _read_sealed(key: bytes, data: bytes) -> tuple[int, int, int] | None:
    """The same of a sealed frame, opened (and so authenticated) with ``key``."""
    try:
        frame = open_frame_untrusted(data, key)
    except RemoteProtocolError:
        return None
    if isinstance(frame, Data):
        return _DATA, frame.seq, _messages(frame.flags, frame.payload)
    if isinstance(frame, Ack):
        return _ACK, frame.next, 0
    return None


class RawMember:
    """A member of a minimal relay: it counts datagrams, nothing else."""

    def __init__(self, relay: tuple[str, int], timeout: float = 5.0) -> None:
        self.sock = _socket(relay)
        _exchange(self.sock, JOIN, timeout, lambda data: data if data == JOINED else None)
        self._buffer = bytearray(_RECV_SIZE)

    def drain(self) -> int:
        """Count what waits."""
        recv_into, buffer, got = self.sock.recv_into, self._buffer, 0
        while True:
            try:
                recv_into(buffer)
            except BlockingIOError:
                return got
            got += 1

    def ack_due(self) -> float:
        """A minimal relay has no acks."""
        return math.inf

    def send_held_ack(self) -> None:
        """Nothing to send."""


class ChatMember:
    """A trio_udpchat client reduced to what the wire requires (see the module doc);
    with ``key``, it proves the room key and seals and opens session frames with it."""

    def __init__(
        self, relay: tuple[str, int], name: str, key: RoomKey | None = None, timeout: float = 5.0
    ) -> None:
        self.sock = _socket(relay)
        nonce = next(_nonces)
        challenge = _exchange(
            self.sock, encode_frame(Hello(nonce)), timeout, _answer_to(nonce, Challenge, None)
        )
        if challenge.salt != (b"" if key is None else key.salt):
            raise RuntimeError("the server's passphrase (or lack of one) is not this member's")
        hello = Hello(nonce, challenge.cookie)
        self._encode: Encoder = CLEAR
        self._read: _Reader = _read_clear
        if key is not None:
            sealer = Sealer(key.key, secrets.randbits)  # one per member, as a client has
            hello = prove(hello, sealer)
            self._encode = sealing(sealer)
            self._read = partial(_read_sealed, key.key)
        welcome = _exchange(
            self.sock,
            encode_frame(hello),
            timeout,
            _answer_to(nonce, Welcome, None if key is None else key.key),
        )
        self.session = welcome.session
        self._pn = 0
        self.next_seq = 0  # the next seq we expect from the server
        self.acked = 0  # how far the server acknowledged what we sent
        self.sent_seq = 0  # our next seq
        self._owed = 0  # packets not yet acknowledged
        self._ack_at = math.inf  # when the held ack must go
        self._arrived_at = 0.0  # when the last new packet arrived (the Ack's delay)
        self.send_data(encode_chat(Join(name)))

    def _next_pn(self) -> int:
        self._pn += 1
        return self._pn % 2**32

    def data_frame(self, payload: bytes) -> bytes:
        """The next Data frame of ours, carrying ``payload`` (a chat message)."""
        frame = self._encode.data(self.session, self._next_pn(), self.sent_seq % 2**32, 0, payload)
        self.sent_seq += 1
        return frame

    def send_data(self, payload: bytes) -> None:
        """Send ``payload`` as our next reliable packet."""
        self.sock.send(self.data_frame(payload))

    def drain(self) -> int:
        """Take in what waits, then acknowledge it with one cumulative Ack, now or
        held, as the client's policy says (see the module doc)."""
        got = owed = 0
        at_once = False
        recv, read = self.sock.recv, self._read
        while True:
            try:
                header = read(recv(_RECV_SIZE))
            except BlockingIOError:
                break
            if header is None:
                continue
            code, number, messages = header
            if code == _DATA:
                owed += 1
                if number == self.next_seq % 2**32:
                    self.next_seq += 1
                    got += messages
                else:  # a duplicate or a gap: the client acks at once
                    at_once = True
            else:  # _ACK; no wrap: a benchmark sends < 2**32
                self.acked = max(self.acked, number)
        if owed:
            now = time.monotonic()  # one reading per batch, as run_client's
            self._arrived_at = now
            self._owed += owed
            if at_once or self._owed >= _ACK_EVERY:
                self._send_ack(now)
            else:
                self._ack_at = min(self._ack_at, now + _ACK_DELAY)
        return got

    def ack_due(self) -> float:
        """When the held ack must go; ``inf`` if none is held."""
        return self._ack_at

    def send_held_ack(self) -> None:
        """Send the held ack (its deadline has come)."""
        if self._owed:
            self._send_ack(time.monotonic())

    def _send_ack(self, now: float) -> None:
        delay = round((now - self._arrived_at) * 1e6)
        frame = Ack(self.session, self._next_pn(), self.next_seq % 2**32, 0, delay)
        self.sock.send(self._encode.frame(frame))
        self._owed = 0
        self._ack_at = math.inf


class Sender(Protocol):
    """The member that speaks."""

    def send(self, index: int) -> None:
        """Send message ``index`` (0, 1, 2, ...)."""
        ...

    def stalled(self, sent: int) -> None:
        """Nothing arrived for a while: resend what may be lost of the first ``sent``
        messages, if the protocol does."""
        ...


class RawSender:
    """Sends raw payloads to a minimal relay (it is not a member: nothing comes back)."""

    def __init__(self, relay: tuple[str, int], payload: bytes) -> None:
        self.sock = _socket(relay)
        self._payload = payload

    def send(self, index: int) -> None:
        """Send the payload."""
        self.sock.send(self._payload)

    def stalled(self, sent: int) -> None:
        """A minimal relay has no retransmission."""

    def drain(self) -> int:
        """Nothing ever arrives."""
        return 0

    def ack_due(self) -> float:
        """It acks nothing."""
        return math.inf

    def send_held_ack(self) -> None:
        """Nothing to send."""


class ChatSender(ChatMember):
    """Our sender: ``Say`` messages encoded before the clock starts, framed (and
    sealed) as they go, each time with a fresh packet number; resent go-back-N."""

    def __init__(
        self,
        relay: tuple[str, int],
        name: str,
        texts: list[str],
        key: RoomKey | None = None,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(relay, name, key, timeout)
        self._first_seq = self.sent_seq
        self._payloads = [encode_chat(Say(text)) for text in texts]
        self.sent_seq += len(texts)
        self.resent = 0

    def _frame(self, index: int) -> bytes:
        seq = (self._first_seq + index) % 2**32
        return self._encode.data(self.session, self._next_pn(), seq, 0, self._payloads[index])

    def send(self, index: int) -> None:
        """Send message ``index``."""
        self.sock.send(self._frame(index))

    def stalled(self, sent: int) -> None:
        """Resend what the server has not acknowledged (go-back-N)."""
        for index in range(max(self.acked - self._first_seq, 0), sent):
            self.sock.send(self._frame(index))
            self.resent += 1

    def drain(self) -> int:
        """Take in the server's acks (ours do not count as deliveries)."""
        super().drain()
        return 0


@dataclass(frozen=True, slots=True)
class Blast:
    """What one run of :func:`blast` saw."""

    delivered: int
    expected: int
    wall_s: float
    cpu_s: float


class _Drains(Protocol):
    sock: socket.socket

    def drain(self) -> int: ...

    def ack_due(self) -> float: ...

    def send_held_ack(self) -> None: ...


class _HeldAcks:
    """The members holding an ack back, and when the first must go: the timer a
    client's event loop would run, here in the one ``selectors`` loop."""

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: set[_Drains] = set()

    def drained(self, member: _Drains) -> None:
        """Note ``member`` after a drain (it may hold an ack now)."""
        if member.ack_due() < math.inf:
            self._held.add(member)

    def timeout(self, longest: float) -> float:
        """How long a select may wait: ``longest``, or less if an ack falls due."""
        if not self._held:
            return longest
        first = min(member.ack_due() for member in self._held)
        return min(longest, max(first - time.monotonic(), 0.0))

    def send_due(self) -> None:
        """Send the held acks whose time has come."""
        if not self._held:
            return
        now = time.monotonic()
        for member in [m for m in self._held if m.ack_due() <= now]:
            member.send_held_ack()
            self._held.discard(member)


def settle(members: list[_Drains], quiet: float = 0.3, timeout: float = 10.0) -> None:
    """Drain (and ack) until nothing has arrived for ``quiet`` seconds: joins, notices."""
    held = _HeldAcks()
    with selectors.DefaultSelector() as selector:
        for member in members:
            selector.register(member.sock, selectors.EVENT_READ, member)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = selector.select(held.timeout(quiet))
            held.send_due()
            if not ready and held.timeout(quiet) == quiet:
                return
            for key, _ in ready:
                key.data.drain()
                held.drained(key.data)
    raise RuntimeError("the relay did not go quiet after the joins")


def blast(
    sender: Sender,
    sender_sock: socket.socket,
    members: list[Member],
    messages: int,
    window: int,
    timeout: float,
    stall: float = 0.2,
    give_up: float = 2.0,
) -> Blast:
    """Send ``messages``, at most ``window`` outstanding, until all K copies arrived
    (or nothing arrived for ``give_up`` seconds); the clock runs from the first send
    to the last delivery."""
    k = len(members)
    expected = messages * k
    delivered = sent = 0
    held = _HeldAcks()
    with selectors.DefaultSelector() as selector:
        selector.register(sender_sock, selectors.EVENT_READ, sender)
        for member in members:
            selector.register(member.sock, selectors.EVENT_READ, member)
        started = last = resent = time.perf_counter()
        cpu = time.process_time()
        deadline = started + timeout
        while delivered < expected:
            while sent < messages and sent - delivered // k < window:
                sender.send(sent)
                sent += 1
            arrived = 0
            ready = selector.select(held.timeout(stall))
            held.send_due()
            for key, _ in ready:
                arrived += key.data.drain()
                held.drained(key.data)
            now = time.perf_counter()
            if arrived:
                delivered += arrived
                last = now
            elif now - last > give_up or now > deadline:
                break
            elif now - max(last, resent) > stall:  # a lost datagram, not a busy relay
                sender.stalled(sent)
                resent = now
        cpu = time.process_time() - cpu
    return Blast(delivered, expected, last - started, cpu)
