"""The room: members, names, presence, history and limits; who receives what.

Sans-IO like the rest of the core. Members are framed clients (keyed by their
session id) and plain-text peers (keyed by their address); the operator takes
part under its own name. What happens in the room (a message, a join, a
leave, a rename) is *published* as a :data:`RoomEvent` and *applied* when it
comes back: with the built-in local bus it comes back at once, and a bus
spanning several servers can take its place (:meth:`Room.apply` is the entry).

While the room holds at most one member it is a classic one-to-one chat: the
operator sees the classic lines and no presence notices.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ._budget import TokenBucket
from ._chat import (
    Act,
    AskWho,
    ClientMessage,
    Join,
    Named,
    Presence,
    PresenceKind,
    Quit,
    Refused,
    RefusedWhy,
    Rename,
    Roster,
    RosterEntry,
    Said,
    SaidKind,
    Say,
    ServerMessage,
    Whisper,
)
from ._config import Config
from ._events import (
    Address,
    CommandRejected,
    Event,
    MessageReceived,
    PresenceNoticed,
    RoomMessage,
)
from ._names import address_name, name_key, name_problem, suggest

#: A member's key: its session id, or for a plain-text peer its address.
MemberId: TypeAlias = int | tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class RoomSaid:
    """Published: ``sender`` (``None``: the operator) said ``text`` to the room."""

    sender: MemberId | None
    name: str
    text: str
    time: float
    kind: SaidKind


@dataclass(frozen=True, slots=True)
class RoomPresence:
    """Published: ``subject`` joined, left or was renamed."""

    subject: MemberId
    what: PresenceKind
    name: str
    detail: str
    time: float
    #: The room's size before or after the change, whichever is larger: the
    #: operator hears of it unless the room was and is a one-to-one chat.
    crowd: int = 2


RoomEvent: TypeAlias = RoomSaid | RoomPresence

#: How events name the kinds of things said and of presence changes.
KINDS: Final = {
    SaidKind.SAY: "say",
    SaidKind.ACT: "act",
    SaidKind.PRIVATE: "private",
    SaidKind.REPLY: "reply",
}
PRESENCE: Final = {
    PresenceKind.JOINED: "joined",
    PresenceKind.LEFT: "left",
    PresenceKind.RENAMED: "renamed",
}


@dataclass(slots=True)
class Member:
    """Someone in the room."""

    id: MemberId
    name: str
    address: Address
    plain: bool
    last_spoke: float
    bucket: TokenBucket


class Room:
    """One chat room; the server core feeds it and sends what it decides."""

    def __init__(self, config: Config, operator: str = "server", wall_offset: float = 0.0) -> None:
        self.config = config
        self.operator = operator
        #: Added to ``now`` for the wall-clock time shown with messages.
        self.wall_offset = wall_offset
        self.members: dict[MemberId, Member] = {}
        self._by_name: dict[str, MemberId] = {}
        self._history: deque[Said] = deque()
        self._history_bytes = 0
        self._operator_spoke: float | None = None  # None: not yet, since _started
        self._started: float | None = None
        self._deliveries: list[tuple[MemberId, ServerMessage]] = []
        self._events: list[Event] = []
        #: With an external bus, published events wait here for it; see :meth:`apply`.
        self.outbox: list[RoomEvent] = []
        self.local_bus = True

    # -- outputs -----------------------------------------------------------------

    def take_deliveries(self) -> list[tuple[MemberId, ServerMessage]]:
        """What to send to which member, oldest first."""
        out, self._deliveries = self._deliveries, []
        return out

    def take_events(self) -> list[Event]:
        """What the operator should see, oldest first."""
        out, self._events = self._events, []
        return out

    # -- membership -----------------------------------------------------------------

    def taken(self, name: str) -> bool:
        """Whether ``name`` clashes with a member's or the operator's."""
        key = name_key(name)
        return key in self._by_name or key == name_key(self.operator)

    def join(
        self,
        member_id: MemberId,
        address: Address,
        wanted: str,
        now: float,
        *,
        plain: bool = False,
        since: float = -1.0,
    ) -> bool:
        """Add a member asking to be called ``wanted``; ``False`` if the room is full.

        A framed member gets the history newer than ``since`` (a rejoin after a
        reconnect has seen the rest).
        """
        if self._started is None:
            self._started = now
        if member_id in self.members:
            return True
        if len(self.members) >= self.config.max_clients:
            return False
        fallback = self._free_address_name(address)
        name = fallback
        problem = None if not wanted else self._name_problem(wanted)
        if wanted and problem is None:
            name = wanted
        member = Member(
            member_id,
            name,
            address,
            plain,
            now,
            TokenBucket(self.config.rate_limit, self.config.rate_burst, now),
        )
        self.members[member_id] = member
        self._by_name[name_key(name)] = member_id
        if problem is not None:
            self._deliver(member_id, Refused(RefusedWhy.NAME, f"{problem}; for now you are {name}"))
        if not plain:
            self._deliver(member_id, Named(name))
            for said in self._history:
                if said.time > since:
                    self._deliver(member_id, said)
        crowd = len(self.members)
        self._publish(
            RoomPresence(member_id, PresenceKind.JOINED, name, "", self._wall(now), crowd)
        )
        return True

    def leave(self, member_id: MemberId, reason: str, now: float) -> None:
        """Remove a member (no-op if it is not one); ``reason`` is shown in parentheses."""
        member = self.members.pop(member_id, None)
        if member is None:
            return
        del self._by_name[name_key(member.name)]
        crowd = len(self.members) + 1
        self._publish(
            RoomPresence(member_id, PresenceKind.LEFT, member.name, reason, self._wall(now), crowd)
        )

    def moved(self, member_id: MemberId, address: Address) -> None:
        """A member's session now comes from ``address`` (roaming)."""
        member = self.members.get(member_id)
        if member is not None:
            member.address = address

    def expire_plain(self, now: float) -> None:
        """Plain-text peers silent for ``config.plain_expiry`` leave."""
        for member in list(self.members.values()):
            if member.plain and now >= self._plain_expires(member):
                self.leave(member.id, "timed out", now)

    def next_plain_expiry(self) -> float | None:
        """When :meth:`expire_plain` next has work."""
        times = [self._plain_expires(m) for m in self.members.values() if m.plain]
        return min(times) if times else None

    def _plain_expires(self, member: Member) -> float:
        # The one expression both the timer and the check use (float rounding).
        return member.last_spoke + self.config.plain_expiry

    # -- what members say ---------------------------------------------------------

    def receive(self, member_id: MemberId, message: ClientMessage, now: float) -> None:
        """Act on a chat message from a member."""
        member = self.members.get(member_id)
        if member is None:
            return
        match message:
            case Join(name=name):
                if name and name_key(name) != name_key(member.name):
                    self._rename(member, name, now)
            case Say(text=text):
                self._said(member, text, SaidKind.SAY, now)
            case Act(text=text):
                self._said(member, text, SaidKind.ACT, now)
            case Whisper(to=to, text=text):
                if self._allowed(member, now):
                    self._whisper(member, to, text, now)
            case Rename(name=name):
                self._rename(member, name, now)
            case AskWho():
                self._deliver(member_id, self.roster(now))
            case Quit(reason=reason):
                self.leave(member_id, f"quit: {reason}" if reason else "quit", now)

    def plain_line(self, address: Address, text: str, now: float) -> bool:
        """A line from a plain-text peer (joined on its first); ``False`` if the room is full."""
        if address not in self.members and not self.join(address, address, "", now, plain=True):
            return False
        self._said(self.members[address], text, SaidKind.SAY, now)
        return True

    # -- what the operator says ---------------------------------------------------

    def operator_reply(self, member_id: MemberId, text: str, now: float) -> None:
        """The classic rule: the operator's plain line goes to ``member_id`` alone."""
        self._operator_spoke = now
        self._deliver(member_id, Said(self.operator, text, self._wall(now), SaidKind.REPLY))

    def operator_all(self, text: str, now: float) -> None:
        """``/all``: the operator speaks to the whole room."""
        self._operator_spoke = now
        self._publish(RoomSaid(None, self.operator, text, self._wall(now), SaidKind.SAY))

    def operator_to(self, name: str, text: str, now: float) -> None:
        """``/to NAME TEXT``: a private message from the operator."""
        target = self._by_name.get(name_key(name))
        if target is None:
            self._events.append(CommandRejected(f"no one here is called {name!r} (try /who)"))
            return
        self._operator_spoke = now
        said = Said(self.operator, text, self._wall(now), SaidKind.PRIVATE)
        self._deliver(target, said)

    def roster(self, now: float) -> Roster:
        """Who is here, the operator first, with idle times in whole seconds."""
        spoke = self._operator_spoke
        if spoke is None:
            spoke = now if self._started is None else self._started
        entries = [RosterEntry(self.operator, int(now - spoke), operator=True)]
        entries += [
            RosterEntry(member.name, int(now - member.last_spoke))
            for member in sorted(self.members.values(), key=lambda m: name_key(m.name))
        ]
        return Roster(tuple(entries))

    def name_of(self, member_id: MemberId) -> str | None:
        """The name of a member, if it is one."""
        member = self.members.get(member_id)
        return None if member is None else member.name

    # -- the bus -------------------------------------------------------------------

    def apply(self, event: RoomEvent) -> None:
        """Deliver a published event to the local members and the operator."""
        match event:
            case RoomSaid(sender=sender, name=name, text=text, time=time, kind=kind):
                said = Said(name, text, time, kind)
                self._remember(said)
                for member_id in self.members:
                    if member_id != sender:
                        self._deliver(member_id, said)
                member = self.members.get(sender) if sender is not None else None
                if member is not None:
                    self._show_operator(member, text, time, kind)
            case RoomPresence(subject=subject, what=what, name=name, detail=detail, time=time):
                presence = Presence(what, name, detail, time)
                for member_id in self.members:
                    if member_id != subject:
                        self._deliver(member_id, presence)
                if event.crowd >= 2:
                    self._events.append(PresenceNoticed(PRESENCE[what], name, detail, time))

    # -- internals -----------------------------------------------------------------

    def _publish(self, event: RoomEvent) -> None:
        if self.local_bus:
            self.apply(event)
        else:
            self.outbox.append(event)

    def _deliver(self, member_id: MemberId, message: ServerMessage) -> None:
        self._deliveries.append((member_id, message))

    def _wall(self, now: float) -> float:
        return now + self.wall_offset

    def _allowed(self, member: Member, now: float) -> bool:
        if member.bucket.allow(now):
            member.last_spoke = now
            return True
        rate = self.config.rate_limit
        text = (
            f"slow down: at most {rate:g} messages a second (bursts of {self.config.rate_burst});"
            " that one was not sent"
        )
        self._deliver(member.id, Refused(RefusedWhy.SLOW_DOWN, text))
        return False

    def _said(self, member: Member, text: str, kind: SaidKind, now: float) -> None:
        if self._allowed(member, now):
            self._publish(RoomSaid(member.id, member.name, text, self._wall(now), kind))

    def _show_operator(self, member: Member, text: str, time: float, kind: SaidKind) -> None:
        if len(self.members) <= 1 and kind == SaidKind.SAY:
            self._events.append(MessageReceived(member.address, text, plain=member.plain))
        else:
            self._events.append(RoomMessage(member.name, text, time, KINDS[kind], member.address))

    def _whisper(self, member: Member, to: str, text: str, now: float) -> None:
        said = Said(member.name, text, self._wall(now), SaidKind.PRIVATE)
        if name_key(to) == name_key(self.operator):
            self._events.append(
                RoomMessage(member.name, text, said.time, "private", member.address)
            )
            return
        target = self._by_name.get(name_key(to))
        if target is None:
            hint = f"no one here is called {to!r} (try /who); that message was not sent"
            self._deliver(member.id, Refused(RefusedWhy.NO_SUCH_MEMBER, hint))
        else:
            self._deliver(target, said)

    def _free_address_name(self, address: Address) -> str:
        """The address's name, made unique if a member that moved away still has it."""
        name = address_name(address)
        number = 2
        while self.taken(name):  # bounded: the room holds at most max_clients members
            name = f"{address_name(address)}-{number}"
            number += 1
        return name

    def _name_problem(self, name: str) -> str | None:
        problem = name_problem(name)
        if problem is not None:
            return (
                f"the name {name!r} cannot be used: {problem};"
                f" try /nick {suggest(name, self.taken)}"
            )
        if self.taken(name):
            return f"the name {name!r} is taken; try /nick {suggest(name, self.taken)}"
        return None

    def _rename(self, member: Member, name: str, now: float) -> None:
        if name == member.name:
            self._deliver(member.id, Named(name))  # nothing changes
            return
        if name_key(name) == name_key(member.name):
            problem = name_problem(name)  # a change of case only: no clash with oneself
        else:
            problem = self._name_problem(name)
        if problem is not None:
            self._deliver(member.id, Refused(RefusedWhy.NAME, problem))
            return
        old = member.name
        del self._by_name[name_key(old)]
        member.name = name
        self._by_name[name_key(name)] = member.id
        self._deliver(member.id, Named(name))
        crowd = len(self.members)
        self._publish(
            RoomPresence(member.id, PresenceKind.RENAMED, old, name, self._wall(now), crowd)
        )

    def _remember(self, said: Said) -> None:
        if said.kind not in (SaidKind.SAY, SaidKind.ACT):
            return
        kept = Said(said.sender, said.text, said.time, said.kind, history=True)
        self._history.append(kept)
        self._history_bytes += len(said.text.encode("utf-8", errors="replace"))
        while self._history and (
            len(self._history) > self.config.history_count
            or self._history_bytes > self.config.history_bytes
        ):
            dropped = self._history.popleft()
            self._history_bytes -= len(dropped.text.encode("utf-8", errors="replace"))
