"""Several server cores joined by the in-memory bus, and clients on each: a room
spanning servers, driven with explicit time and a lossless, instant network.

All servers answer at one address (as workers sharing a port with
SO_REUSEPORT do); which one a client's datagrams reach is the cluster's
``route``, and changing it is what the kernel does when the set of workers
changes. Every live server's datagrams reach their client.
"""

from __future__ import annotations

from dataclasses import replace

from tests.core_helpers import SERVER, drain, make_client, make_server
from trio_udpchat import Config
from trio_udpchat._client import ClientCore
from trio_udpchat._events import Address, Event, PresenceNoticed, RoomMessage, RoomNotice
from trio_udpchat._membus import MemoryBus
from trio_udpchat._server import ServerCore

_ROUNDS = 10_000

#: Quick, but with room for a round trip: the bus answers at once here.
#: Every client shares one IP address here, so hellos are not rate-limited.
BUS_CONFIG = Config(presence_refresh=20.0, presence_ttl=60.0, bus_timeout=1.0, hello_burst=1000)


def client_address(number: int) -> Address:
    """Where client ``number`` sends from."""
    return ("192.0.2.1", 41000 + number)


class Cluster:
    """``servers`` server cores named ``s0``, ``s1``, ... on one :class:`MemoryBus`."""

    def __init__(self, servers: int = 2, config: Config | None = None) -> None:
        self.config = config or BUS_CONFIG
        self.bus = MemoryBus()
        self.now = 0.0
        self.servers: list[ServerCore] = []
        self.clients: dict[Address, ClientCore] = {}
        self.route: dict[Address, int] = {}
        self.events: dict[Address, list[Event]] = {}
        self.operator_events: list[list[Event]] = []
        self.crashed: set[int] = set()
        for index in range(servers):
            self.add_server(index)

    def add_server(self, index: int) -> ServerCore:
        """Start server ``index`` (it reads the bus's history) and join it to the bus."""
        server = make_server(self.config, seed=100 + index, name=f"op{index}")
        server.join_bus(f"s{index}", f"host:{index}")
        self.servers.append(server)
        self.operator_events.append([])
        self.bus.attach(server, self.now)
        self.settle()
        return server

    def crash(self, index: int) -> None:
        """Server ``index`` dies: no goodbye, no more presence renewals."""
        self.crashed.add(index)
        self.bus.detach(self.servers[index])

    def join(self, number: int, name: str, server: int, token: int | None = None) -> ClientCore:
        """Client ``number`` called ``name`` connects through server ``server``."""
        address = client_address(number)
        tok = number + 1 if token is None else token
        client = make_client(replace(self.config), seed=500 + number, name=name, token=tok)
        self.clients[address] = client
        self.route[address] = server
        self.events[address] = []
        client.start(self.now)
        self.settle()
        assert client.state == "connected", f"{name} did not connect"
        return client

    def say(self, number: int, text: str) -> None:
        """Client ``number`` types ``text`` (not yet sent: call :meth:`settle`)."""
        self.clients[client_address(number)].send_text(text, self.now)

    def settle(self) -> None:
        """Pass datagrams and bus commands until nothing moves."""
        for _ in range(_ROUNDS):
            moved = self._exchange()
            moved += self.bus.run(self.now, after=self._pass_datagrams)
            self._collect()
            if not moved:
                return
        raise AssertionError("the cluster never goes quiet")

    def advance(self, until: float) -> None:
        """Fire every core's timers in time order up to ``until``, settling after each."""
        cores = [*self.servers, *self.clients.values()]
        for _ in range(_ROUNDS):
            timers = [t for t in (core.get_timer() for core in cores) if t is not None]
            due = min(timers, default=None)
            if due is None or due > until:
                break
            self.now = max(self.now, due)
            for core in cores:
                timer = core.get_timer()
                if timer is not None and timer <= self.now:
                    core.handle_timer(self.now)
            self.settle()
        else:
            raise AssertionError("too many timer firings")
        self.now = until
        self.settle()

    def _pass_datagrams(self) -> None:
        self._exchange()

    def _exchange(self) -> int:
        moved = 0
        for address, client in self.clients.items():
            for data, to in drain(client, self.now):
                assert to == SERVER
                if self.route[address] not in self.crashed:
                    self.servers[self.route[address]].receive_datagram(data, address, self.now)
                moved += 1
        for index, server in enumerate(self.servers):
            alive = index not in self.crashed
            for data, to in drain(server, self.now):
                # The route is the kernel's choice of server for what clients send;
                # any live server can still send to a client, from the shared port.
                receiver = self.clients.get(to)
                if receiver is not None and alive:
                    receiver.receive_datagram(data, SERVER, self.now)
                moved += 1
        return moved

    def _collect(self) -> None:
        for address, client in self.clients.items():
            self.events[address] += client.pop_events()
        for index, server in enumerate(self.servers):
            self.operator_events[index] += server.pop_events()

    # -- what people saw --------------------------------------------------------------

    def seen(self, number: int) -> list[tuple[str, str]]:
        """``(sender, text)`` of each live room message client ``number`` was shown."""
        return [
            (e.name, e.text)
            for e in self.events[client_address(number)]
            if isinstance(e, RoomMessage) and not e.history
        ]

    def replayed(self, number: int) -> list[tuple[str, str]]:
        """``(sender, text)`` of the history client ``number`` was shown on joining."""
        return [
            (e.name, e.text)
            for e in self.events[client_address(number)]
            if isinstance(e, RoomMessage) and e.history
        ]

    def notices(self, number: int) -> list[str]:
        """The room notices client ``number`` was shown."""
        return [e.text for e in self.events[client_address(number)] if isinstance(e, RoomNotice)]

    def presence(self, number: int) -> list[tuple[str, str, str]]:
        """``(what, name, detail)`` of the presence notices client ``number`` was shown."""
        return [
            (e.what, e.name, e.detail)
            for e in self.events[client_address(number)]
            if isinstance(e, PresenceNoticed)
        ]

    def clear(self) -> None:
        """Forget what was seen so far."""
        for events in [*self.events.values(), *self.operator_events]:
            events.clear()
