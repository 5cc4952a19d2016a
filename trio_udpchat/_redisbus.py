"""The Redis bus: carries out a server's bus commands against Redis 7+ or Valkey.

Trio I/O layer, no protocol rules: :class:`RedisBus` takes the commands the core
queued (:mod:`._bus` says what each one means), runs them in order (those
queued together as one pipeline, and publishes in a row as one script call
and one broadcast), as Lua scripts that do each step atomically,
and feeds back the results, the room's broadcasts, the :class:`~._bus.Direct`
payloads addressed to this server, and whether the link is up. It talks to Redis through ``coredis``
(AnyIO-based, so it runs under Trio as it is); ``coredis`` is an optional
dependency, imported only when a bus is made (``pip install 'trio-udpchat[redis]'``).

Keys and channels (``ROOM``, ``SERVER`` and ``NAME`` are percent-encoded, so a
``:`` in one cannot make two rooms share a key)::

    trio_udpchat:room:ROOM             channel  broadcasts, b"EPOCH" and then one
                                                b":SEQ:LEN:PAYLOAD" per message
    trio_udpchat:server:SERVER         channel  Direct payloads for one server
    trio_udpchat:room:ROOM:epoch       string   the room's epoch, 16 hex digits
    trio_udpchat:room:ROOM:seq         integer  the last sequence number given
    trio_udpchat:room:ROOM:history     stream   the newest ``keep`` entries, id SEQ-0,
                                                fields epoch and payload
    trio_udpchat:room:ROOM:presence    zset     member -> expiry (ms, Redis's own clock)
    trio_udpchat:room:ROOM:records     hash     member -> PresenceRecord as JSON
    trio_udpchat:room:ROOM:name:NAME   string   the owner holding a name, with a TTL

Nothing is persisted on purpose: a Redis that restarts empty gives the room a
new epoch at sequence 1, which the core notices and handles.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import trio

from ._bus import (
    BusCommand,
    BusPort,
    BusResult,
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
from ._udp import StartupError

if TYPE_CHECKING:
    from coredis import Redis
    from coredis.commands.script import Script
    from coredis.patterns.pubsub import PubSub

_T = TypeVar("_T")

#: Every key and channel starts with this, so the bus can share a Redis.
PREFIX: Final = "trio_udpchat"

# Shared by the publish and fetch scripts: a room with no epoch (new, or lost
# when Redis restarted empty) gets the caller's candidate, and its sequence
# numbers and history start over.
_ENSURE_EPOCH: Final = """
local function ensure_epoch(epoch_key, seq_key, history_key, candidate)
  local epoch = redis.call('GET', epoch_key)
  if not epoch then
    epoch = candidate
    redis.call('SET', epoch_key, epoch)
    redis.call('DEL', seq_key, history_key)
  end
  return epoch
end
"""

#: Publishes one or more messages, in order. KEYS: epoch, seq, history, then each
#: message's claim name and release name, where it has one.
#: ARGV: candidate epoch, keep, ttl ms, room channel, then per message:
#:       payload, has claim ('1'/''), claim owner, has release ('1'/''), release owner.
#: Returns one reply per message, {'ok', epoch, seq} or {'clash', owner}, and
#: broadcasts the ones that went as one message (see decode_broadcast_untrusted).
PUBLISH_LUA: Final = (
    _ENSURE_EPOCH
    + """
