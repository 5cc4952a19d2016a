"""Running a server or client: one nursery with a receive task, a timer task and input.

The protocol core decides everything; this layer only moves bytes and events.
After every input (a datagram, a line, a timer) it *flushes*: sends what the
core wants sent, hands its events to the terminal, and re-arms the timer.
"""

from __future__ import annotations

import logging
import math
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Protocol

import trio

from ._batch import MAX_BATCH, BatchSocket
from ._chat import Quit
from ._client import ClientCore
from ._commands import (
    COMMANDS,
    BadCommand,
    Command,
    Leave,
    Reply,
    Role,
    Send,
    ShowHelp,
    ShowPending,
    ShowStats,
    ShowWho,
    ToAll,
    ToOne,
    parse_line,
)
from ._config import Config
from ._crypto import SALT_SIZE, RoomKey, derive_key
from ._endpoint import Endpoint
from ._events import (
    Address,
    CommandRejected,
    Connecting,
    Event,
    HelpListed,
    KeyNeeded,
    Listening,
    NotEncrypted,
    PendingListed,
    RoomNotice,
    StatsListed,
)
from ._names import show_address
from ._redisbus import RedisBus
from ._render import stats_line
from ._server import ServerCore
from ._udp import StartupError, open_client_socket, open_server_socket

_logger = logging.getLogger("trio_udpchat")
#: A server that has not welcomed a client within this long is "connecting".
_SLOW_CONNECT = 1.0


class Terminal(Protocol):
    """Where lines come from and events go: the stdio terminal, or a fake in tests."""

    @property
    def interactive(self) -> bool:
        """A person types (told when a queue is full) rather than a script (made to wait)."""
        ...

    async def read_line(self) -> str | None:
        """The next line the user typed, without its newline; ``None`` at EOF."""
        ...

    def show(self, event: Event) -> None:
        """Present one event to the user."""
        ...


class _Driver:
    """Pumps one sans-IO core over one socket, a batch of datagrams at a time."""

    def __init__(
        self,
        sock: BatchSocket,
        core: Endpoint,
        terminal: Terminal,
        on_refused: Callable[[float], None] | None = None,
    ) -> None:
        self._sock = sock
        self._core = core
        self._terminal = terminal
        self._on_refused = on_refused
        self._timer_scope = trio.CancelScope()
        self._flushed = trio.Event()
        #: Called at the end of every flush (the bus adapter, to see if it has work).
        self.after_flush: Callable[[], None] | None = None
        #: Events this layer acts on itself instead of showing them.
        self.handlers: dict[type[Event], Callable[[Event], None]] = {}

    async def flush(self) -> None:
        """Send what the core has queued, show its events, and re-arm the timer."""
        # Sending no longer awaits per datagram, so say here what a cancelled
        # flush does: nothing (a goodbye with no time left is not sent).
        await trio.lowlevel.checkpoint_if_cancelled()
        self._take_events()
        out = self._core.datagrams_to_send(trio.current_time())
        sent = self._sock.send(out, self._send_failed)
        while sent < len(out):  # the kernel's buffer is full: wait for room, never drop
            await self._sock.wait_writable()
            sent = self._sock.send(out, self._send_failed, sent)
        # Sending may have produced events (a refused port), so take those too.
        self._take_events()
        timer = self._core.get_timer()
        self._timer_scope.deadline = math.inf if timer is None else timer
        if self.after_flush is not None:
            self.after_flush()
        self._flushed.set()
        self._flushed = trio.Event()

    def _take_events(self) -> None:
        for event in self._core.pop_events():
            handler = self.handlers.get(type(event))
            if handler is None:
                self._terminal.show(event)
            else:
                handler(event)

    async def wait_flushed(self) -> None:
        """Return after the next flush."""
        await self._flushed.wait()

    async def wait_until(self, done: Callable[[], bool]) -> None:
        """Return once ``done()`` holds; the core changes only in a flush, so check
        after each one."""
        while not done():
            await self.wait_flushed()

    async def linger(self, pending: Callable[[], list[str]], seconds: float) -> None:
        """After EOF: give what was typed up to ``seconds`` to be acknowledged."""
        with trio.move_on_after(seconds):
            await self.wait_until(lambda: not pending())

    def _send_failed(self, exc: OSError) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self._refused()
        else:
            self._core.stats[f"send_error:{exc.errno}"] += 1

    def _receive_failed(self, exc: OSError) -> None:
        # ICMP errors (port or host unreachable, ...) surface here; count, never crash.
        if isinstance(exc, ConnectionRefusedError):
            self._refused()
        else:
            self._core.stats[f"recv_error:{exc.errno}"] += 1

    def _refused(self) -> None:
        self._core.stats["refused"] += 1
        if self._on_refused is not None:
            self._on_refused(trio.current_time())

    async def receive_task(self, receive: Callable[[bytes, Address, float], None]) -> None:
        """Feed the datagrams that arrive to ``receive`` a batch at a time, flushing
        after each batch: one checkpoint per batch, not per datagram (see ``_batch``)."""
        now = 0.0

        def deliver(data: bytes, addr: Address) -> None:
            receive(data, addr, now)

        while True:
            now = trio.current_time()  # one reading per batch: they arrived together
            taken = self._sock.receive(deliver, self._receive_failed)
            if taken:
                await self.flush()
            if taken < MAX_BATCH:  # drained: sleep until more comes (a checkpoint)
                await self._sock.wait_readable()
            else:  # still busy: let the timer and input tasks run before the next batch
                await trio.lowlevel.checkpoint()

    async def input_loop(
        self,
        role: Role,
        act: Callable[[Command, float], bool],
        pending: Callable[[], list[str]],
        has_room: Callable[[], bool] = lambda: True,
    ) -> None:
        """Read lines until EOF (or ``act`` returns False): ``act`` does what each
        means; /pending, /help and bad commands are answered here.

        Scripted input waits while ``has_room()`` is false (backpressure), so a
        pipe of any length is sent without overflowing a queue.
        """
        while True:
            if not self._terminal.interactive:
                await self.wait_until(has_room)
            line = await self._terminal.read_line()
            if line is None:
                return
            match parse_line(line, role):
                case ShowPending():
                    self._terminal.show(PendingListed(tuple(pending())))
                case ShowStats():
                    self._terminal.show(StatsListed(self._core.stats_summary()))
                case ShowHelp():
                    listed = tuple(COMMANDS[role].values())
                    self._terminal.show(HelpListed(listed))
                case BadCommand(hint=hint):
                    self._terminal.show(CommandRejected(hint))
                case command:
                    if not act(command, trio.current_time()):
                        await self.flush()
                        return
            await self.flush()

    async def timer_task(self) -> None:
        """Sleep until the core's timer is due, let it act, repeat."""
        while True:
            with self._timer_scope:
                await trio.sleep_forever()
            self._timer_scope = trio.CancelScope()
            self._core.handle_timer(trio.current_time())
            await self.flush()


