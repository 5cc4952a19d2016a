"""Helpers shared by the tier-1/2 tests of the sans-IO cores.

Seeded cores, frame-level feeding and draining, a timer runner that fails if a
timer does not move forward, and :class:`Pair`: a client core and a server core
joined by an in-memory link that delivers datagrams both ways at a given ``now``.

Every drain checks the contract the Trio layer relies on: once
``datagrams_to_send(now)`` has been called, ``get_timer()`` is never before ``now``.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from trio_udpchat._client import ClientCore
from trio_udpchat._config import Config
from trio_udpchat._endpoint import Endpoint
from trio_udpchat._events import Address, MessageTooLong
from trio_udpchat._server import ServerCore
from trio_udpchat._wire import (
    DATA_OVERHEAD,
    FLAG_MORE,
    Data,
    Frame,
    Hello,
    Welcome,
    decode_frame_untrusted,
    encode_frame,
)

SERVER: Address = ("198.51.100.7", 9999)
CLIENT: Address = ("192.0.2.1", 40001)
SEED = 2024
#: Loops in the helpers give up after this many rounds: the cores must go quiet.
_ROUNDS = 10_000


def seeded(seed: int) -> Callable[[int], int]:
    """A seeded stand-in for ``secrets.randbits``."""
    return random.Random(seed).getrandbits


def seeded_values(count: int, seed: int) -> list[int]:
    """The first ``count`` 64-bit values :func:`seeded` hands out."""
    draw = seeded(seed)
    return [draw(64) for _ in range(count)]


def make_server(config: Config | None = None, seed: int = SEED) -> ServerCore:
    return ServerCore(config, randbits=seeded(seed))


def make_client(
    config: Config | None = None, *, plain: bool = False, seed: int = SEED
) -> ClientCore:
    return ClientCore(SERVER, config, plain=plain, randbits=seeded(seed))


def check_timer(core: Endpoint, now: float) -> None:
    """The core's timer must not be before ``now`` (the I/O layer would fire it at once)."""
    timer = core.get_timer()
    assert timer is None or timer >= now, f"timer {timer!r} is before now {now!r}"


def drain(core: Endpoint, now: float) -> list[tuple[bytes, Address]]:
    """``datagrams_to_send(now)``, then check the timer."""
    out = core.datagrams_to_send(now)
    check_timer(core, now)
    return out


def frames_out(core: Endpoint, now: float) -> list[tuple[Frame, Address]]:
    """What the core sends at ``now``, decoded (every datagram must be a frame)."""
    return [(decode_frame_untrusted(data), addr) for data, addr in drain(core, now)]


def feed(core: ServerCore | ClientCore, frame: Frame, addr: Address, now: float) -> None:
    """Deliver ``frame`` to ``core`` as if it came from ``addr``."""
    core.receive_datagram(encode_frame(frame), addr, now)


def run_timers(core: Endpoint, until: float) -> list[tuple[float, list[tuple[bytes, Address]]]]:
    """Fire every timer due up to ``until`` at its own time; drain after each.

    Returns ``(time, datagrams sent then)`` per firing. Each firing must move
    the timer strictly forward, or the I/O layer would spin.
    """
    fired: list[tuple[float, list[tuple[bytes, Address]]]] = []
    while (due := core.get_timer()) is not None and due <= until:
        assert len(fired) < _ROUNDS, "too many timer firings"
        core.handle_timer(due)
        fired.append((due, drain(core, due)))
        after = core.get_timer()
        assert after is None or after > due, f"timer stuck at {due!r} (next {after!r})"
    return fired


def fire_times(core: Endpoint, until: float) -> list[float]:
    """:func:`run_timers`, keeping only the firing times."""
    return [time for time, _ in run_timers(core, until)]