local epoch
local next_key = 4
local replies, parts = {}, {}
for i = 5, #ARGV, 5 do
  local payload, owner, released_by = ARGV[i], ARGV[i + 2], ARGV[i + 4]
  local claim_key, release_key
  if ARGV[i + 1] == '1' then claim_key = KEYS[next_key]; next_key = next_key + 1 end
  if ARGV[i + 3] == '1' then release_key = KEYS[next_key]; next_key = next_key + 1 end
  local holder = claim_key and redis.call('GET', claim_key)
  if holder and holder ~= owner then
    replies[#replies + 1] = {'clash', holder}
  else
    -- Release before claiming, so a claim of the released name itself (a change
    -- of case) keeps it held.
    if release_key and redis.call('GET', release_key) == released_by then
      redis.call('DEL', release_key)
    end
    if claim_key then redis.call('SET', claim_key, owner, 'PX', ARGV[3]) end
    epoch = epoch or ensure_epoch(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
    local seq = redis.call('INCR', KEYS[2])
    redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[2], seq .. '-0', 'epoch', epoch, 'payload', payload)
    parts[#parts + 1] = ':' .. seq .. ':' .. #payload .. ':' .. payload
    replies[#replies + 1] = {'ok', epoch, seq}
  end
end
if epoch then redis.call('PUBLISH', ARGV[4], epoch .. table.concat(parts)) end
return replies
"""
)

#: KEYS: epoch, seq, history. ARGV: candidate epoch, after (>= 0).
#: Returns {epoch, seq, payload, seq, payload, ...}, oldest first.
FETCH_LUA: Final = (
    _ENSURE_EPOCH
    + """
local out = {ensure_epoch(KEYS[1], KEYS[2], KEYS[3], ARGV[1])}
for _, entry in ipairs(redis.call('XRANGE', KEYS[3], '(' .. ARGV[2] .. '-0', '+')) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'payload' then
      out[#out + 1] = string.match(entry[1], '^%d+')
      out[#out + 1] = fields[i + 1]
    end
  end
end
return out
"""
)

#: KEYS: presence, records, then one name key per record.
#: ARGV: ttl ms, record count n, n x (member, record JSON, owner), then gone members.
#: Returns every live record's JSON.
REFRESH_LUA: Final = """
-- Expiry times come from Redis's clock, so the servers' clocks do not matter.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
for i = 1, n do
  local member, record, owner = ARGV[3 * i], ARGV[3 * i + 1], ARGV[3 * i + 2]
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), member)
  redis.call('HSET', KEYS[2], member, record)
  local holder = redis.call('GET', KEYS[2 + i])
  if (not holder) or holder == owner then redis.call('SET', KEYS[2 + i], owner, 'PX', ttl) end
end
for j = 3 * n + 3, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[j])
  redis.call('HDEL', KEYS[2], ARGV[j])
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
end
local out = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local record = redis.call('HGET', KEYS[2], member)
  if record then out[#out + 1] = record end
end
return out
"""

_SCHEMES: Final = ("redis", "rediss", "unix")


def room_channel(room: str) -> str:
    """The channel a room's broadcasts go out on (also the prefix of its keys)."""
    return f"{PREFIX}:room:{quote(room, safe='')}"


def server_channel(server: str) -> str:
    """The channel :class:`~._bus.Direct` payloads for ``server`` go out on."""
    return f"{PREFIX}:server:{quote(server, safe='')}"


def name_hold_key(room: str, key: str) -> str:
    """The key holding a (folded) name in ``room`` for its owner."""
    return f"{room_channel(room)}:name:{quote(key, safe='')}"


def redact(url: str) -> str:
    """``url`` without its password, for messages a user or a log may see."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def check_url(url: str) -> None:
    """Raise :class:`StartupError` (one line) unless ``url`` can name a Redis server."""
    shown = redact(url)
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise StartupError(f"bad bus URL {shown!r}: it must start redis://, rediss:// or unix://")
    if parts.scheme == "unix":
        if not parts.path:
            raise StartupError(f"bad bus URL {shown!r}: no socket path")
        return
    if not parts.hostname:
        raise StartupError(f"bad bus URL {shown!r}: no host")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError:
        raise StartupError(f"bad bus URL {shown!r}: the port must be a number 0-65535") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise StartupError(f"bad bus URL {shown!r}: the path must be a database number")


def _require_coredis() -> None:
    try:
        import coredis  # noqa: F401 - optional: only a bus needs it
    except ImportError:
        raise StartupError(
            "the Redis bus needs coredis: pip install 'trio-udpchat[redis]'"
        ) from None


def encode_record(record: PresenceRecord) -> str:
    """``record`` as the JSON object kept in the room's hash."""
    return json.dumps(dataclasses.asdict(record), separators=(",", ":"), sort_keys=True)


_RECORD_FIELDS: Final = frozenset(field.name for field in dataclasses.fields(PresenceRecord))


def decode_record_untrusted(data: bytes) -> PresenceRecord | None:
    """The record ``data`` holds, or ``None`` if it is not one (anyone can write to Redis)."""
    try:
        fields = json.loads(data)
    except ValueError:
        return None
    if (
        not isinstance(fields, dict)
        or fields.keys() != _RECORD_FIELDS
        or not all(isinstance(value, str) for value in fields.values())
    ):
        return None
    return PresenceRecord(**fields)


def decode_broadcast_untrusted(data: bytes) -> list[tuple[str, int, bytes]] | None:
    """The ``(epoch, seq, payload)`` of each message in a room broadcast, in order,
    or ``None`` if it is malformed.

    A broadcast is ``EPOCH`` and then, per message, ``:SEQ:LEN:PAYLOAD`` (decimal
    numbers; ``LEN`` bytes of payload, which may hold anything): the messages one
    script call published, in one pub/sub message.
    """
    head = data.find(b":")
    if head < 0:
        return None
    try:
        epoch = data[:head].decode("ascii")
    except UnicodeDecodeError:
        return None
    out = []
    find, end, at = data.find, len(data), head
    while at < end:
        seq_end = find(b":", at + 1, at + 2 + _MAX_DIGITS)
        size_end = find(b":", seq_end + 1, seq_end + 2 + _MAX_DIGITS) if seq_end > 0 else -1
        if size_end < 0 or data[at] != _COLON:
            return None
        seq, size = data[at + 1 : seq_end], data[seq_end + 1 : size_end]
        if not (seq.isdigit() and size.isdigit()):
            return None
        at = size_end + 1 + int(size)
        if at > end:
            return None
        out.append((epoch, int(seq), data[size_end + 1 : at]))
    return out or None


#: Digits a broadcast's SEQ or LEN may have (a 64-bit number has at most 20).
_MAX_DIGITS: Final = 20
_COLON: Final = ord(":")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, the members of groups, and their causes, outermost first."""
    if isinstance(exc, BaseExceptionGroup):
        return [inner for member in exc.exceptions for inner in _chain(member)]
    return [exc, *(_chain(exc.__cause__) if exc.__cause__ is not None else [])]


def _reason(exc: BaseException, timeout: float) -> str:
    """Why the link failed, in a few words (``Connection refused``)."""
    chain = _chain(exc)
    if any(isinstance(inner, trio.TooSlowError | TimeoutError) for inner in chain):
        return f"no answer within {timeout:g} s"
    for inner in reversed(chain):  # the deepest system error says it best
        if isinstance(inner, OSError) and inner.strerror:
            # "Error connecting to (...): Connection refused" says the address twice.
            return inner.strerror.rpartition(": ")[2]
    # Else the outermost words: "Connection lost while receiving response",
    # not the AnyIO stream error under them.
    return next((str(inner) for inner in chain if str(inner)), type(exc).__name__)


class CoreError(Exception):
    """The server's core, or its flush, raised when the bus called it.

    A bug there, not a bus problem: :meth:`RedisBus.run` lets it through
    (the original is its ``__cause__``) rather than call it a lost link.
    """


@contextmanager
def _calling_core() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        raise CoreError(f"the server failed on a call from the bus: {exc!r}") from exc


class RedisBus:
    """The link between one server's core (``port``) and a room on a Redis bus.

    ``flush`` is the server's flush, awaited after every call into ``port``;
    for broadcasts and Direct payloads, once after those that arrived together.
    Every Redis command must answer within ``timeout`` seconds, or the link is
    lost; an idle link is checked with a ``PING`` every ``timeout / 2``. After a
    loss it reconnects, waiting ``backoff[0]`` seconds, doubling up to
    ``backoff[1]``.

    Raises :class:`StartupError` at once if ``url`` is malformed or coredis is
    not installed; an unreachable Redis is not an error (see :meth:`run`).
    """

    def __init__(
        self,
        url: str,
        room: str,
        port: BusPort,
        flush: Callable[[], Awaitable[None]],
        timeout: float = 1.0,
        *,
        backoff: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        check_url(url)
        _require_coredis()
        self._url = url
        self._room = room
        self._port = port
        self._flush = flush
        self._timeout = timeout
        self._backoff = backoff
        self._room_channel = room_channel(room).encode()
        self._server_channel = server_channel(port.server_id).encode()
        self._up = False
        # Whether this session got as far as bus_connected: says "lost" or "cannot reach".
        self._reached = False
        # Whether this session's failure was noted already (see _note).
        self._noted = False
        self._poked = trio.Event()
        # Pub/sub messages of this session not yet given to the core: (channel, data).
        self._arrived: list[tuple[str | bytes, bytes]] = []
        self._arrival = trio.Event()
        self._last_reply = -math.inf
        # Cancelled (with a deadline) to bound the teardown of a failed session.
        self._session_scope = trio.CancelScope()
        #: Why the link is down, as one line; ``None`` while it is up.
        self.problem: str | None = "not connected yet"
        #: Broadcasts dropped because they were not ``EPOCH`` and ``:SEQ:LEN:PAYLOAD``s.
        self.malformed = 0

    @property
    def url(self) -> str:
        """The bus's URL, password hidden."""
        return redact(self._url)

    @property
    def connected(self) -> bool:
        """Whether the link is up (between ``bus_connected`` and ``bus_lost``)."""
        return self._up

    def poke(self) -> None:
        """The core may have queued commands: wake the task that carries them out.

        While the link is down they are taken and dropped at once: the core
        knows, and sends again what matters after ``bus_connected``.
        """
        if self._up:
            self._poked.set()
        else:
            self._port.bus_commands()

    async def run(
        self, *, task_status: trio.TaskStatus[str | None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep the link up until cancelled; never raises for a Redis problem.

        ``task_status.started(problem)`` comes once the first attempt to
        connect has finished: ``None`` if the link is up (``bus_connected``
        was called), else the line saying why not (``cannot reach the bus at
        redis://...: Connection refused``). Either way the bus keeps trying,
        so a server may start with its local room alone and join the others
        when Redis comes up.
        """
        delay = self._backoff[0]
        started = False

        def report() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started(self.problem)

        while True:
            with trio.CancelScope() as self._session_scope:
                # except* rather than except: a failure inside coredis's task
                # groups arrives as a group, maybe beside a Cancelled that must
                # go on up if the run itself is being cancelled.
                try:
                    await self._session(report)
                except* CoreError:
                    raise
                except* Exception as group:
                    self._note(group)
            was_up = self._up
            await self._lose()
            report()
            if was_up:
                delay = self._backoff[0]
            await trio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    def _note(self, exc: BaseException) -> None:
        if self._noted:
            return  # the first failure is the cause; the rest are its echoes
        self._noted = True
        verb = "lost the bus at" if self._reached else "cannot reach the bus at"
        self.problem = f"{verb} {self.url}: {_reason(exc, self._timeout)}"

    async def _lose(self) -> None:
        if self._up:
            self._up = False
            with _calling_core():
                self._port.bus_lost(trio.current_time())
                await self._flush()

    async def _fail(self, exc: BaseException) -> None:
        """A task of the session failed: tell the core now, and bound the teardown."""
        self._note(exc)
        await self._lose()
        self._session_scope.deadline = trio.current_time() + self._timeout

    async def _session(self, report: Callable[[], None]) -> None:
        """Connect, subscribe, and run the link's tasks until one of them fails."""
        from coredis import Redis  # optional: imported here, checked in __init__
        from coredis.retry import NoRetryPolicy

        self._reached = self._noted = False
        client: Redis[bytes] = Redis.from_url(
            self._url,
            decode_responses=False,
            # No retries: a publish must not be sent twice, and a failure must
            # reach the core as a lost link, not as a slow answer.
            retry_policy=NoRetryPolicy(),
            # A backstop only: _in_time(timeout) around each step fires first.
            connect_timeout=2 * self._timeout,
            stream_timeout=2 * self._timeout,
        )
        async with client:
            # Loaded on every connection: Redis may have restarted empty.
            scripts = [client.register_script(source) for source in _SCRIPTS]
            for script in scripts:
                await self._in_time(client.script_load(script.script))
            async with client.pubsub(
                channels=[self._room_channel, self._server_channel],
                ignore_subscribe_messages=True,
                retry_policy=None,
                subscription_timeout=self._timeout,
                # coredis's own keepalive on the subscribed connection (>= 1 s).
                max_idle_seconds=self._timeout,
            ) as pubsub:
                self._up = self._reached = True
                self._arrived, self._arrival = [], trio.Event()  # a past session's: stale
                self.problem = None
                self._last_reply = trio.current_time()
                with _calling_core():
                    self._port.bus_commands()  # queued while down: stale, dropped
                    self._port.bus_connected(trio.current_time())
                    await self._flush()
                report()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guarded, self._receive, pubsub)
                    nursery.start_soon(self._guarded, self._deliver)
                    nursery.start_soon(self._guarded, self._carry_out, client, scripts)
                    nursery.start_soon(self._guarded, self._keepalive, client)

    async def _guarded(self, task: Callable[..., Awaitable[None]], *args: object) -> None:
        try:
            await task(*args)
        except Exception as exc:
            if not isinstance(exc, CoreError):
                await self._fail(exc)
            raise

    async def _receive(self, pubsub: PubSub[bytes]) -> None:
        async for message in pubsub:
            channel, data = message["channel"], message["data"]
            if message["type"] == "message" and isinstance(data, bytes):
                self._arrived.append((channel, data))
                self._arrival.set()
        raise ConnectionError("the subscription ended")

    async def _deliver(self) -> None:
        """Give the core what ``_receive`` took, and flush: once per burst, not per message.

        A flush costs a pass over every busy session, and the broadcasts of a
        pipeline of publishes arrive in one read from Redis. coredis then hands
        them to ``_receive`` one per scheduler tick (through two memory streams),
        so this waits until a whole tick has passed with none taken (two
        checkpoints: every other task runs once per tick), or ``_MAX_BURST`` were.
        """
        while True:
            await self._arrival.wait()
            quiet = 0
            while quiet < 2 and len(self._arrived) < _MAX_BURST:
                seen = len(self._arrived)
                await trio.lowlevel.checkpoint()
                quiet = quiet + 1 if len(self._arrived) == seen else 0
            burst, self._arrived = self._arrived[:_MAX_BURST], self._arrived[_MAX_BURST:]
            if not self._arrived:
                self._arrival = trio.Event()
            now = trio.current_time()  # one reading: they arrived together
            with _calling_core():
                for channel, data in burst:
                    if channel == self._server_channel:
                        self._port.bus_direct(data, now)
                    elif (messages := decode_broadcast_untrusted(data)) is not None:
                        for epoch, seq, payload in messages:
                            self._port.bus_message(epoch, seq, payload, now)
                    else:
                        self.malformed += 1
                await self._flush()

    async def _carry_out(self, client: Redis[bytes], scripts: Sequence[Script[bytes]]) -> None:
        while True:
            await self._poked.wait()
            self._poked = trio.Event()
            with _calling_core():
                commands = self._port.bus_commands()
            changed = False
            # In order (the room's order is the order of publishes), a pipeline at
            # a time: one round trip for all the commands taken, and the broadcasts
            # of their publishes come back together (``_deliver`` flushes once for them).
            for start in range(0, len(commands), _PIPELINE):
                batch = commands[start : start + _PIPELINE]
                results = await self._in_time(self._execute_all(client, scripts, batch))
                self._last_reply = trio.current_time()
                for result in results:
                    if result is not None:
                        with _calling_core():
                            self._port.bus_result(result, self._last_reply)
                        # A Published answer changes nothing (the broadcast does): a
                        # flush for it would cost a pass over every busy session.
                        changed = changed or not isinstance(result, Published)
            if changed:
                with _calling_core():
                    await self._flush()

    async def _keepalive(self, client: Redis[bytes]) -> None:
        # Without traffic, a Redis that stopped answering (SIGSTOP, a dead
        # host behind an open socket) would go unnoticed.
        interval = self._timeout / 2
        while True:
            await trio.sleep_until(self._last_reply + interval)
            if trio.current_time() >= self._last_reply + interval:
                await self._in_time(client.ping())
                self._last_reply = trio.current_time()

    async def _in_time(self, step: Awaitable[_T]) -> _T:
        """Await ``step``, raising :exc:`trio.TooSlowError` if it takes over ``timeout``."""
        with trio.move_on_after(self._timeout) as scope:
            try:
                return await step
            except Exception as exc:
                # coredis turns the cancellation of a connection it is opening
                # into its ConnectionError: say what happened, a timeout.
                if scope.cancel_called:
                    raise trio.TooSlowError from exc
                raise
        raise trio.TooSlowError

    async def _execute_all(
        self, client: Redis[bytes], scripts: Sequence[Script[bytes]], commands: list[BusCommand]
    ) -> list[BusResult | None]:
        """Run ``commands`` in order as one pipeline; their results, in the same order.

        Publishes in a row are one call of the publish script: one command for
        Redis to run and one broadcast for every server to take in, whatever
        their number (each costs a server more in the client library and the
        scheduler than in the work the message itself needs).
        """
        from coredis.exceptions import NoScriptError

        calls = self._calls(commands)
        if len(calls) == 1:
            return await self._execute(client, scripts, *calls[0])
        async with client.pipeline(transaction=False, raise_on_error=False) as pipe:
            # evalsha rather than the Script objects: those make a pipeline ask
            # SCRIPT EXISTS first, a round trip more (the session loaded them).
            requests = [
                pipe.publish(call.channel, call.payload)
                if call.script is None
                else pipe.evalsha(scripts[call.script].sha, call.keys, call.args)
                for _, call in calls
            ]
        results: list[BusResult | None] = []
        for (taken, call), request in zip(calls, requests, strict=True):
            try:
                reply: object = await request
            except NoScriptError:
                # Redis lost the scripts (SCRIPT FLUSH): nothing ran, so run it
                # alone, which loads the script again. Those after it failed the same way.
                results += await self._execute(client, scripts, taken, call)
                continue
            results += _answers(taken, reply)
        return results

    async def _execute(
        self,
        client: Redis[bytes],
        scripts: Sequence[Script[bytes]],
        commands: list[BusCommand],
        call: _Call,
    ) -> list[BusResult | None]:
        if call.script is None:
            await client.publish(call.channel, call.payload)
            return [None]
        return _answers(commands, await scripts[call.script](call.keys, call.args))

    def _calls(self, commands: list[BusCommand]) -> list[tuple[list[BusCommand], _Call]]:
        """What Redis is asked to do for ``commands``, in order: one call per command,
        but one for each run of publishes (with the same keep and ttl)."""
        runs: list[list[BusCommand]] = []
        for command in commands:
            first = runs[-1][0] if runs else None
            if (
                isinstance(command, Publish)
                and isinstance(first, Publish)
                and (command.keep, command.ttl) == (first.keep, first.ttl)
            ):
                runs[-1].append(command)
            else:
                runs.append([command])
        return [(run, self._call(run)) for run in runs]

    def _call(self, run: list[BusCommand]) -> _Call:
        """What Redis is asked to do for ``run``: one command, or publishes in a row."""
        base = room_channel(self._room)
        history = [f"{base}:epoch", f"{base}:seq", f"{base}:history"]
        candidate = secrets.token_hex(8)
        args: list[str | bytes | int]
        match run[0]:
            case Publish(keep=keep, ttl=ttl):
                keys = list(history)  # then each claimed and released name
                args = [candidate, keep, _milliseconds(ttl), base]
                for command in run:
                    assert isinstance(command, Publish)  # _calls runs publishes only together
                    args.append(command.payload)
                    for claim in (command.claim, command.release):
                        if claim is None:
                            args += ["", ""]
                        else:
                            keys.append(name_hold_key(self._room, claim.name_key))
                            args += ["1", claim.owner]
                return _Call(_PUBLISH, keys, args)
            case Fetch(after=after):
                return _Call(_FETCH, history, [candidate, max(after, 0)])
            case Refresh() as command:
                keys = [f"{base}:presence", f"{base}:records"]
                args = [_milliseconds(command.ttl), len(command.records)]
                for record in command.records:
                    keys.append(name_hold_key(self._room, name_key(record.name)))
                    args += [record.member, encode_record(record), record.owner]
                args += command.gone
                return _Call(_REFRESH, keys, args)
            case Direct(server=server, payload=payload):
                return _Call(None, channel=server_channel(server), payload=payload)


@dataclasses.dataclass(frozen=True, slots=True)
class _Call:
    """One Redis command: a script (its index in ``_SCRIPTS``) with keys and
    arguments, or (``script`` None) a ``PUBLISH`` of ``payload`` on ``channel``."""

    script: int | None
    keys: list[str] = dataclasses.field(default_factory=list)
    args: list[str | bytes | int] = dataclasses.field(default_factory=list)
    channel: str = ""
    payload: bytes = b""


def _answers(commands: list[BusCommand], reply: object) -> list[BusResult | None]:
    """The results of ``commands``, one call's, from its ``reply`` (the publish script
    answers once per publish; the others once)."""
    if not isinstance(commands[0], Publish):
        return [_answer(commands[0], reply)]
    if not isinstance(reply, list) or len(reply) != len(commands):
        raise BadReplyError(f"publish of {len(commands)} answered {reply!r}")
    return [_answer(command, one) for command, one in zip(commands, reply, strict=True)]


def _answer(command: BusCommand, reply: object) -> BusResult | None:
    """The result of ``command`` from its script's ``reply``."""
    match command:
        case Publish():
            return _published(command, reply)
        case Fetch():
            return _fetched(command, reply)
        case Refresh():
            return _refreshed(command, reply)
    return None


#: Flush at least once per this many broadcasts, however fast they come.
_MAX_BURST: Final = 64
#: At most this many commands in one pipeline (what the core queues at once is
#: usually a few; a long queue goes in several round trips, each in time).
_PIPELINE: Final = 64
_PUBLISH, _FETCH, _REFRESH = 0, 1, 2
_SCRIPTS: Final = (PUBLISH_LUA, FETCH_LUA, REFRESH_LUA)


def _milliseconds(seconds: float) -> int:
    # PX takes a whole number of milliseconds, at least 1.
    return max(1, round(seconds * 1000))


class BadReplyError(Exception):
    """A script answered in a shape it never gives: not our Redis, or not our scripts."""


def _text(value: object) -> str:
    if not isinstance(value, bytes):
        raise BadReplyError(f"expected a string, got {value!r}")
    return value.decode("utf-8", "replace")


def _published(command: Publish, reply: object) -> Published | Clashed:
    match reply:
        case [b"ok", epoch, int(seq)]:
            return Published(command, _text(epoch), seq)
        case [b"clash", owner]:
            return Clashed(command, _text(owner))
    raise BadReplyError(f"publish answered {reply!r}")


def _fetched(command: Fetch, reply: object) -> Fetched:
    if not isinstance(reply, list) or len(reply) % 2 != 1:
        raise BadReplyError(f"fetch answered {reply!r}")
    entries = []
    for seq, payload in zip(reply[1::2], reply[2::2], strict=True):
        if not isinstance(payload, bytes):
            raise BadReplyError(f"fetch answered {reply!r}")
        entries.append((int(_text(seq)), payload))
    return Fetched(command, _text(reply[0]), tuple(entries))


def _refreshed(command: Refresh, reply: object) -> Refreshed:
    if not isinstance(reply, list):
        raise BadReplyError(f"refresh answered {reply!r}")
    records = (decode_record_untrusted(item) for item in reply if isinstance(item, bytes))
    return Refreshed(command, tuple(record for record in records if record is not None))
