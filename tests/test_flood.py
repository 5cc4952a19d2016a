"""Tier 3 under attack: a flood of junk and hellos while two real clients chat.

Real UDP on 127.0.0.1. Fifty flooder sockets send 100,000 junk datagrams (random
bytes, bad-checksum frames, sealed-looking junk, plain text lines) and 10,000
Hello frames (half with forged cookies) to the server while ``alice`` and
``bob`` exchange 20 messages each; once without a passphrase, once with one.
Every message must arrive, in order; the flood never gets a session (a hello
without a valid cookie costs no state); its stats name the drops; and the
process's traced memory grows by less than ``MEMORY_GROWTH_LIMIT``.

Run with ``pytest -s`` to see the figures.
"""

from __future__ import annotations

import gc
import random
import socket
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import trio

from tests.fakes import FakeTerminal
from tests.test_run import LOOPBACK, running
from trio_udpchat import (
    Address,
    ClientCore,
    Config,
    Event,
    PeerJoined,
    PeerLeft,
    ServerCore,
    run_client,
    run_server,
)
from trio_udpchat._crypto import RoomKey, derive_key
from trio_udpchat._events import PresenceNoticed, RoomMessage, WhoListed
from trio_udpchat._wire import MAGIC, NO_COOKIE, SEALED, VERSION, Hello, encode_frame

#: Junk datagrams and valid hellos the flooders send, and from how many sockets.
JUNK = 100_000
HELLOS = 10_000
FLOODERS = 50
#: Datagrams sent between two checkpoints (``trio.lowlevel.checkpoint()``) of the flooder.
BATCH = 20
#: The room passphrase of the second run.
PASSPHRASE = b"a flood cannot read this room"
#: Messages each real client sends, spread across the flood.
MESSAGES = 20
#: Growth of the process's traced Python memory from before the flood to after it.
#: The server holds at most ``max_peers`` sessions, plain peers and hello buckets,
#: and 100 history messages of at most a few KiB; 30 MB is far above that and far
#: below what keeping a trace of 110,000 datagrams would take.
MEMORY_GROWTH_LIMIT = 30 * 1024 * 1024
#: The whole test, wall time (a 2-core machine takes a fraction of it).
TIME_LIMIT = 25
NAMES = ("alice", "bob")
#: Server configuration: no chat rate limit for the clients; room for every flooder's
#: address (the per-IP hello rate keeps the session table far from full).
CONFIG = Config(rate_limit=0, max_peers=64)


class KeepingTerminal(FakeTerminal):
    """A FakeTerminal that keeps only the events ``keep`` accepts and counts the
    rest by type, so the flood's relayed chatter does not fill the test's memory."""

    def __init__(self, keep: Callable[[Event], bool]) -> None:
        super().__init__()
        self._keep = keep
        self.discarded: Counter[str] = Counter()

    def show(self, event: Event) -> None:
        if self._keep(event):
            super().show(event)
        else:
            self.discarded[type(event).__name__] += 1


def keep_for_server(event: Event) -> bool:
    """The operator keeps arrivals and departures, not the room's chatter."""
    return not isinstance(event, RoomMessage | PresenceNoticed)


def keep_for_client(event: Event) -> bool:
    """A client keeps what the real clients say, and notices about them."""
    if isinstance(event, RoomMessage | PresenceNoticed):
        return event.name in NAMES
    return True


def junk(rng: random.Random, i: int) -> bytes:
    """One junk datagram: random bytes, a frame with a bad checksum, a sealed frame
    that does not authenticate, or a text line."""
    match i % 4:
        case 0:
            return rng.randbytes(rng.randrange(1, 200))
        case 1:
            body = rng.randbytes(rng.randrange(8, 60))
            return bytes([MAGIC, VERSION, rng.randrange(1, 9)]) + body
        case 2:
            return bytes([MAGIC, VERSION, SEALED]) + rng.randbytes(rng.randrange(41, 120))
        case _:
            return f"flood line {i}\n".encode()


def flood(rng: random.Random) -> Iterator[tuple[int, bytes]]:
    """``(flooder index, datagram)`` for the whole flood; every 11th one a hello."""
    sent_junk = sent_hellos = 0
    for i in range(JUNK + HELLOS):
        if i % 11 == 10 and sent_hellos < HELLOS:
            cookie = rng.randbytes(16) if sent_hellos % 2 else NO_COOKIE  # forged, or none
            data = encode_frame(Hello(rng.getrandbits(64), cookie))
            sent_hellos += 1
        else:
            data = junk(rng, sent_junk)
            sent_junk += 1
        yield i % FLOODERS, data
    assert (sent_junk, sent_hellos) == (JUNK, HELLOS)


async def start_member(
    nursery: trio.Nursery, address: Address, name: str, done: trio.Event, passphrase: bytes | None
) -> tuple[KeepingTerminal, ClientCore]:
    """Start a client called ``name``; ``done`` is set if it returns on its own."""
    terminal = KeepingTerminal(keep_for_client)

    async def member(task_status: trio.TaskStatus[ClientCore]) -> None:
        await run_client(
            terminal,
            address[0],
            address[1],
            name=name,
            passphrase=passphrase,
            task_status=task_status,
        )
        done.set()

    core: ClientCore = await nursery.start(member)
    terminal.enter("/who")
    await terminal.wait_for(WhoListed)
    return terminal, core