async def run_server(
    terminal: Terminal,
    host: str = "127.0.0.1",
    port: int = 3000,
    config: Config | None = None,
    *,
    operator: bool = True,
    name: str = "server",
    passphrase: bytes | None = None,
    allow_plain: bool = False,
    core: ServerCore | None = None,
    bus: str | None = None,
    room: str = "lobby",
    reuse_port: bool = False,
    label: str | None = None,
    task_status: trio.TaskStatus[Address] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve on ``host``/``port`` until the terminal reaches EOF or we are cancelled.

    The operator's lines answer whoever spoke last; without an ``operator``
    no input is read and only cancellation stops the server. With a
    ``passphrase`` the room is encrypted (its key derived once, under a fresh
    random salt) and plain-text peers are refused unless ``allow_plain``.
    ``task_status.started`` receives the bound address (useful with port 0).
    With ``reuse_port`` the port is shared with other servers (``--workers``).

    With a ``bus`` (``redis://...``) the room is the bus's room ``room``, shared
    with every server on it; others list this server's members as on ``label``
    (by default, the address it listens at). The bus is never waited on: if it
    cannot be reached, the room goes on here alone until it can.
    """
    if core is None:
        key = None
        if passphrase is not None:
            salt = secrets.token_bytes(SALT_SIZE)
            derived = await trio.to_thread.run_sync(
                derive_key, passphrase, salt, abandon_on_cancel=True
            )
            key = RoomKey(salt, derived)
        wall_offset = time.time() - trio.current_time()
        core = ServerCore(
            config, name=name, wall_offset=wall_offset, key=key, allow_plain=allow_plain
        )
    sock = await open_server_socket(host, port, reuse_port=reuse_port)
    with sock, BatchSocket(sock) as batch:
        address = sock.getsockname()
        terminal.show(Listening(address))
        if not core.encrypted:
            terminal.show(NotEncrypted())
        driver = _Driver(batch, core, terminal)
        try:
            async with trio.open_nursery() as nursery:
                if bus is not None:
                    where = label or "{}:{}".format(*show_address(address))
                    await _join_bus(nursery, core, driver, terminal, bus, room, where)
                nursery.start_soon(driver.receive_task, core.receive_datagram)
                nursery.start_soon(driver.timer_task)
                task_status.started(address)
                if not operator:
                    await trio.sleep_forever()
                act = partial(_operate, core)
                await driver.input_loop("server", act, core.pending, core.has_room)
                await driver.linger(core.pending, core.config.linger)
                nursery.cancel_scope.cancel()
        finally:
            # Acks held back go now (shielded, briefly, as the client's goodbye):
            # a client whose last message was shown must not think it lost.
            core.send_held_acks(trio.current_time())
            with trio.move_on_after(core.config.goodbye_timeout, shield=True):
                await driver.flush()
            _logger.info("on exit: %s", stats_line(core.stats_summary()))


async def run_client(
    terminal: Terminal,
    host: str = "127.0.0.1",
    port: int = 3000,
    config: Config | None = None,
    *,
    plain: bool = False,
    name: str = "",
    passphrase: bytes | None = None,
    task_status: trio.TaskStatus[ClientCore] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Talk to the server at ``host``/``port`` until EOF or cancellation.

    ``task_status.started`` receives the client's core (its ``stats``, ``state``).
    With a ``passphrase``, the client talks only to a server with the same one;
    the key is derived in a thread when the server gives its salt.

    On the way out, whatever was typed but still waits for a session gets a
    short grace period (``config.linger``), then the client says goodbye under
    a shielded timeout (``config.goodbye_timeout``) and closes the socket.
    """
    config = config or Config()
    sock, server = await open_client_socket(host, port)
    with sock, BatchSocket(sock) as batch:
        core = ClientCore(server, config, plain=plain, name=name, keyed=passphrase is not None)
        driver = _Driver(batch, core, terminal, on_refused=core.note_unreachable)
        try:
            async with trio.open_nursery() as nursery:
                if passphrase is not None:
                    derive = partial(_derive_for, core, driver, passphrase)
                    driver.handlers[KeyNeeded] = lambda event: nursery.start_soon(derive, event)
                nursery.start_soon(driver.receive_task, core.receive_datagram)
                nursery.start_soon(driver.timer_task)
                core.start(trio.current_time())
                await driver.flush()
                task_status.started(core)
                nursery.start_soon(_watch_refusal, core, driver, nursery.cancel_scope)
                nursery.start_soon(_say_connecting, core, driver, terminal)
                if passphrase is None:
                    nursery.start_soon(_say_not_encrypted, core, driver, terminal)
                await driver.input_loop("client", partial(_chat, core), core.pending, core.has_room)
                await driver.linger(core.pending, config.linger)
                nursery.cancel_scope.cancel()
        finally:
            # Summed up before close() ends the session, so the RTT is still there.
            _logger.info("on exit: %s", stats_line(core.stats_summary()))
            core.close(trio.current_time())
            with trio.move_on_after(config.goodbye_timeout, shield=True):
                await driver.flush()
    if core.refusal is not None:
        raise StartupError(core.refusal)


async def _join_bus(
    nursery: trio.Nursery,
    core: ServerCore,
    driver: _Driver,
    terminal: Terminal,
    url: str,
    room: str,
    label: str,
) -> None:
    """Share the room through the Redis bus at ``url``; say so, or why not yet."""
    link = core.join_bus(secrets.token_hex(8), label)
    bus = RedisBus(url, room, core, driver.flush, core.config.bus_timeout)

    def poke() -> None:
        if link.has_commands:
            bus.poke()

    driver.after_flush = poke
    problem = await nursery.start(bus.run)
    if problem is None:
        terminal.show(RoomNotice(f"sharing the room {room!r} on {bus.url} as {label}"))
    else:
        terminal.show(RoomNotice(f"{problem}; this server's room goes on alone until then"))


async def _derive_for(core: ClientCore, driver: _Driver, passphrase: bytes, event: Event) -> None:
    """Derive the room key for the salt the server gave (slow, so in a thread)."""
    assert isinstance(event, KeyNeeded)
    key = await trio.to_thread.run_sync(derive_key, passphrase, event.salt, abandon_on_cancel=True)
    core.provide_key(event.salt, key, trio.current_time())
    await driver.flush()


async def _say_connecting(core: ClientCore, driver: _Driver, terminal: Terminal) -> None:
    """Say "connecting" only if the server has not welcomed us within a second: a
    prompt handshake (two round trips) leaves the classic transcript untouched."""
    with trio.move_on_after(_SLOW_CONNECT):
        await driver.wait_until(lambda: core.state == "connected" or core.plain)
        return
    terminal.show(Connecting(core.server))


async def _say_not_encrypted(core: ClientCore, driver: _Driver, terminal: Terminal) -> None:
    """Say once that the chat is not encrypted: when it starts (in the room, or at
    once in plain mode), so a refusal stays the only thing said."""
    await driver.wait_until(lambda: core.plain or bool(core.current_name))
    terminal.show(NotEncrypted())


async def _watch_refusal(core: ClientCore, driver: _Driver, scope: trio.CancelScope) -> None:
    """Stop the client once the server turns it away for good (the room is full)."""
    await driver.wait_until(lambda: core.refusal is not None)
    scope.cancel()


def _operate(core: ServerCore, command: Command, now: float) -> bool:
    """Do what the operator typed."""
    match command:
        case Reply(text=text):
            core.reply(text, now)
        case ToAll(text=text):
            core.say_all(text, now)
        case ToOne(name=name, text=text):
            core.say_to(name, text, now)
        case ShowWho():
            core.who(now)
    return True


def _chat(core: ClientCore, command: Command, now: float) -> bool:
    """Do what the client's user typed; ``False`` after /quit."""
    match command:
        case Send(message=message, text=text):
            if core.plain:
                core.send_text(text, now)
            else:
                core.send(message, text, now)
        case Leave(reason=reason):
            if not core.plain:
                core.send(Quit(reason), f"/quit {reason}".strip(), now)
            return False
    return True


async def run_until_signalled(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main``; SIGINT (CTRL+C) or SIGTERM cancels it, which is a clean exit."""
    async with trio.open_nursery() as nursery:

        async def watch_signals() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()

        nursery.start_soon(watch_signals)
        await main()
        nursery.cancel_scope.cancel()
