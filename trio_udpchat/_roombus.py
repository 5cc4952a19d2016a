"""One room across several servers: what a server sends the bus, and what it makes
of what comes back. Sans-IO: commands out as data (``_bus``), time as an argument.

Every event of the room goes to the bus, which numbers it ``(epoch, seq)`` and
hands it back to every server, this one included: each applies the events in
that order, so all members see one order. A gap in ``seq`` (the bus's
broadcasts are at-most-once) is filled from the bus's history; a new epoch
means the bus lost its data, and members are told the history was reset.

The bus is never waited on for long: if a published event has not come back
within ``config.bus_timeout``, or the Trio layer says the link is down, the
room goes on alone: what was waiting is applied here at once, members are told
once, and each sender is told its messages stay here. When the link is back,
the server renews its presence, fills the gap from the history, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._bus import (
    BusCommand,
    BusResult,
    Claim,
    Clashed,
    Direct,
    Fetch,
    Fetched,
    PresenceRecord,
    Publish,
    Published,
    Refresh,
    Refreshed,
)
from ._chat import PresenceKind
from ._config import Config
from ._envelope import Envelope, decode_envelope_untrusted, encode_envelope
from ._errors import RemoteProtocolError
from ._names import name_key
from ._room import MemberId, Origin, Room, RoomEvent, RoomPresence, RoomSaid, RoomWhisper

LINK_LOST = "link to other servers lost: messages stay on this server"
LINK_RESTORED = "link restored"
STAYED_HERE = "your messages reach only this server until the link to the others is back"
HISTORY_RESET = "the shared history was reset (the bus lost its data)"


@dataclass(frozen=True, slots=True)
class _Pending:
    """An event of ours on its way through the bus."""

    event: RoomEvent
    deadline: float
    command: Publish


class BusLink:
    """Joins ``room`` to the others on the bus as server ``server_id`` (shown as ``label``)."""

    def __init__(self, room: Room, server_id: str, label: str, config: Config) -> None:
        self.room = room
        self.config = config
        self.origin = Origin(server_id, label)
        room.server_id = server_id
        room.local_bus = False
        room.linked = False
        #: Whether the bus is reachable (as far as this server knows).
        self.up = False
        #: Broadcasts that could not be read (counted, then skipped).
        self.malformed = 0
        self._commands: list[BusCommand] = []
        self._number = 0
        self._pending: dict[int, _Pending] = {}  # by number, oldest first
        self._epoch: str | None = None
        self._seq = 0  # the last sequence number applied
        self._waiting: dict[int, tuple[str, bytes]] = {}  # arrived early, or while fetching
        self._fetching = False
        self._loaded = False  # the history has been read once (at start, nothing is shown)
        self._healing = False  # the link came back: say so once the gap is filled
        self._lost_told = False
        self._told: set[MemberId] = set()  # senders told their messages stay here
        self._refresh_at = 0.0
        self._presence_changed = False
        self._gone: list[str] = []

    # -- to the bus ------------------------------------------------------------------

    @property
    def has_commands(self) -> bool:
        """Whether :meth:`take_commands` has anything."""
        return bool(self._commands)

    def take_commands(self) -> list[BusCommand]:
        """What the bus should do, oldest first."""
        out, self._commands = self._commands, []
        return out

    def pump(self, now: float) -> None:
        """Take what the room published: to the bus, or applied here while alone."""
        events, self.room.outbox = self.room.outbox, []
        for event in events:
            if isinstance(event, RoomWhisper):
                if self.up:  # else the room refused it already
                    server = event.to.partition("/")[0]
                    self._commands.append(Direct(server, self._encode(event)))
                continue
            if isinstance(event, RoomPresence):
                self._presence_changed = True
                if event.what == PresenceKind.LEFT and not isinstance(event.subject, str):
                    self._gone.append(self.room.key_of(event.subject))
            if not self.up:
                self._alone(event)
                continue
            claim, release = _claims(event)
            command = Publish(
                self._encode(event),
                claim,
                release,
                ttl=self.config.presence_ttl,
                keep=self.config.history_count,
            )
            self._pending[self._number] = _Pending(event, now + self.config.bus_timeout, command)
            self._commands.append(command)
        if self._presence_changed and self.up:
            self._refresh(now)

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` next has work: a publish overdue, or a refresh."""
        first = next(iter(self._pending.values()), None)
        if first is None:
            return self._refresh_at
        return min(first.deadline, self._refresh_at)

    def handle_timer(self, now: float) -> None:
        """Give up on an overdue publish (the link is lost), renew presence when due."""
        first = next(iter(self._pending.values()), None)
        if first is not None and now >= first.deadline:
            self.lost(now)
        if now >= self._refresh_at:
            # While alone, this is also the probe: its answer means the bus is back.
            self._refresh(now)

    # -- from the bus ------------------------------------------------------------------

    def connected(self, now: float) -> None:
        """The link is up: fill what was missed (or read the history) and renew presence."""
        self.up = True
        self.room.linked = True
        self._fetch()
        self._refresh(now)

    def lost(self, now: float) -> None:
        """The link is down: apply what waited, here alone, and tell the members once."""
        if not self.up:
            return
        self.up = False
        self.room.linked = False
        self._fetching = False
        self._waiting.clear()
        self._healing = self._loaded
        waiting, self._pending = self._pending, {}
        if not self._lost_told:
            self._lost_told = True
            self.room.notice(LINK_LOST)
        for pending in waiting.values():
            self._alone(pending.event)
        self._refresh_at = now + self.config.bus_timeout

    def message(self, epoch: str, seq: int, payload: bytes, now: float) -> None:
        """A broadcast of the room: apply it in order, or wait for the gap before it."""
        self._alive(now)
        if self._fetching:
            self._wait(epoch, seq, payload)
            return
        if epoch != self._epoch:
            self._new_epoch(epoch)
        if seq <= self._seq:
            return  # seen (a fetch overlapping a broadcast)
        if seq != self._seq + 1:
            self._wait(epoch, seq, payload)
            self._fetch()
            return
        self._apply(seq, payload)
        self._apply_waiting()

    def direct(self, payload: bytes, now: float) -> None:
        """A private message for one of our members."""
        self._alive(now)
        envelope = self._decode(payload)
        if envelope is not None and isinstance(envelope.event, RoomWhisper):
            self.room.apply(envelope.event, envelope.origin)

    def result(self, result: BusResult, now: float) -> None:
        """A command's answer. A :class:`Published` one changes nothing: the broadcast
        that follows it does (so the Trio layer need not flush after it)."""
        if isinstance(result, Published):
            return
        self._alive(now)
        match result:
            case Clashed(command=command, owner=owner):
                for number, pending in self._pending.items():
                    if pending.command is command:
                        del self._pending[number]
                        if isinstance(pending.event, RoomPresence):
                            self.room.refused(pending.event, owner, now)
                        break
            case Fetched(epoch=epoch, entries=entries):
                self._fetched(epoch, entries)
            case Refreshed(records=records):
                others = [
                    (r.member, r.name, r.owner, Origin(r.server, r.label))
                    for r in records
                    if r.server != self.origin.server
                ]
                self.room.reconcile(others, now, self.config.presence_refresh)

    # -- internals -------------------------------------------------------------------

    def _encode(self, event: RoomEvent) -> bytes:
        self._number += 1
        return encode_envelope(Envelope(self.origin, self._number, event), self.room.key_of)

    def _decode(self, payload: bytes) -> Envelope | None:
        try:
            return decode_envelope_untrusted(payload)
        except RemoteProtocolError:
            self.malformed += 1
            return None

    def _alive(self, now: float) -> None:
        """Anything from the bus after this server gave up on it: the link is back."""
        if not self.up:
            self.connected(now)

    def _alone(self, event: RoomEvent) -> None:
        self.room.apply(event)
        sender = event.sender if isinstance(event, RoomSaid) else None
        if sender is not None and sender not in self._told:
            self._told.add(sender)
            self.room.tell(sender, STAYED_HERE)

    def _refresh(self, now: float) -> None:
        self._presence_changed = False
        records = tuple(
            PresenceRecord(self.origin.server, self.origin.label, key, name, owner)
            for key, name, owner in self.room.presence()
        )
        gone, self._gone = tuple(self._gone), []
        self._commands.append(Refresh(records, gone, self.config.presence_ttl))
        every = self.config.presence_refresh if self.up else self.config.bus_timeout
        self._refresh_at = now + every

    def _fetch(self) -> None:
        if not self._fetching:
            self._fetching = True
            self._commands.append(Fetch(self._seq))

    def _fetched(self, epoch: str, entries: tuple[tuple[int, bytes], ...]) -> None:
        self._fetching = False
        if epoch != self._epoch:
            self._new_epoch(epoch)
        for seq, payload in entries:
            if seq > self._seq:
                self._apply(seq, payload)
        self._loaded = True
        # What waited and still has a gap before it is beyond the history: skip the gap.
        ahead = sorted(s for s, (e, _) in self._waiting.items() if e == epoch and s > self._seq)
        if ahead and ahead[0] > self._seq + 1:
            self._seq = ahead[0] - 1
        self._apply_waiting()
        if self._healing:
            self._healing = False
            self._lost_told = False
            self._told.clear()
            self.room.notice(LINK_RESTORED)

    def _new_epoch(self, epoch: str) -> None:
        if self._epoch is not None:
            self.room.forget_history()
            self.room.notice(HISTORY_RESET)
        self._epoch = epoch
        self._seq = 0
        self._waiting = {s: w for s, w in self._waiting.items() if w[0] == epoch}

    def _wait(self, epoch: str, seq: int, payload: bytes) -> None:
        if len(self._waiting) < self.config.history_count:  # beyond: fetched instead
            self._waiting[seq] = (epoch, payload)

    def _apply_waiting(self) -> None:
        while True:  # bounded: each turn removes one entry
            waiting = self._waiting.pop(self._seq + 1, None)
            if waiting is None or waiting[0] != self._epoch:
                break
            self._apply(self._seq + 1, waiting[1])
        self._waiting = {s: w for s, w in self._waiting.items() if s > self._seq}

    def _apply(self, seq: int, payload: bytes) -> None:
        self._seq = seq
        envelope = self._decode(payload)
        if envelope is None:
            return
        if envelope.origin.server == self.origin.server:
            # Ours: apply the event as published (it names members by local id). One
            # no longer pending was applied here while the link was down.
            pending = self._pending.pop(envelope.number, None)
            if pending is not None:
                self.room.apply(pending.event)
        elif self._loaded:
            self.room.apply(envelope.event, envelope.origin)
        else:
            self.room.remember(envelope.event)


def _claims(event: RoomEvent) -> tuple[Claim | None, Claim | None]:
    """The name an event takes on the bus, and the one it gives up."""
    if not isinstance(event, RoomPresence):
        return None, None
    owner = event.owner
    if event.what == PresenceKind.JOINED:
        return Claim(name_key(event.name), owner), None
    if event.what == PresenceKind.LEFT:
        return None, Claim(name_key(event.name), owner)
    new, old = name_key(event.detail), name_key(event.name)
    return Claim(new, owner), (None if new == old else Claim(old, owner))
