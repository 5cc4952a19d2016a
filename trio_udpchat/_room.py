"""The room: members, names, presence, history and limits; who receives what.

Sans-IO like the rest of the core. Members are framed clients (keyed by their
session id) and plain-text peers (keyed by their address); the operator takes
part under its own name. What happens in the room (a message, a join, a
leave, a rename) is *published* as a :data:`RoomEvent` and *applied* when it
comes back: with the built-in local bus it comes back at once. When a bus
joins servers into one room (``_roombus``), events wait in :attr:`Room.outbox`
for it, come back in the bus's order to every server (:meth:`Room.apply`), and
the room also knows the members other servers hold (:attr:`Room.remote`).

While the room holds at most one member it is a classic one-to-one chat: the
operator sees the classic lines and no presence notices.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final, TypeAlias
from zlib import crc32

from ._budget import TokenBucket
from ._chat import (
    Act,
    AskWho,
    ClientMessage,
    Join,
    Named,
    Notice,
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
    RoomNotice,
)
from ._names import address_name, name_key, name_problem, suggest

#: A member's key: its session id, or for a plain-text peer its address; a member
#: of another server is known by its bus-wide key, ``"server/local-id"``.
MemberId: TypeAlias = int | tuple[Any, ...] | str


@dataclass(frozen=True, slots=True)
class RoomSaid:
    """Published: ``sender`` (``None``: the operator) said ``text`` to the room."""

    sender: MemberId | None
    name: str
    text: str
    time: float
    kind: SaidKind
    #: Who holds the sender's name across servers (only with a bus): a sender that
    #: moved to another server is not shown its own message there.
    owner: str = ""


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
    #: Who holds the name across servers (see ``Room._owner``).
    owner: str = ""
    #: A member that moved between servers of the room: nobody is told.
    quiet: bool = False


@dataclass(frozen=True, slots=True)
class RoomWhisper:
    """Sent to one server: ``name`` said ``text`` privately to its member ``to``."""

    to: str
    name: str
    text: str
    time: float


RoomEvent: TypeAlias = RoomSaid | RoomPresence | RoomWhisper


@dataclass(frozen=True, slots=True)
class Origin:
    """The server an event comes from, as the bus names it and as people see it."""

    server: str
    label: str


@dataclass(slots=True)
class Remote:
    """A member another server holds."""

    key: str
    name: str
    origin: Origin
    owner: str
    last_spoke: float
    #: Since when (monotonic) the bus's presence list has not had this member.
    missing_since: float | None = None


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
    #: The client's token (the same in every session of one client run; 0: none).
    token: int = 0


def local_text(member_id: MemberId) -> str:
    """A local member id as text, for its bus-wide key."""
    if isinstance(member_id, tuple):
        return f"{member_id[0]}:{member_id[1]}"
    return str(member_id)


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
        #: This server's id on the bus, and whether the bus reaches the other servers.
        self.server_id = ""
        self.linked = False
        #: Members other servers hold, by key, and their names.
        self.remote: dict[str, Remote] = {}
        self._remote_names: dict[str, str] = {}
        self._evicted: list[MemberId] = []
        #: Local members by who holds their name (see ``_owner``).
        self._owners: dict[str, MemberId] = {}

    # -- outputs -----------------------------------------------------------------

    def take_deliveries(self) -> list[tuple[MemberId, ServerMessage]]:
        """What to send to which member, oldest first."""
        out, self._deliveries = self._deliveries, []
        return out

    def take_events(self) -> list[Event]:
        """What the operator should see, oldest first."""
        out, self._events = self._events, []
        return out

    def take_evicted(self) -> list[MemberId]:
        """Members that moved to another server of the room: end their sessions quietly."""
        if not self._evicted:  # nearly always, and this is on every datagram's path
            return []
        out, self._evicted = self._evicted, []
        return out

    # -- membership -----------------------------------------------------------------

    def taken(self, name: str, owner: str = "") -> bool:
        """Whether ``name`` clashes with a member's (here or on another server, unless
        ``owner`` holds it there) or the operator's."""
        key = name_key(name)
        holder = self.remote.get(self._remote_names.get(key, ""))
        if holder is not None and (not owner or holder.owner != owner):
            return True
        return key in self._by_name or key == name_key(self.operator)

    def key_of(self, member_id: MemberId) -> str:
        """A local member's key on the bus."""
        return f"{self.server_id}/{local_text(member_id)}"

    def _owner(self, member: Member) -> str:
        """Who holds ``member``'s name across servers: its client, if it has a token (so
        it keeps the name when it lands on another server), else its key on the bus."""
        return f"t:{member.token:016x}" if member.token else f"m:{self.key_of(member.id)}"

    def join(
        self,
        member_id: MemberId,
        address: Address,
        wanted: str,
        now: float,
        *,
        plain: bool = False,
        since: float = -1.0,
        token: int = 0,
    ) -> bool:
        """Add a member asking to be called ``wanted``; ``False`` if the room is full.

        A framed member gets the history newer than ``since`` (a rejoin after a
        reconnect has seen the rest). A ``token`` that another server's member
        holds is that client moving here: it keeps its name, and nobody is told.
        """
        if self._started is None:
            self._started = now
        if member_id in self.members:
            return True
        if len(self.members) >= self.config.max_clients:
            return False
        bucket = TokenBucket(self.config.rate_limit, self.config.rate_burst, now)
        member = Member(member_id, "", address, plain, now, bucket, token)
        owner = self._owner(member)
        moved = self._holder(owner)
        if moved is not None and not wanted:
            wanted = moved.name
        name = self._free_address_name(address)
        problem = None if not wanted else self._name_problem(wanted, owner)
        if wanted and problem is None:
            name = wanted
        member.name = name
        self.members[member_id] = member
        self._by_name[name_key(name)] = member_id
        self._owners[owner] = member_id
        if problem is not None:
            self._deliver(member_id, Refused(RefusedWhy.NAME, f"{problem}; for now you are {name}"))
        if not plain:
            self._deliver(member_id, Named(name))
            for said in self._history:
                if said.time > since:
                    self._deliver(member_id, said)
        joined = PresenceKind.JOINED
        self._publish(
            RoomPresence(
                member_id,
                joined,
                name,
                "",
                self._wall(now),
                self._crowd(),
                owner,
                moved is not None,
            )
        )
        return True

    def leave(self, member_id: MemberId, reason: str, now: float) -> None:
        """Remove a member (no-op if it is not one); ``reason`` is shown in parentheses."""
        member = self.members.pop(member_id, None)
        if member is None:
            return
        del self._by_name[name_key(member.name)]
        crowd = self._crowd() + 1
        owner = self._owner(member)
        if self._owners.get(owner) == member_id:
            del self._owners[owner]
        left = PresenceKind.LEFT
        self._publish(
            RoomPresence(member_id, left, member.name, reason, self._wall(now), crowd, owner)
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
        others = [
            RosterEntry(member.name, int(now - member.last_spoke))
            for member in self.members.values()
        ]
        wall = self._wall(now)
        others += [
            RosterEntry(
                remote.name, int(max(wall - remote.last_spoke, 0)), server=remote.origin.label
            )
            for remote in self.remote.values()
        ]
        return Roster((*entries, *sorted(others, key=lambda entry: name_key(entry.name))))

    def name_of(self, member_id: MemberId) -> str | None:
        """The name of a member, if it is one."""
        member = self.members.get(member_id)
        return None if member is None else member.name

    # -- the bus -------------------------------------------------------------------

    def apply(self, event: RoomEvent, origin: Origin | None = None) -> None:
        """Deliver a published event to the local members and the operator;
        ``origin``: the other server it comes from (``None``: this one)."""
        match event:
            case RoomSaid(sender=sender, name=name, text=text, time=time, kind=kind):
                said = Said(name, text, time, kind)
                self._remember(said)
                # The sender, here or (having moved here) as a member of ours now.
                moved = self._owners.get(event.owner) if origin is not None else None
                for member_id in self.members:
                    if member_id != sender and member_id != moved:
                        self._deliver(member_id, said)
                if origin is not None:
                    remote = self.remote.get(str(sender))
                    if remote is not None:
                        remote.last_spoke = time
                    self._events.append(RoomMessage(name, text, time, KINDS[kind], None))
                    return
                member = self.members.get(sender) if sender is not None else None
                if member is not None:
                    self._show_operator(member, text, time, kind)
            case RoomPresence():
                self._apply_presence(event, origin)
            case RoomWhisper(to=to, name=name, text=text, time=time):
                target = self._local_id(to)
                if target is not None:
                    self._deliver(target, Said(name, text, time, SaidKind.PRIVATE))

    def remember(self, event: RoomEvent) -> None:
        """Keep ``event`` in the history without delivering it (the bus's history, read
        when this server starts)."""
        if isinstance(event, RoomSaid):
            self._remember(Said(event.name, event.text, event.time, event.kind))

    def forget_history(self) -> None:
        """The bus lost the shared history: start a new one."""
        self._history.clear()
        self._history_bytes = 0

    def notice(self, text: str) -> None:
        """Tell every local member and the operator ``text`` about the room itself."""
        for member_id in self.members:
            self._deliver(member_id, Notice(text))
        self._events.append(RoomNotice(text))

    def tell(self, member_id: MemberId, text: str) -> None:
        """Tell one local member ``text`` about the room itself."""
        if member_id in self.members:
            self._deliver(member_id, Notice(text))

    def refused(self, event: RoomPresence, holder: str, now: float) -> None:
        """The bus refused ``event``'s name: ``holder`` has it on another server."""
        member = self.members.get(event.subject)
        if member is None:
            return
        if event.what == PresenceKind.RENAMED:
            wanted, old = event.detail, event.name
        elif event.what == PresenceKind.JOINED:
            wanted, old = event.name, ""
        else:
            return
        if name_key(member.name) != name_key(wanted):
            return  # renamed again meanwhile; that rename has its own answer
        del self._by_name[name_key(wanted)]
        if not old:  # a join: take a name by address, and join under it
            old = self._free_address_name(member.address, attempt=holder)
        member.name = old
        self._by_name[name_key(old)] = member.id
        text = f"the name {wanted!r} is taken on another server; you are {old}"
        self._deliver(member.id, Refused(RefusedWhy.NAME, text))
        self._deliver(member.id, Named(old))
        if event.what == PresenceKind.JOINED:
            owner = self._owner(member)
            self._publish(
                RoomPresence(member.id, event.what, old, "", self._wall(now), self._crowd(), owner)
            )

    def presence(self) -> list[tuple[str, str, str]]:
        """Each local member's ``(key, name, owner)``, for the bus's presence list."""
        out = []
        for member in self.members.values():
            key = self.key_of(member.id)
            out.append((key, member.name, self._owner(member)))
        return out

    def reconcile(
        self, others: list[tuple[str, str, str, Origin]], now: float, grace: float
    ) -> None:
        """The bus's live ``(key, name, owner, origin)`` of other servers' members: learn
        who this server missed, and let go of those missing from it for ``grace`` (a
        member who just joined may not be listed yet) — their server is gone."""
        live = {key for key, _, _, _ in others}
        for remote in list(self.remote.values()):
            if remote.key in live:
                remote.missing_since = None
            elif remote.missing_since is None:
                remote.missing_since = now
            elif now - remote.missing_since >= grace:
                self._forget_remote(remote.key)
                detail = "lost with its server"
                gone = Presence(PresenceKind.LEFT, remote.name, detail, self._wall(now))
                self._presence_notice(gone, None)
        owners = {remote.owner for remote in self.remote.values()}
        for key, name, owner, origin in others:
            if key not in self.remote and owner not in owners:
                self._add_remote(key, name, owner, origin, self._wall(now))

    # -- internals -----------------------------------------------------------------

    def _apply_presence(self, event: RoomPresence, origin: Origin | None) -> None:
        subject, what, name, detail = event.subject, event.what, event.name, event.detail
        if event.quiet:  # the client moved: from another server to here, or away
            for key in [k for k, r in self.remote.items() if r.owner == event.owner]:
                self._forget_remote(key)
            for member in list(self.members.values()):
                stale = member.id != subject or origin is not None
                if stale and self._owner(member) == event.owner:
                    self._drop_member(member)
                    self._evicted.append(member.id)
        if origin is not None:
            key = str(subject)
            if what == PresenceKind.LEFT:
                self._forget_remote(key)
            else:  # joined, or renamed to ``detail``
                now_called = detail if what == PresenceKind.RENAMED else name
                self._add_remote(key, now_called, event.owner, origin, event.time)
        if not event.quiet:
            crowd = event.crowd if origin is None else 2  # across servers: never one-to-one
            self._presence_notice(Presence(what, name, detail, event.time), subject, crowd)

    def _presence_notice(
        self, presence: Presence, subject: MemberId | None, crowd: int = 2
    ) -> None:
        for member_id in self.members:
            if member_id != subject:
                self._deliver(member_id, presence)
        if crowd >= 2:
            what = PRESENCE[presence.what]
            self._events.append(
                PresenceNoticed(what, presence.name, presence.detail, presence.time)
            )

    def _add_remote(self, key: str, name: str, owner: str, origin: Origin, time: float) -> None:
        self._forget_remote(key)
        self.remote[key] = Remote(key, name, origin, owner, time)
        self._remote_names[name_key(name)] = key

    def _forget_remote(self, key: str) -> None:
        remote = self.remote.pop(key, None)
        if remote is not None and self._remote_names.get(name_key(remote.name)) == key:
            del self._remote_names[name_key(remote.name)]

    def _holder(self, owner: str) -> Remote | None:
        """The member of another server whose name ``owner`` holds, if any."""
        if owner.startswith("t:"):
            for remote in self.remote.values():
                if remote.owner == owner:
                    return remote
        return None

    def _local_id(self, key: str) -> MemberId | None:
        for member_id in self.members:
            if self.key_of(member_id) == key:
                return member_id
        return None

    def _drop_member(self, member: Member) -> None:
        del self.members[member.id]
        if self._by_name.get(name_key(member.name)) == member.id:
            del self._by_name[name_key(member.name)]
        owner = self._owner(member)
        if self._owners.get(owner) == member.id:
            del self._owners[owner]

    def _crowd(self) -> int:
        return len(self.members) + len(self.remote)

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
            owner = "" if self.local_bus else self._owner(member)
            said = RoomSaid(member.id, member.name, text, self._wall(now), kind, owner)
            self._publish(said)

    def _show_operator(self, member: Member, text: str, time: float, kind: SaidKind) -> None:
        if self._crowd() <= 1 and kind == SaidKind.SAY:
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
        remote = self.remote.get(self._remote_names.get(name_key(to), ""))
        if target is not None:
            self._deliver(target, said)
        elif remote is not None and self.linked:
            self.outbox.append(RoomWhisper(remote.key, member.name, text, said.time))
        elif remote is not None:
            hint = f"{to} is on another server, which cannot be reached now; not sent"
            self._deliver(member.id, Refused(RefusedWhy.OTHER, hint))
        else:
            hint = f"no one here is called {to!r} (try /who); that message was not sent"
            self._deliver(member.id, Refused(RefusedWhy.NO_SUCH_MEMBER, hint))

    def _free_address_name(self, address: Address, attempt: str = "") -> str:
        """The address's name, made unique if a member that moved away still has it;
        after a clash on the bus (``attempt``: who won), one marked as a retry."""
        base = address_name(address)
        if attempt:
            base = f"{base}-{crc32(attempt.encode()) % 1000:03d}"
        name = base
        number = 2
        while self.taken(name):  # bounded: the rooms hold at most so many members
            name = f"{base}-{number}"
            number += 1
        return name

    def _name_problem(self, name: str, owner: str = "") -> str | None:
        problem = name_problem(name)
        if problem is not None:
            return (
                f"the name {name!r} cannot be used: {problem};"
                f" try /nick {suggest(name, self.taken)}"
            )
        if self.taken(name, owner):
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
        owner = self._owner(member)
        renamed = PresenceKind.RENAMED
        self._publish(
            RoomPresence(member.id, renamed, old, name, self._wall(now), self._crowd(), owner)
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
