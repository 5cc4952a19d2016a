"""What a server asks of the bus that joins it to other servers, and what comes back.

Sans-IO: the core queues *commands*; the Trio layer carries them out against a
real bus (Redis, ``_redisbus``) or the in-memory one (``_membus``), and feeds
back *results*, the *messages* the bus broadcasts and whether the link is up.
Both buses implement exactly these meanings:

``Publish(payload, claim, release)``
    Atomically: if ``claim`` is given and its name is held by another owner,
    publish nothing and answer :class:`Clashed`. Otherwise hold the claimed
    name for ``claim.owner`` (expiring after ``ttl`` unless refreshed), give up
    ``release`` if that owner holds it, take the room's next sequence number
    (the room's *epoch* is created if the bus has none: a bus that lost its
    data starts a new epoch at sequence 1), keep the payload in the room's
    history (the newest ``keep`` entries) and broadcast ``(epoch, seq,
    payload)`` to every server in the room, the sender included; answer
    :class:`Published`.
``Fetch(after)``
    Answer :class:`Fetched`: the room's epoch and the kept entries with a
    sequence number above ``after``, oldest first.
``Refresh(records, gone, ttl)``
    Mark each of this server's ``records`` present for ``ttl`` seconds more
    (and their names held for their owners, unless another owner holds one),
    forget the ``gone`` member keys, drop every record whose time ran out, and
    answer :class:`Refreshed` with all live records of every server.
``Direct(server, payload)``
    Send ``payload`` to one server only (private messages); no answer.

A command that fails (the bus is down, or slower than the core's patience)
makes the link *lost*: the Trio layer calls ``bus_lost`` and, once it is back,
``bus_connected``. Messages on the bus are at-most-once; the core fills gaps
with ``Fetch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeAlias


@dataclass(frozen=True, slots=True)
class Claim:
    """A name (as :func:`~trio_udpchat._names.name_key` folds it) and who holds it."""

    name_key: str
    owner: str


@dataclass(frozen=True, slots=True)
class PresenceRecord:
    """One member of the room as the bus lists it."""

    #: The server holding the member's session, and how people see that server.
    server: str
    label: str
    #: The member, unique across servers (``server/local-id``).
    member: str
    name: str
    #: Who holds the name (see :class:`Claim`).
    owner: str


@dataclass(frozen=True, slots=True)
class Publish:
    """Sequence ``payload`` and broadcast it to the room (see the module docstring)."""

    payload: bytes
    claim: Claim | None = None
    release: Claim | None = None
    #: Names are held this long unless refreshed; history keeps this many entries.
    ttl: float = 60.0
    keep: int = 100


@dataclass(frozen=True, slots=True)
class Fetch:
    """Ask for the kept history after sequence number ``after``."""

    after: int


@dataclass(frozen=True, slots=True)
class Refresh:
    """Renew this server's presence records and read everyone's."""

    records: tuple[PresenceRecord, ...]
    gone: tuple[str, ...] = ()
    ttl: float = 60.0


@dataclass(frozen=True, slots=True)
class Direct:
    """Send ``payload`` to ``server`` alone."""

    server: str
    payload: bytes


BusCommand: TypeAlias = Publish | Fetch | Refresh | Direct


@dataclass(frozen=True, slots=True)
class Published:
    """``command`` was sequenced as ``seq`` in ``epoch``."""

    command: Publish
    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class Clashed:
    """``command`` was not published: its claimed name is held by ``owner``."""

    command: Publish
    owner: str


@dataclass(frozen=True, slots=True)
class Fetched:
    """The kept history after ``command.after``: ``(seq, payload)``, oldest first."""

    command: Fetch
    epoch: str
    entries: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class Refreshed:
    """Every live presence record, after ``command`` was applied."""

    command: Refresh
    records: tuple[PresenceRecord, ...]


BusResult: TypeAlias = Published | Clashed | Fetched | Refreshed


class BusPort(Protocol):
    """What the Trio layer's bus adapter drives: the server core, in effect.

    After any of these calls the caller flushes the core (its datagrams and
    events), as after a datagram.
    """

    @property
    def server_id(self) -> str:
        """This server's id on the bus (its private channel is named after it)."""
        ...

    def bus_commands(self) -> list[BusCommand]:
        """Take the commands queued since the last call, oldest first."""
        ...

    def bus_connected(self, now: float) -> None:
        """The link is up: subscribed to the room and to this server's channel."""
        ...

    def bus_lost(self, now: float) -> None:
        """The link is down (a command failed or timed out, or the connection broke)."""
        ...

    def bus_message(self, epoch: str, seq: int, payload: bytes, now: float) -> None:
        """The room's broadcast ``(epoch, seq, payload)`` arrived."""
        ...

    def bus_direct(self, payload: bytes, now: float) -> None:
        """A :class:`Direct` payload for this server arrived."""
        ...

    def bus_result(self, result: BusResult, now: float) -> None:
        """A command's answer."""
        ...
