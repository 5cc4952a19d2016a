"""What the protocol core tells the layers above: frozen values, past-tense names.

The Trio layer hands each event to the terminal, which decides how (and whether)
to show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from ._stats import StatsSummary

#: A socket address as the socket module gives it: ``(host, port)`` for IPv4,
#: ``(host, port, flowinfo, scope_id)`` for IPv6.
Address: TypeAlias = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Listening:
    """The server's socket is bound at ``address``; by ``workers`` processes
    sharing the port, when more than one (``--workers``)."""

    address: Address
    workers: int = 1


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """``sender`` said ``text``; ``plain`` if it came as a bare text datagram."""

    sender: Address
    text: str
    plain: bool = False


@dataclass(frozen=True, slots=True)
class PeerJoined:
    """A framed client at ``address`` opened a session with the server."""

    address: Address


@dataclass(frozen=True, slots=True)
class PeerLeft:
    """The client at ``address`` is gone; ``reason`` is ``"quit"``, ``"timed out"``,
    ``"not answering"`` or ``"reconnected"``."""

    address: Address
    reason: str = "quit"


@dataclass(frozen=True, slots=True)
class PeerMoved:
    """A client's session now comes from ``new`` (NAT rebinding, a new network)."""

    old: Address
    new: Address


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """The peer acknowledged every packet of ``text``."""

    text: str


@dataclass(frozen=True, slots=True)
class NoRecipient:
    """The operator's ``text`` was not sent: there is nobody to reply to.

    ``left`` is the address of the last speaker if it has since left.
    """

    text: str
    left: Address | None = None


@dataclass(frozen=True, slots=True)
class MessageTooLong:
    """``text`` was not sent: its ``size`` in bytes is over ``limit`` (a message's, or for
    a plain-text peer one datagram's)."""

    text: str
    size: int
    limit: int


@dataclass(frozen=True, slots=True)
class NotDelivered:
    """``text`` never left this program; ``reason`` says why, in words."""

    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class SessionStarted:
    """The server at ``server`` welcomed us; ``reconnect`` if we had a session before."""

    server: Address
    reconnect: bool = False


@dataclass(frozen=True, slots=True)
class ServerSilent:
    """The server at ``server`` has not answered our hellos for ``seconds``."""

    server: Address
    seconds: float


@dataclass(frozen=True, slots=True)
class ServerRefused:
    """The OS reported the server's port unreachable (nothing listening there)."""

    server: Address


@dataclass(frozen=True, slots=True)
class ServerAnswered:
    """The server answers again after we reported it silent or refused."""

    server: Address


@dataclass(frozen=True, slots=True)
class SessionLost:
    """The server no longer knows our session (it restarted); we are reconnecting."""

    server: Address


@dataclass(frozen=True, slots=True)
class RoomMessage:
    """``name`` said ``text`` in the room at wall-clock ``time``.

    ``kind`` is ``"say"``, ``"act"`` (/me) or ``"private"``; ``history`` marks a
    replay sent on joining; ``address`` is the sender's, when the server knows it.
    """

    name: str
    text: str
    time: float
    kind: str = "say"
    address: Address | None = None
    history: bool = False


@dataclass(frozen=True, slots=True)
class PresenceNoticed:
    """``name`` ``"joined"``, ``"left"`` (``detail``: why) or was ``"renamed"`` (to ``detail``)."""

    what: str
    name: str
    detail: str
    time: float


@dataclass(frozen=True, slots=True)
class WhoListed:
    """The answer to /who: ``(name, idle seconds, is the operator, server)`` for each;
    the server is empty for this one (it is named when the room spans servers)."""

    entries: tuple[tuple[str, int, bool, str], ...]


@dataclass(frozen=True, slots=True)
class RoomNotice:
    """News about the room itself, such as the link to other servers being lost."""

    text: str


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """The server did not do what we asked; ``text`` says why and what to do."""

    text: str


@dataclass(frozen=True, slots=True)
class NameAssigned:
    """Our name in the room is now ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class PendingListed:
    """The answer to /pending: texts not yet acknowledged, oldest first."""

    texts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HelpListed:
    """The answer to /help: ``(name, description)`` of each command."""

    commands: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class StatsListed:
    """The answer to /stats: traffic, retransmissions, drops and round-trip times."""

    summary: StatsSummary


@dataclass(frozen=True, slots=True)
class Connecting:
    """The client is trying to reach the server at ``server`` (shown by the I/O layer)."""

    server: Address


@dataclass(frozen=True, slots=True)
class CommandRejected:
    """A typed command was not understood; ``hint`` says why."""

    hint: str


@dataclass(frozen=True, slots=True)
class KeyNeeded:
    """The client must derive the room key for ``salt`` (slow: the I/O layer does it
    off the event loop, then calls :meth:`ClientCore.provide_key`)."""

    salt: bytes


@dataclass(frozen=True, slots=True)
class NotEncrypted:
    """The chat has no passphrase: said once, when it starts."""


Event: TypeAlias = (
    Listening
    | MessageReceived
    | PeerJoined
    | PeerLeft
    | PeerMoved
    | MessageDelivered
    | NoRecipient
    | MessageTooLong
    | NotDelivered
    | SessionStarted
    | ServerSilent
    | ServerRefused
    | ServerAnswered
    | SessionLost
    | RoomMessage
    | PresenceNoticed
    | WhoListed
    | RoomNotice
    | RequestRefused
    | NameAssigned
    | PendingListed
    | HelpListed
    | StatsListed
    | Connecting
    | CommandRejected
    | KeyNeeded
    | NotEncrypted
)
