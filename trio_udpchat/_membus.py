"""The bus of ``_bus``, in memory: several servers' cores joined in one process.

It keeps the promises a real bus keeps (one order, a capped history, names
held for an owner, presence that expires) and lets a test break them the way a
real one breaks: go down, come back empty, hold commands (a paused Redis), or
lose broadcasts to one server. Time comes in as an argument.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from ._bus import (
    BusCommand,
    BusPort,
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
from ._names import name_key


class MemoryBus:
    """A bus for the servers attached to it; call :meth:`run` to carry out their commands."""

    def __init__(self) -> None:
        self._epochs = 0
        self.epoch = self._new_epoch()
        self.seq = 0
        self.history: deque[tuple[int, bytes]] = deque()
        self.names: dict[str, tuple[str, float]] = {}  # name key -> (owner, expires)
        self.presence: dict[str, tuple[PresenceRecord, float]] = {}  # member -> (record, expires)
        self.ports: dict[str, BusPort] = {}
        self.up = True
        #: While held (a paused bus), commands wait here and nothing is answered.
        self.held = False
        self._backlog: list[tuple[BusPort, BusCommand]] = []
        #: Servers whose broadcasts are lost (at-most-once delivery).
        self.deaf: set[str] = set()

    def _new_epoch(self) -> str:
        self._epochs += 1
        return f"{self._epochs:016x}"

    def attach(self, port: BusPort, now: float) -> None:
        """Join a server to the bus (it is told the link is up, if the bus is)."""
        self.ports[port.server_id] = port
        if self.up:
            port.bus_connected(now)

    def detach(self, port: BusPort) -> None:
        """A server stops (crashes): it no longer hears or renews anything."""
        del self.ports[port.server_id]

    def run(self, now: float, after: Callable[[], None] = lambda: None) -> int:
        """Carry out every queued command, calling ``after`` after each server's
        turn (to pass datagrams on); returns how many were carried out."""
        done = 0
        for _ in range(100):  # bounded: a quiet room settles in a few rounds
            commands = [(p, c) for p in list(self.ports.values()) for c in p.bus_commands()]
            if not commands:
                break
            for port, command in commands:
                if not self.up:
                    continue  # a bus that is down loses what it is sent
                if self.held:
                    self._backlog.append((port, command))
                    continue
                self._execute(port, command, now)
                done += 1
                after()
        return done

    def fail(self, now: float) -> None:
        """The bus goes down: every server's link is lost."""
        self.up = False
        self._backlog.clear()
        for port in list(self.ports.values()):
            port.bus_lost(now)

    def restore(self, now: float, *, wiped: bool = False) -> None:
        """The bus is back (``wiped``: without its data, so in a new epoch)."""
        if wiped:
            self.epoch = self._new_epoch()
            self.seq = 0
            self.history.clear()
            self.names.clear()
            self.presence.clear()
        self.up = True
        for port in list(self.ports.values()):
            port.bus_connected(now)

    def resume(self, now: float) -> None:
        """A held bus carries out what waited, in order."""
        self.held = False
        backlog, self._backlog = self._backlog, []
        for port, command in backlog:
            if port.server_id in self.ports:
                self._execute(port, command, now)

    # -- the semantics of _bus ----------------------------------------------------------

    def _execute(self, port: BusPort, command: BusCommand, now: float) -> None:
        match command:
            case Publish():
                self._publish(port, command, now)
            case Fetch(after=after):
                entries = tuple((s, p) for s, p in self.history if s > after)
                port.bus_result(Fetched(command, self.epoch, entries), now)
            case Refresh(records=records, gone=gone, ttl=ttl):
                for member in gone:
                    self.presence.pop(member, None)
                for record in records:
                    self.presence[record.member] = (record, now + ttl)
                    held = self.names.get(name_key(record.name))
                    if held is None or held[0] == record.owner or held[1] <= now:
                        self.names[name_key(record.name)] = (record.owner, now + ttl)
                self.presence = {m: v for m, v in self.presence.items() if v[1] > now}
                live = tuple(record for record, _ in self.presence.values())
                port.bus_result(Refreshed(command, live), now)
            case Direct(server=server, payload=payload):
                target = self.ports.get(server)
                if target is not None and server not in self.deaf:
                    target.bus_direct(payload, now)

    def _publish(self, port: BusPort, command: Publish, now: float) -> None:
        claim, release = command.claim, command.release
        if claim is not None:
            held = self.names.get(claim.name_key)
            if held is not None and held[1] > now and held[0] != claim.owner:
                port.bus_result(Clashed(command, held[0]), now)
                return
            self.names[claim.name_key] = (claim.owner, now + command.ttl)
        if release is not None:
            held = self.names.get(release.name_key)
            if held is not None and held[0] == release.owner:
                del self.names[release.name_key]
        self.seq += 1
        self.history.append((self.seq, command.payload))
        while len(self.history) > command.keep:
            self.history.popleft()
        for server, target in list(self.ports.items()):
            if server not in self.deaf:
                target.bus_message(self.epoch, self.seq, command.payload, now)
        port.bus_result(Published(command, self.epoch, self.seq), now)