def text_of_size(char: str, size: int) -> str:
    """A text of exactly ``size`` UTF-8 bytes, mostly made of ``char``."""
    width = len(char.encode("utf-8"))
    return char * (size // width) + "x" * (size % width)


#: What a core's user does to send text: ``send(text, now)``.
Send = Callable[[str, float], None]


def check_too_long(send: Send, core: Endpoint, text: str, limit: int, now: float) -> None:
    """Sending ``text`` is refused with MessageTooLong(size, ``limit``) and nothing goes out."""
    send(text, now)
    assert core.pop_events() == [MessageTooLong(text, len(text.encode("utf-8")), limit)]
    assert drain(core, now) == []


def check_fragmented_limit(send: Send, core: Endpoint, char: str, max_message: int) -> None:
    """A text of exactly ``max_message`` bytes goes out as numbered fragments (MORE on all
    but the last) that rebuild it; one more character is too long. The core's config has
    ``max_datagram=64``; its session has sent no data yet."""
    fits = text_of_size(char, max_message)
    send(fits, 1.0)
    fragments = [frame for frame, _ in frames_out(core, 1.0) if isinstance(frame, Data)]
    count = math.ceil(max_message / (64 - DATA_OVERHEAD))
    assert [(f.seq, f.flags) for f in fragments] == [
        (i, FLAG_MORE if i < count - 1 else 0) for i in range(count)
    ]
    assert b"".join(f.payload for f in fragments) == fits.encode("utf-8")
    check_too_long(send, core, fits + char, max_message, 1.5)


def check_plain_limit(send: Send, core: Endpoint, char: str, limit: int, to: Address) -> None:
    """A plain text of ``limit`` bytes fills one whole datagram to ``to``; one more
    character is too long."""
    fits = text_of_size(char, limit)
    send(fits, 1.0)
    [(datagram, dest)] = drain(core, 1.0)
    assert (dest, len(datagram)) == (to, core.config.max_datagram)
    check_too_long(send, core, fits + char, limit, 2.0)


# -- one core, frame by frame ------------------------------------------------------


def join(server: ServerCore, addr: Address, nonce: int = 5, now: float = 0.0) -> int:
    """Say hello to ``server`` from ``addr``; return the session its welcome grants."""
    feed(server, Hello(nonce), addr, now)
    [(welcome, to)] = frames_out(server, now)
    assert isinstance(welcome, Welcome)
    assert (welcome.nonce, to) == (nonce, addr)
    return welcome.session


def start(client: ClientCore, now: float = 0.0) -> int:
    """Start ``client``; return the nonce of its hello."""
    client.start(now)
    [(hello, to)] = frames_out(client, now)
    assert isinstance(hello, Hello)
    assert to == SERVER
    return hello.nonce


def connect(client: ClientCore, session: int, now: float = 0.0) -> None:
    """Start ``client`` and welcome it into ``session``."""
    feed(client, Welcome(start(client, now), session, 60_000), SERVER, now)
    drain(client, now)
    assert client.state == "connected"


# -- a client and a server on an in-memory link ---------------------------------------


@dataclass(frozen=True, slots=True)
class Hop:
    """One datagram on the link: when, which way, and whether it arrived."""

    time: float
    from_client: bool
    data: bytes
    delivered: bool

    def frame(self) -> Frame:
        return decode_frame_untrusted(self.data)


class Pair:
    """A :class:`ClientCore` and a :class:`ServerCore` joined by a lossless, instant link.

    ``addr`` is where the client's datagrams seem to come from (change it to
    roam); the server's datagrams reach the client only if sent to ``addr``.
    Clear ``to_server`` / ``to_client`` to cut one direction. ``hops`` logs
    every datagram.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        client_config: Config | None = None,
        seed: int = SEED,
    ) -> None:
        self.server = make_server(config, seed=seed)
        self.client = make_client(client_config or config, seed=seed + 1)
        self.addr = CLIENT
        self.now = 0.0
        self.to_server = True
        self.to_client = True
        self.hops: list[Hop] = []

    def exchange(self) -> None:
        """Deliver datagrams both ways at ``now`` until neither core has more."""
        for _ in range(_ROUNDS):
            client_out = drain(self.client, self.now)
            server_out = drain(self.server, self.now)
            if not client_out and not server_out:
                return
            for data, to in client_out:
                assert to == SERVER
                self._hop(True, data, self.to_server)
            for data, to in server_out:
                self._hop(False, data, self.to_client and to == self.addr)
        raise AssertionError("the cores never go quiet")

    def _hop(self, from_client: bool, data: bytes, delivered: bool) -> None:
        self.hops.append(Hop(self.now, from_client, data, delivered))
        if not delivered:
            return
        if from_client:
            self.server.receive_datagram(data, self.addr, self.now)
        else:
            self.client.receive_datagram(data, SERVER, self.now)

    def advance(self, until: float) -> None:
        """Fire both cores' timers in time order up to ``until``, exchanging after each."""
        assert until >= self.now
        for _ in range(_ROUNDS):
            timers = [
                t for t in (self.client.get_timer(), self.server.get_timer()) if t is not None
            ]
            due = min(timers, default=None)
            if due is None or due > until:
                break
            self.now = due
            for core in (self.client, self.server):
                timer = core.get_timer()
                if timer is not None and timer <= due:
                    core.handle_timer(due)
            self.exchange()
            for core in (self.client, self.server):
                after = core.get_timer()
                assert after is None or after > due, f"{core!r}: timer stuck at {due!r}"
        else:
            raise AssertionError("too many timer firings")
        self.now = until
        self.exchange()

    def connect(self) -> None:
        """Start the client and let it get its session."""
        self.client.start(self.now)
        self.exchange()
        assert self.client.state == "connected"

    def say(self, text: str) -> None:
        """The client's user types ``text``."""
        self.client.send_text(text, self.now)
        self.exchange()

    def reply(self, text: str) -> None:
        """The server's operator types ``text``."""
        self.server.reply(text, self.now)
        self.exchange()

    def frames(self, *, from_client: bool, since: float = -1.0) -> list[Frame]:
        """Frames sent one way at or after ``since`` (delivered or not)."""
        return [
            hop.frame()
            for hop in self.hops
            if hop.from_client == from_client and hop.time >= since and hop.data[:1] == b"\xf9"
        ]


def sealed(data: bytes) -> bytes:
    """``data`` with a correct CRC-32 trailer, so a check past the checksum is what fails."""
    return data + zlib.crc32(data).to_bytes(4, "big")