def heard(terminal: FakeTerminal, name: str) -> list[str]:
    return [e.text for e in terminal.of(RoomMessage) if e.name == name and not e.history]


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


@pytest.mark.parametrize("passphrase", [None, PASSPHRASE], ids=["open", "passphrase"])
async def test_two_clients_chat_through_a_flood_of_junk_and_hellos(
    passphrase: bytes | None,
) -> None:
    key = None
    if passphrase is not None:
        salt = bytes(range(16))
        key = RoomKey(salt, await trio.to_thread.run_sync(derive_key, passphrase, salt))
    started = time.perf_counter()
    tracemalloc.start()
    try:
        await flood_and_chat(key, passphrase)
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    print(f"wall time: {elapsed:.1f} s")


async def flood_and_chat(key: RoomKey | None, passphrase: bytes | None) -> None:
    core = ServerCore(CONFIG, name="server", key=key)
    operator = KeepingTerminal(keep_for_server)
    rng = random.Random(20240607)
    async with running(TIME_LIMIT) as nursery:
        run = partial(run_server, operator, LOOPBACK, 0, CONFIG, core=core)
        address: Address = await nursery.start(run)
        alice_done, bob_done = trio.Event(), trio.Event()
        alice, _ = await start_member(nursery, address, "alice", alice_done, passphrase)
        bob, _ = await start_member(nursery, address, "bob", bob_done, passphrase)
        await alice.wait_for(PresenceNoticed, lambda e: (e.what, e.name) == ("joined", "bob"))
        joined = operator.of(PeerJoined)
        assert len(joined) == 2
        alice_address = joined[0].address

        # Plain non-blocking sockets: a batch is sent without a checkpoint per datagram.
        flooders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(FLOODERS)]
        try:
            for sock in flooders:
                sock.setblocking(False)
                sock.bind((LOOPBACK, 0))
            before = traced()
            batches = -(-(JUNK + HELLOS) // BATCH)
            # Message k goes after batch (k + 1) * batches // MESSAGES - 1: the last
            # after the whole flood, so its arrival proves the server got past it.
            speak_after = {(k + 1) * batches // MESSAGES - 1: k for k in range(MESSAGES)}
            most_sessions = most_peers = 0
            batch = 0
            send_errors = 0
            for n, (index, data) in enumerate(flood(rng), start=1):
                try:
                    flooders[index].sendto(data, address)
                except OSError:
                    send_errors += 1  # a full buffer: the kernel may drop some
                if n % BATCH and n != JUNK + HELLOS:
                    continue
                if batch in speak_after:
                    k = speak_after[batch]
                    alice.enter(f"alice {k}")
                    bob.enter(f"bob {k}")
                most_sessions = max(most_sessions, core.session_count)
                most_peers = max(most_peers, core.peer_count)
                batch += 1
                await trio.lowlevel.checkpoint()
            assert batch == batches
            last = MESSAGES - 1
            await bob.wait_for(
                RoomMessage, lambda e: (e.name, e.text) == ("alice", f"alice {last}")
            )
            await alice.wait_for(RoomMessage, lambda e: (e.name, e.text) == ("bob", f"bob {last}"))
            after = traced()
        finally:
            for sock in flooders:
                sock.close()

        alice.eof()
        await alice_done.wait()
        left = await operator.wait_for(PeerLeft, lambda e: e.address == alice_address)
        await bob.wait_for(PresenceNoticed, lambda e: (e.what, e.name) == ("left", "alice"))

    drops = {k: v for k, v in sorted(core.stats.items()) if k.startswith("dropped")}
    growth = after - before
    print()
    print(f"datagrams sent: {JUNK} junk + {HELLOS} hellos from {FLOODERS} sockets")
    print(f"flooder send errors: {send_errors}")
    print(f"server datagrams_in: {core.stats['datagrams_in']} (the kernel dropped the rest)")
    print(f"server stats: {dict(sorted(core.stats.items()))}")
    print(f"drops by reason: {drops}")
    print(f"most sessions: {most_sessions}, most peers: {most_peers}")
    print(
        f"traced memory before: {before / 2**20:.2f} MiB, after: {after / 2**20:.2f} MiB,"
        f" growth: {growth / 2**20:.2f} MiB (limit {MEMORY_GROWTH_LIMIT / 2**20:.0f} MiB)"
    )
    print(
        f"delivered: alice->bob {len(heard(bob, 'alice'))}, bob->alice {len(heard(alice, 'bob'))}"
    )
    print(f"discarded events: operator {dict(operator.discarded)}, alice {dict(alice.discarded)}")

    assert heard(bob, "alice") == [f"alice {k}" for k in range(MESSAGES)]
    assert heard(alice, "bob") == [f"bob {k}" for k in range(MESSAGES)]
    assert left.reason == "quit"
    assert alice_done.is_set()
    assert not bob_done.is_set()  # bob ran until the nursery was cancelled, without error
    assert most_sessions <= CONFIG.max_peers
    assert core.session_count <= CONFIG.max_peers
    assert most_peers <= 2 * CONFIG.max_peers
    assert drops["dropped:bad-checksum"] > 0
    assert drops["dropped:hello-rate"] > 0
    assert drops["dropped:stale-cookie"] > 0
    assert drops["dropped:bad-tag" if key else "dropped:no-key"] > 0
    assert (most_sessions, core.session_count) == (2, 1)  # the flood never had a session
    assert growth < MEMORY_GROWTH_LIMIT
