"""The Redis bus against a real, private redis-server (see ``tests/redis_server.py``).

Real time, not the autojump clock: Redis is real I/O. Each test runs under
``trio.fail_after`` and waits on conditions, never on sleeps.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from tests.redis_server import RedisServer, redis_executable
from trio_udpchat._bus import (
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
from trio_udpchat._redisbus import (
    CoreError,
    RedisBus,
    decode_broadcast_untrusted,
    decode_record_untrusted,
    encode_record,
    redact,
    room_channel,
)
from trio_udpchat._udp import StartupError

#: Small, so losses are noticed fast; loopback answers in well under 1 ms.
TIMEOUT = 0.5
#: Scheduling slack on a busy 2-core machine, on top of a timeout.
MARGIN = 0.5

redis = pytest.mark.redis


class FakePort:
    """A server core in miniature: records what the bus tells it, queues what it is given."""

    def __init__(self, server_id: str) -> None:
        self._server_id = server_id
        self.queue: list[BusCommand] = []
        self.log: list[str] = []
        self.connected = 0
        self.lost = 0
        self.messages: list[tuple[str, int, bytes]] = []
        self.directs: list[bytes] = []
        self.results: list[BusResult] = []
        self._changed = trio.Event()

    @property
    def server_id(self) -> str:
        return self._server_id

    def _record(self, what: str) -> None:
        self.log.append(what)
        self._changed.set()
        self._changed = trio.Event()

    def bus_commands(self) -> list[BusCommand]:
        taken, self.queue = self.queue, []
        return taken

    def bus_connected(self, now: float) -> None:
        self.connected += 1
        self._record("connected")

    def bus_lost(self, now: float) -> None:
        self.lost += 1
        self._record("lost")

    def bus_message(self, epoch: str, seq: int, payload: bytes, now: float) -> None:
        self.messages.append((epoch, seq, payload))
        self._record("message")

    def bus_direct(self, payload: bytes, now: float) -> None:
        self.directs.append(payload)
        self._record("direct")

    def bus_result(self, result: BusResult, now: float) -> None:
        self.results.append(result)
        self._record("result")

    async def flush(self) -> None:
        self._record("flush")

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()


class Server:
    """A fake port and the bus driving it."""

    def __init__(self, port: FakePort, bus: RedisBus, started: str | None) -> None:
        self.port = port
        self.bus = bus
        #: What ``bus.run`` passed to ``task_status.started``.
        self.started = started

    async def ask(self, command: BusCommand) -> BusResult:
        """Queue ``command``, poke the bus, and return its result."""
        before = len(self.port.results)
        self.send(command)
        await self.port.wait_until(lambda: len(self.port.results) > before)
        return self.port.results[before]

    def send(self, *commands: BusCommand) -> None:
        self.port.queue += commands
        self.bus.poke()


@asynccontextmanager
async def running(url: str, server_id: str, room: str = "lobby") -> AsyncIterator[Server]:
    """A bus for ``server_id`` in ``room``, connected (or not: see ``started``)."""
    port = FakePort(server_id)
    bus = RedisBus(url, room, port, port.flush, TIMEOUT, backoff=(0.05, 0.2))
    async with trio.open_nursery() as nursery:
        yield Server(port, bus, await nursery.start(bus.run))
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def two_servers(url: str) -> AsyncIterator[tuple[Server, Server]]:
    async with running(url, "A") as a, running(url, "B") as b:
        yield a, b


@asynccontextmanager
async def with_client(url: str) -> AsyncIterator[tuple[Server, Any]]:
    """Server ``A`` on the bus, and a plain coredis client of the same Redis."""
    import coredis

    async with running(url, "A") as a, coredis.Redis.from_url(url) as client:
        yield a, client


def _published(result: BusResult) -> Published:
    assert isinstance(result, Published), result
    return result


@redis
async def test_connects_and_flushes(redis_server: RedisServer) -> None:
    with trio.fail_after(5):
        async with running(redis_server.url, "A") as a:
            assert a.started is None
            assert a.bus.connected
            assert a.bus.problem is None
            assert a.port.log == ["connected", "flush"]


@redis
async def test_publishes_from_two_servers_reach_both_in_one_order(
    redis_server: RedisServer,
) -> None:
    # Binary payloads, with the framing's own ':' in them.
    payloads = {name: [f"{name}{i}:".encode() + b"\x00\xff:" for i in range(20)] for name in "AB"}
    with trio.fail_after(5):
        async with two_servers(redis_server.url) as (a, b):
            a.send(*(Publish(p) for p in payloads["A"]))
            b.send(*(Publish(p) for p in payloads["B"]))
            await a.port.wait_until(lambda: len(a.port.messages) == 40)
            await b.port.wait_until(lambda: len(b.port.messages) == 40)
    assert a.port.messages == b.port.messages
    epochs = {epoch for epoch, _, _ in a.port.messages}
    assert len(epochs) == 1
    assert len(epochs.pop()) == 16
    assert [seq for _, seq, _ in a.port.messages] == list(range(1, 41))
    for server, name in ((a, "A"), (b, "B")):
        # Each server's own payloads keep the order it published them in...
        mine = [p for _, _, p in server.port.messages if p.startswith(name.encode())]
        assert mine == payloads[name]
        # ...and each Published names the seq its broadcast carried.
        by_seq = {seq: payload for _, seq, payload in server.port.messages}
        results = [_published(r) for r in server.port.results]
        assert [by_seq[r.seq] for r in results] == [r.command.payload for r in results]


@redis
async def test_fetch_returns_the_kept_history_after_a_seq(redis_server: RedisServer) -> None:
    with trio.fail_after(5):
        async with running(redis_server.url, "A") as a:
            epoch = ""
            for i in range(1, 9):
                epoch = _published(await a.ask(Publish(b"m%d" % i, keep=5))).epoch
            everything = await a.ask(Fetch(0))
            after_six = await a.ask(Fetch(6))
            nothing = await a.ask(Fetch(8))
    assert everything == Fetched(Fetch(0), epoch, tuple((i, b"m%d" % i) for i in range(4, 9)))
    assert after_six == Fetched(Fetch(6), epoch, ((7, b"m7"), (8, b"m8")))
    assert nothing == Fetched(Fetch(8), epoch, ())


@redis
async def test_fetch_in_a_new_room_starts_its_epoch(redis_server: RedisServer) -> None:
    with trio.fail_after(5):
        async with running(redis_server.url, "A") as a:
            fetched = await a.ask(Fetch(0))
            published = _published(await a.ask(Publish(b"first")))
    assert isinstance(fetched, Fetched)
    assert fetched.entries == ()
    assert (published.epoch, published.seq) == (fetched.epoch, 1)


@redis
async def test_a_clash_publishes_nothing(redis_server: RedisServer) -> None:
    with trio.fail_after(5):
        async with two_servers(redis_server.url) as (a, b):
            await a.ask(Publish(b"alice joins", claim=Claim("alice", "A/1")))
            clash = Publish(b"another alice joins", claim=Claim("alice", "B/7"))
            assert await b.ask(clash) == Clashed(clash, "A/1")
            # The holder itself may claim its name again.
            assert _published(await a.ask(Publish(b"again", claim=Claim("alice", "A/1")))).seq == 2
            await b.port.wait_until(lambda: len(b.port.messages) == 2)
            history = await b.ask(Fetch(0))
    assert [payload for _, _, payload in b.port.messages] == [b"alice joins", b"again"]
    assert isinstance(history, Fetched)
    assert [payload for _, payload in history.entries] == [b"alice joins", b"again"]


@redis
async def test_release_frees_a_name_for_its_owner_only(redis_server: RedisServer) -> None:
    with trio.fail_after(5):
        async with two_servers(redis_server.url) as (a, b):
            await a.ask(Publish(b"alice joins", claim=Claim("alice", "A/1")))
            # Not the owner: the release is ignored, the message still goes out.
            _published(await b.ask(Publish(b"x", release=Claim("alice", "B/7"))))
            taken = Publish(b"alice?", claim=Claim("alice", "B/7"))
            assert await b.ask(taken) == Clashed(taken, "A/1")
            # Renaming within the same key (a change of case) keeps it held.
            recase = Publish(b"Alice", claim=Claim("alice", "A/1"), release=Claim("alice", "A/1"))
            _published(await a.ask(recase))
            assert await b.ask(taken) == Clashed(taken, "A/1")
            # The owner renames to bob: alice is free.
            rename = Publish(
                b"alice is bob", claim=Claim("bob", "A/1"), release=Claim("alice", "A/1")
            )
            _published(await a.ask(rename))
            _published(await b.ask(taken))


def _record(server: str, local: int, name: str) -> PresenceRecord:
    member = f"{server}/{local}"
    return PresenceRecord(
        server=server, label=f"srv-{server}", member=member, name=name, owner=member
    )


@redis
async def test_refresh_lists_every_server_and_prunes(redis_server: RedisServer) -> None:
    alice, bob, brief = _record("A", 1, "Alice"), _record("B", 1, "Bob"), _record("A", 2, "Eve")
    with trio.fail_after(5):
        async with two_servers(redis_server.url) as (a, b):
            await a.ask(Refresh((alice,)))
            result = await b.ask(Refresh((bob,)))
            assert isinstance(result, Refreshed)
            assert set(result.records) == {alice, bob}
            # A refreshed record holds its name for its owner ("Bob" folds to "bob").
            clash = Publish(b"a bob", claim=Claim("bob", "A/9"))
            assert await a.ask(clash) == Clashed(clash, "B/1")
            # A record whose time ran out is dropped by the next refresh: Redis's
            # clock decides, so ask until 1 ms has passed there (a few round trips).
            await a.ask(Refresh((brief,), ttl=0.001))
            while True:
                result = await b.ask(Refresh((bob,)))
                assert isinstance(result, Refreshed)
                if brief not in result.records:
                    break
            assert set(result.records) == {alice, bob}
            # A gone member is forgotten at once.
            result = await a.ask(Refresh((), gone=(alice.member,)))
    assert isinstance(result, Refreshed)
    assert result.records == (bob,)


@redis
async def test_direct_reaches_the_addressed_server_only(redis_server: RedisServer) -> None:
    with trio.fail_after(5):
        async with two_servers(redis_server.url) as (a, b):
            a.send(Direct("B", b"psst\x00:"))
            await b.port.wait_until(lambda: b.port.directs == [b"psst\x00:"])
            # Anything meant for A would have come before this, on the same connection.
            b.send(Direct("A", b"marker"))
            await a.port.wait_until(lambda: bool(a.port.directs))
    assert a.port.directs == [b"marker"]
    assert a.port.messages == b.port.messages == []


@redis
async def test_commands_taken_together_are_answered_in_order(redis_server: RedisServer) -> None:
    # One poke, every kind of command: they go out as one pipeline.
    alice = _record("A", 1, "Alice")
    first, clash = (
        Publish(b"one", claim=Claim("bob", "A/2")),
        Publish(b"x", claim=Claim("bob", "A/3")),
    )
    second, fetch, refresh = Publish(b"two"), Fetch(0), Refresh((alice,))
    with trio.fail_after(5):
        async with two_servers(redis_server.url) as (a, b):
            a.send(first, clash, Direct("B", b"psst"), second, fetch, refresh)
            await a.port.wait_until(lambda: len(a.port.results) == 5)
            await b.port.wait_until(lambda: b.port.directs == [b"psst"])
    one, clashed, two, fetched, refreshed = a.port.results
    assert (_published(one).command, _published(one).seq) == (first, 1)
    assert clashed == Clashed(clash, "A/2")
    assert (_published(two).command, _published(two).seq) == (second, 2)
    assert fetched == Fetched(fetch, _published(one).epoch, ((1, b"one"), (2, b"two")))
    assert refreshed == Refreshed(refresh, (alice,))
    assert a.port.lost == 0


@redis
async def test_publishes_in_a_row_go_as_one_broadcast_in_order(redis_server: RedisServer) -> None:
    import coredis

    with trio.fail_after(5):
        async with (
            coredis.Redis.from_url(redis_server.url) as listener,
            listener.pubsub(channels=[room_channel("lobby")]) as pubsub,
            two_servers(redis_server.url) as (a, b),
        ):
            clash = Publish(b"no", claim=Claim("bob", "A/3"))
            a.send(Publish(b"1", claim=Claim("bob", "A/2")), clash, Publish(b"2"), Publish(b"3"))
            await b.port.wait_until(lambda: len(b.port.messages) == 3)
            raw = []
            async for message in pubsub:
                if message["type"] == "message":
                    raw.append(message["data"])
                    break
    epoch = _published(a.port.results[0]).epoch
    assert b.port.messages == [(epoch, 1, b"1"), (epoch, 2, b"2"), (epoch, 3, b"3")]
    assert a.port.messages == b.port.messages
    assert a.port.results[1] == Clashed(clash, "A/2")
    assert [_published(r).seq for r in (a.port.results[0], *a.port.results[2:])] == [1, 2, 3]
    assert raw == [f"{epoch}:1:1:1:2:1:2:3:1:3".encode()]  # one broadcast for the three


@redis
async def test_scripts_flushed_from_redis_are_loaded_again(redis_server: RedisServer) -> None:
    with trio.fail_after(5):
        async with with_client(redis_server.url) as (a, admin):
            await admin.script_flush()
            a.send(Publish(b"one"), Publish(b"two"), Fetch(0))  # a pipeline
            await a.port.wait_until(lambda: len(a.port.results) == 3)
            await admin.script_flush()
            three = _published(await a.ask(Publish(b"three")))  # alone
    one, two, fetched = a.port.results[:3]
    assert (_published(one).seq, _published(two).seq, three.seq) == (1, 2, 3)
    assert isinstance(fetched, Fetched)
    assert [payload for _, payload in fetched.entries] == [b"one", b"two"]
    assert a.port.lost == 0


#: Publishes ARGV[2..] on KEYS[1], each as a broadcast of its own of epoch
#: ARGV[1]: one command, so Redis writes them to a subscriber together.
BURST_LUA = """
for i = 2, #ARGV do
  redis.call('PUBLISH', KEYS[1], ARGV[1] .. ':' .. (i - 1) .. ':' .. #ARGV[i] .. ':' .. ARGV[i])
end
"""


def _runs_between_flushes(log: list[str]) -> list[int]:
    """How many messages came before each flush."""
    runs, count = [], 0
    for what in log:
        if what == "message":
            count += 1
        elif what == "flush":
            runs.append(count)
            count = 0
    return runs


@redis
async def test_broadcasts_arriving_together_get_one_flush(redis_server: RedisServer) -> None:
    with trio.fail_after(5):
        async with with_client(redis_server.url) as (a, intruder):
            start = len(a.port.log)
            await intruder.eval(BURST_LUA, [room_channel("lobby")], ["e", "a", "b", "c"])
            await a.port.wait_until(lambda: len(a.port.messages) == 3 and a.port.log[-1] == "flush")
            assert a.port.log[start:] == ["message"] * 3 + ["flush"]
            # However many come at once, a flush follows at most every 64.
            start = len(a.port.log)
            await intruder.eval(BURST_LUA, [room_channel("lobby")], ["e", *["m"] * 150])
            await a.port.wait_until(
                lambda: len(a.port.messages) == 153 and a.port.log[-1] == "flush"
            )
    runs = _runs_between_flushes(a.port.log[start:])
    assert sum(runs) == 150
    assert max(runs) <= 64


@redis
async def test_sigkill_loses_the_link_and_a_restart_starts_a_new_epoch(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(10):
        async with running(redis_server.url, "A") as a:
            old = _published(await a.ask(Publish(b"before")))
            _published(await a.ask(Publish(b"before, again")))
            killed = trio.current_time()
            redis_server.kill()
            await a.port.wait_until(lambda: a.port.lost == 1)
            assert trio.current_time() - killed < TIMEOUT + MARGIN
            assert not a.bus.connected
            assert a.bus.problem is not None
            assert a.bus.problem.startswith(f"lost the bus at {redis_server.url}: ")
            redis_server.restart()
            await a.port.wait_until(lambda: a.port.connected == 2)
            new = _published(await a.ask(Publish(b"after")))
    assert a.port.lost == 1
    assert new.epoch != old.epoch
    assert new.seq == 1
    assert a.port.log.index("lost") + 1 == a.port.log.index("flush", a.port.log.index("lost"))


@redis
async def test_sigstop_makes_a_pending_publish_lose_the_link(redis_server: RedisServer) -> None:
    with trio.fail_after(10):
        async with running(redis_server.url, "A") as a:
            first = _published(await a.ask(Publish(b"first")))
            redis_server.pause()
            stopped = trio.current_time()
            a.send(Publish(b"into the void"))
            await a.port.wait_until(lambda: a.port.lost == 1)
            assert trio.current_time() - stopped < TIMEOUT + MARGIN
            assert len(a.port.results) == 1
            assert a.bus.problem == f"lost the bus at {redis_server.url}: no answer within 0.5 s"
            redis_server.resume()
            await a.port.wait_until(lambda: a.port.connected == 2)
            after = _published(await a.ask(Publish(b"after")))
    # Redis kept its data: the same epoch goes on (the lost publish may or may
    # not have run once Redis woke; the core fills such gaps with Fetch).
    assert after.epoch == first.epoch
    assert after.seq in (2, 3)


@redis
async def test_an_idle_link_notices_a_stopped_redis(redis_server: RedisServer) -> None:
    with trio.fail_after(10):
        async with running(redis_server.url, "A") as a:
            redis_server.pause()
            stopped = trio.current_time()
            await a.port.wait_until(lambda: a.port.lost == 1)
            # A PING every TIMEOUT/2, each given TIMEOUT to answer.
            assert trio.current_time() - stopped < 1.5 * TIMEOUT + MARGIN
            redis_server.resume()
            await a.port.wait_until(lambda: a.port.connected == 2)


@redis
async def test_cancelling_run_with_redis_stopped_returns_promptly(
    redis_server: RedisServer,
) -> None:
    with trio.fail_after(10):
        async with running(redis_server.url, "A") as a:
            _published(await a.ask(Publish(b"first")))
            redis_server.pause()
            a.send(Publish(b"hangs"))
            stopped = trio.current_time()
        # Leaving ``running`` cancelled the bus's run and waited for it.
        assert trio.current_time() - stopped < MARGIN
    assert a.port.lost == 0  # shutting down is not losing the link


@redis
async def test_commands_taken_while_down_are_dropped(redis_server: RedisServer) -> None:
    with trio.fail_after(10):
        async with running(redis_server.url, "A") as a:
            redis_server.kill()
            await a.port.wait_until(lambda: a.port.lost == 1)
            a.send(Publish(b"while down"), Fetch(0))
            assert a.port.queue == []
            redis_server.restart()
            await a.port.wait_until(lambda: a.port.connected == 2)
            fetched = await a.ask(Fetch(0))
    assert isinstance(fetched, Fetched)
    assert fetched.entries == ()
    assert a.port.results == [fetched]


@redis
async def test_an_unreachable_bus_at_start_is_retried(redis_server: RedisServer) -> None:
    redis_server.kill()
    with trio.fail_after(10):
        async with running(redis_server.url, "A") as a:
            assert a.started == (f"cannot reach the bus at {redis_server.url}: Connection refused")
            assert a.port.log == []
            redis_server.restart()
            await a.port.wait_until(lambda: a.port.connected == 1)
            _published(await a.ask(Publish(b"hello")))
    assert a.port.lost == 0


@redis
async def test_rooms_do_not_share_keys_or_broadcasts(redis_server: RedisServer) -> None:
    with trio.fail_after(5):
        async with (
            running(redis_server.url, "A", "a") as a,
            running(redis_server.url, "B", "a:name") as b,
        ):
            await a.ask(Publish(b"x", claim=Claim("epoch", "A/1")))
            published = _published(await b.ask(Publish(b"y")))
            await b.port.wait_until(lambda: bool(b.port.messages))
    assert published.seq == 1
    assert b.port.messages == [(published.epoch, 1, b"y")]
    assert [payload for _, _, payload in a.port.messages] == [b"x"]


@redis
async def test_a_malformed_broadcast_is_counted_and_dropped(redis_server: RedisServer) -> None:
    import coredis

    with trio.fail_after(5):
        async with running(redis_server.url, "A") as a:
            async with coredis.Redis.from_url(redis_server.url) as intruder:
                await intruder.publish(room_channel("lobby"), b"no framing here")
            published = _published(await a.ask(Publish(b"real")))
            await a.port.wait_until(lambda: bool(a.port.messages))
    assert a.port.messages == [(published.epoch, published.seq, b"real")]
    assert a.bus.malformed == 1


class BrokenPort(FakePort):
    """A core with a bug: a broadcast makes it raise."""

    def bus_message(self, epoch: str, seq: int, payload: bytes, now: float) -> None:
        raise RuntimeError("core bug")


@redis
async def test_a_bug_in_the_core_is_not_taken_for_a_lost_link(redis_server: RedisServer) -> None:
    port = BrokenPort("A")
    bus = RedisBus(redis_server.url, "lobby", port, port.flush, TIMEOUT)

    async def publish_once() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(bus.run)
            port.queue.append(Publish(b"boom"))
            bus.poke()

    with trio.fail_after(5), pytest.raises(ExceptionGroup) as caught:
        await publish_once()
    assert caught.group_contains(CoreError, match=r"RuntimeError\('core bug'\)", depth=None)
    assert port.lost == 0


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://localhost", "it must start redis://, rediss:// or unix://"),
        ("localhost:6379", "it must start redis://, rediss:// or unix://"),
        ("redis://", "no host"),
        ("redis://localhost:port", "the port must be a number 0-65535"),
        ("redis://localhost:99999", "the port must be a number 0-65535"),
        ("redis://localhost/zero", "the path must be a database number"),
        ("unix://", "no socket path"),
    ],
)
def test_a_malformed_url_is_a_startup_error(url: str, problem: str) -> None:
    with pytest.raises(StartupError) as caught:
        RedisBus(url, "lobby", FakePort("A"), FakePort("A").flush)
    assert str(caught.value) == f"bad bus URL {url!r}: {problem}"


def test_without_coredis_the_bus_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "coredis", None)  # import coredis: ImportError
    with pytest.raises(StartupError, match=r"pip install 'trio-udpchat\[redis\]'"):
        RedisBus("redis://localhost", "lobby", FakePort("A"), FakePort("A").flush)


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)]
)
def test_a_missing_redis_server_skips_but_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install redis-server"):
        redis_executable()


def test_a_password_is_never_shown() -> None:
    assert redact("redis://user:secret@host:1/0") == "redis://user:***@host:1/0"
    assert redact("redis://:secret@host") == "redis://:***@host"
    assert redact("redis://host:1/0") == "redis://host:1/0"
    with pytest.raises(StartupError, match=r"redis://:\*\*\*@host:x") as caught:
        RedisBus("redis://:secret@host:x", "lobby", FakePort("A"), FakePort("A").flush)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "decoded"),
    [
        (b"0123456789abcdef:1:0:", [("0123456789abcdef", 1, b"")]),
        (b"e:42:4:a:b\x00", [("e", 42, b"a:b\x00")]),
        (b"e:7:2:hi:8:0::9:3:a:b", [("e", 7, b"hi"), ("e", 8, b""), ("e", 9, b"a:b")]),
        (b"e:x:1:p", None),
        (b"e:-1:1:p", None),
        (b"e:1:p", None),  # no length
        (b"e:1:2:p", None),  # a length past the end
        (b"e:1:0:p", None),  # a byte left over after the last message
        (b"e:1:1:pq:2:1:r", None),  # ... or before the next
        (b"e:1", None),
        (b"e:", None),
        (b"e", None),
        (b"e:" + b"1" * 21 + b":1:p", None),  # more digits than any number we send
        (b"\xff:1:1:p", None),
    ],
)
def test_decode_broadcast_untrusted(
    data: bytes, decoded: list[tuple[str, int, bytes]] | None
) -> None:
    assert decode_broadcast_untrusted(data) == decoded


@given(
    st.text(alphabet="0123456789abcdef", min_size=1, max_size=16),
    st.lists(st.tuples(st.integers(0, 2**63), st.binary(max_size=40)), min_size=1, max_size=5),
)
def test_broadcasts_as_the_publish_script_frames_them_decode(
    epoch: str, messages: list[tuple[int, bytes]]
) -> None:
    data = epoch.encode() + b"".join(
        b":%d:%d:%s" % (seq, len(payload), payload) for seq, payload in messages
    )
    assert decode_broadcast_untrusted(data) == [(epoch, seq, p) for seq, p in messages]


def test_records_round_trip_and_junk_is_refused() -> None:
    record = _record("A", 1, "Zoë")
    assert decode_record_untrusted(encode_record(record).encode()) == record
    for junk in (b"", b"[]", b"{}", b'{"server": 1}', b"\xff", encode_record(record)[:-1].encode()):
        assert decode_record_untrusted(junk) is None
