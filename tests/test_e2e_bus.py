"""Tier 4 for rooms spanning servers: real server processes on a real, private
Redis, real clients on each, and Redis killed, restarted and paused under them.

Every wait is bounded (the helpers' line timeouts); a test waits for the line
that proves the room got where it should be, never sleeps to synchronise.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e_helpers import LOCALHOST, Launcher, Program, listening_port
from tests.redis_server import RedisServer
from trio_udpchat._roombus import HISTORY_RESET, LINK_LOST, LINK_RESTORED

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

#: Longer than the bus's own patience (1 s) plus a reconnect.
RECOVERY = 10.0


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    with Launcher() as launcher:
        yield launcher


def bus_server(launcher: Launcher, redis: RedisServer, name: str) -> tuple[Program, int]:
    """A server on the bus, once it says it shares the room."""
    server, port = launcher.server("--bus", redis.url, "--name", name, "--no-input", stdin=False)
    server.wait_for_line(f"as {LOCALHOST}:{port}")
    return server, port


def member(launcher: Launcher, port: int, nick: str) -> Program:
    """A client called ``nick``, once it is in the room."""
    client = launcher.client(port, "--nick", nick)
    client.write_line("/who")
    client.wait_for_line(")", timeout=RECOVERY)  # the /who answer: it is in
    return client


def said(client: Program, nick: str, text: str, timeout: float = 5.0) -> None:
    """Wait until ``client`` has shown ``nick`` saying ``text`` (in any order with
    other waits: what was read already counts)."""
    wanted = f"<{nick}> {text}"
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        if wanted in room_lines(client):
            return
        client.read_line(max(deadline - time.monotonic(), 0.0))
    raise AssertionError(f"never showed {wanted!r}: {client!r}")


def line_with(client: Program, text: str, timeout: float = 5.0) -> str:
    """The first line ``client`` shows that contains ``text``."""
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        line = client.read_line(max(deadline - time.monotonic(), 0.0))
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r}: {client!r}")


def room_lines(client: Program) -> list[str]:
    """The room messages ``client`` showed so far (live, or replayed from the history
    after a reconnect), without their times."""
    text = client.stdout.seen().decode("utf-8", errors="replace")
    pattern = r"^\[\d\d:\d\d\] (?:\(history\) )?(<[^>]*> .*)$"
    return re.findall(pattern, text, flags=re.MULTILINE)


@dataclass
class Room:
    """Two servers on one bus: alice and carol on the first, bob on the second."""

    op1: Program
    port1: int
    op2: Program
    port2: int
    alice: Program
    bob: Program
    carol: Program


def two_servers(launcher: Launcher, redis: RedisServer) -> Room:
    """Start :class:`Room`'s servers and members."""
    op1, port1 = bus_server(launcher, redis, "op1")
    op2, port2 = bus_server(launcher, redis, "op2")
    alice = member(launcher, port1, "alice")
    carol = member(launcher, port1, "carol")
    bob = member(launcher, port2, "bob")
    return Room(op1, port1, op2, port2, alice, bob, carol)


def test_two_servers_share_one_room_in_one_order(
    launcher: Launcher, redis_server: RedisServer
) -> None:
    room = two_servers(launcher, redis_server)
    alice, bob, carol, port1 = room.alice, room.bob, room.carol, room.port1
    for round_ in range(3):  # all at once: the bus picks one order for everyone
        for client, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            client.write_line(f"{nick} {round_}")
    said(alice, "bob", "bob 2")
    said(alice, "carol", "carol 2")
    said(bob, "alice", "alice 2")
    said(bob, "carol", "carol 2")
    said(carol, "alice", "alice 2")
    said(carol, "bob", "bob 2")
    seen = {nick: room_lines(c) for nick, c in (("alice", alice), ("bob", bob), ("carol", carol))}
    for nick, lines in seen.items():
        assert len(lines) == len(set(lines)) == 6, f"{nick}: {lines}"  # once each, not own
    for mine in seen.values():
        for theirs in seen.values():
            shared = set(mine) & set(theirs)
            assert [m for m in mine if m in shared] == [m for m in theirs if m in shared]
    bob.write_line("/who")
    who = bob.wait_for_line(")")
    assert f"alice (idle 0s, on {LOCALHOST}:{port1})" in who
    assert f"carol (idle 0s, on {LOCALHOST}:{port1})" in who
    assert "bob (idle 0s)" in who


def test_a_name_is_unique_across_servers(launcher: Launcher, redis_server: RedisServer) -> None:
    _, port1 = bus_server(launcher, redis_server, "op1")
    _, port2 = bus_server(launcher, redis_server, "op2")
    member(launcher, port1, "alice")
    other = launcher.client(port2, "--nick", "Alice")
    assert "try /nick" in line_with(other, "the name 'Alice' is taken")


def test_redis_killed_and_restarted_mid_conversation(
    launcher: Launcher, redis_server: RedisServer
) -> None:
    room = two_servers(launcher, redis_server)
    alice, bob, carol, op1, op2 = room.alice, room.bob, room.carol, room.op1, room.op2
    alice.write_line("before")
    said(bob, "alice", "before")
    redis_server.kill()
    for client, server in ((alice, op1), (bob, op2), (carol, op1)):
        try:
            client.wait_for_line(LINK_LOST, timeout=RECOVERY)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nits server: {server!r}") from None
    alice.write_line("only here")
    said(carol, "alice", "only here")  # local chat goes on
    alice.wait_for_line("only this server until the link to the others is back")
    redis_server.restart()
    for client in (alice, bob, carol):
        client.wait_for_line(LINK_RESTORED, timeout=RECOVERY)
    bob.write_line("after")
    said(alice, "bob", "after")
    said(carol, "bob", "after")
    assert "<alice> only here" not in " ".join(room_lines(bob))
    assert HISTORY_RESET in bob.stdout.seen().decode()  # a restart without persistence


def test_a_paused_redis_does_not_stall_local_delivery(
    launcher: Launcher, redis_server: RedisServer
) -> None:
    room = two_servers(launcher, redis_server)
    alice, bob, carol = room.alice, room.bob, room.carol
    redis_server.pause()
    start = time.monotonic()
    alice.write_line("are you there")
    said(carol, "alice", "are you there", timeout=RECOVERY)
    assert time.monotonic() - start < 3.0  # the bus's patience (1 s), not Redis's
    redis_server.resume()
    for client in (alice, carol):
        client.wait_for_line(LINK_RESTORED, timeout=RECOVERY)
    carol.write_line("and now")
    said(bob, "carol", "and now", timeout=RECOVERY)
    said(alice, "carol", "and now")


def _children(pid: int) -> list[int]:
    """The process ids of ``pid``'s children (Linux)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()  # a child may be any thread's
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]


def test_workers_share_a_port_and_a_room_and_survive_one_dying(
    launcher: Launcher, redis_server: RedisServer
) -> None:
    server = launcher.start(
        "server", "--port", "0", "--workers", "2", "--bus", redis_server.url, stdin=False
    )
    port = listening_port(server.read_line().removesuffix(" with 2 workers"))
    nicks = [f"m{number}" for number in range(8)]
    clients = {nick: member(launcher, port, nick) for nick in nicks}
    for nick, client in clients.items():
        client.write_line(f"hello from {nick}")
    for nick, client in clients.items():
        for other in nicks:
            if other != nick:
                said(client, other, f"hello from {other}", timeout=RECOVERY)
    workers = _children(server.popen.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    server.stderr.readline(RECOVERY)  # "*** worker N stopped (killed by SIGKILL); 1 still serving"
    for nick, client in clients.items():
        client.write_line(f"still here {nick}")
    for nick, client in clients.items():
        for other in nicks:
            if other != nick:
                said(client, other, f"still here {other}", timeout=RECOVERY)
        text = client.stdout.seen().decode()
        for other in nicks:  # the moved members rejoined quietly: no second join notice
            assert text.count(f"--> {other} joined") <= 1, text
    assert "stopped (killed by SIGKILL)" in server.stderr.seen().decode()
