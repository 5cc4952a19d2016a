"""Tier 3 for chat rooms: real UDP on loopback, fake terminals, three or more members.

Every test runs inside ``running()`` (a ``trio.fail_after``); tests whose subject
is a timer (rate limits, expiry) run under ``autojump_clock``. A member counts as
joined once its own ``/who`` has been answered: the server handles a session's
messages in order, so the answer proves the join before it was handled.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pytest
import trio
import trio.testing

from tests.fakes import FakeTerminal
from tests.test_run import LOOPBACK, running, udp_socket
from trio_udpchat import (
    Address,
    ClientCore,
    CommandRejected,
    Config,
    Event,
    MessageReceived,
    ServerCore,
    StartupError,
    run_client,
    run_server,
)
from trio_udpchat._events import (
    NameAssigned,
    PresenceNoticed,
    RequestRefused,
    RoomMessage,
    WhoListed,
)
from trio_udpchat._render import render

#: A room line as a member's terminal shows it: ``[HH:MM] `` and the rest.
ROOM_LINE = re.compile(r"\[\d\d:\d\d\] (?P<rest>.*)", re.DOTALL)
#: More datagrams than any test expects a plain peer to receive.
MAX_DATAGRAMS = 100
HOSTILE = "\x1b]0;pwned\x07 \x1b[2J"
HOSTILE_SHOWN = r"\x1b]0;pwned\x07 \x1b[2J"


def room_line(line: str | None) -> str:
    """A rendered room line without its ``[HH:MM] `` time."""
    assert line is not None
    match = ROOM_LINE.fullmatch(line)
    assert match is not None, f"not a room line: {line!r}"
    return match["rest"]


@dataclass
class Room:
    """A running server: the operator's terminal, its address and its core."""

    operator: FakeTerminal
    address: Address
    core: ServerCore


@dataclass
class Member:
    """A running framed client: its terminal and its core."""

    terminal: FakeTerminal
    core: ClientCore

    @property
    def name(self) -> str:
        """What the room calls this member now."""
        return self.core.current_name

    def enter(self, *lines: str) -> None:
        self.terminal.enter(*lines)

    def eof(self) -> None:
        self.terminal.eof()

    def said(self) -> list[tuple[str, str, str]]:
        """``(name, text, kind)`` of every room message this member was shown."""
        return [(e.name, e.text, e.kind) for e in self.terminal.of(RoomMessage)]

    async def hears(self, name: str, text: str) -> RoomMessage:
        """Wait until ``name`` is heard saying ``text``."""
        return await self.terminal.wait_for(RoomMessage, lambda e: (e.name, e.text) == (name, text))

    async def notices(self, what: str, name: str, detail: str = "") -> PresenceNoticed:
        """Wait for a presence notice."""
        return await self.terminal.wait_for(
            PresenceNoticed, lambda e: (e.what, e.name, e.detail) == (what, name, detail)
        )


async def open_room(
    nursery: trio.Nursery, config: Config | None = None, *, operator: str = "server"
) -> Room:
    """Start a server on a free loopback port."""
    terminal = FakeTerminal()
    core = ServerCore(config, name=operator, wall_offset=time.time() - trio.current_time())
    run = partial(run_server, terminal, LOOPBACK, 0, config, name=operator, core=core)
    address: Address = await nursery.start(run)
    return Room(terminal, address, core)


async def start_member(
    nursery: trio.Nursery, room: Room, name: str, config: Config | None = None
) -> Member:
    """Start a client that asks to be called ``name``; it may not have joined yet."""
    terminal = FakeTerminal()
    run = partial(run_client, terminal, room.address[0], room.address[1], config, name=name)
    core: ClientCore = await nursery.start(run)
    return Member(terminal, core)


async def join(
    nursery: trio.Nursery, room: Room, name: str, config: Config | None = None
) -> Member:
    """Start a client called ``name`` and return once it is in the room."""
    member = await start_member(nursery, room, name, config)
    member.enter("/who")
    await member.terminal.wait_for(WhoListed)
    return member


async def join_all(nursery: trio.Nursery, room: Room, *names: str) -> list[Member]:
    """Members joined one after the other, each seen joining by those already in."""
    members: list[Member] = []
    for name in names:
        member = await join(nursery, room, name)
        for earlier in members:
            await earlier.notices("joined", name)
        members.append(member)
    return members


async def receive_lines(peer: trio.socket.SocketType, until: Callable[[str], bool]) -> list[str]:
    """Every line a plain-text peer receives, up to and including one matching ``until``."""
    lines: list[str] = []
    for _ in range(MAX_DATAGRAMS):
        data, _ = await peer.recvfrom(65536)
        lines += data.decode("utf-8").removesuffix("\n").split("\n")
        if any(until(line) for line in lines):
            return lines
    raise AssertionError(f"no matching line among {lines!r}")


def is_room_line(rest: str) -> Callable[[str], bool]:
    """Whether a plain-text line is a room line reading ``rest`` after its time."""
    return lambda line: ROOM_LINE.fullmatch(line) is not None and room_line(line) == rest


# -- relaying --------------------------------------------------------------------


async def test_a_message_reaches_every_other_member_and_the_operator() -> None:
    async with running() as nursery:
        room = await open_room(nursery)
        alice, bob, carol = await join_all(nursery, room, "alice", "bob", "carol")
        alice.enter("hello room")
        heard_by_bob = await bob.hears("alice", "hello room")
        await carol.hears("alice", "hello room")
        shown = await room.operator.wait_for(RoomMessage, lambda e: e.text == "hello room")
        carol.enter("/me waves")
        await alice.hears("carol", "waves")
        await bob.hears("carol", "waves")
        bob.enter("and back")
        await alice.hears("bob", "and back")
        await carol.hears("bob", "and back")
        await room.operator.wait_for(RoomMessage, lambda e: e.text == "and back")
    # Nobody hears themselves; everybody hears everyone else, in order.
    assert alice.said() == [("carol", "waves", "act"), ("bob", "and back", "say")]
    assert bob.said() == [("alice", "hello room", "say"), ("carol", "waves", "act")]
    assert carol.said() == [("alice", "hello room", "say"), ("bob", "and back", "say")]
    assert [(e.name, e.text, e.kind) for e in room.operator.of(RoomMessage)] == [
        ("alice", "hello room", "say"),
        ("carol", "waves", "act"),
        ("bob", "and back", "say"),
    ]
    # The operator knows where each came from; members see the time, not the address.
    assert shown.address is not None
    assert shown.address[0] == LOOPBACK
    assert heard_by_bob.address is None
    assert not heard_by_bob.history
    assert abs(heard_by_bob.time - time.time()) < 60
    assert room_line(render(heard_by_bob, "client")) == "<alice> hello room"
    assert room_line(render(alice.terminal.of(RoomMessage)[0], "client")) == "* carol waves"
    assert room_line(render(shown, "server")) == "<alice> hello room"
    # With three members the operator never sees the classic lines.
    assert room.operator.of(MessageReceived) == []


async def test_the_operator_replies_to_the_last_speaker_and_speaks_to_all_or_one() -> None:
    async with running() as nursery:
        room = await open_room(nursery, operator="op")
        alice, bob, carol = await join_all(nursery, room, "alice", "bob", "carol")
        bob.enter("question from bob")
        await room.operator.wait_for(RoomMessage, lambda e: e.text == "question from bob")
        room.operator.enter("answer for bob")
        replied = await bob.terminal.wait_for(MessageReceived)
        room.operator.enter("/all announcement")
        for member in (alice, bob, carol):
            await member.hears("op", "announcement")
        room.operator.enter("/to CAROL just for you")  # names match case-insensitively
        private = await carol.terminal.wait_for(RoomMessage, lambda e: e.kind == "private")
        room.operator.enter("/to nobody hello?")
        rejected = await room.operator.wait_for(CommandRejected)
        room.operator.enter("/all the end")
        for member in (alice, bob, carol):
            await member.hears("op", "the end")
    assert replied.text == "answer for bob"
    assert render(replied, "client") == "The server replied with 'answer for bob'"
    assert (private.name, private.text) == ("op", "just for you")
    assert room_line(render(private, "client")) == "*op* just for you"
    assert "'nobody'" in (render(rejected, "server") or "")
    # The reply and the private message went to one member each.
    assert alice.terminal.of(MessageReceived) == carol.terminal.of(MessageReceived) == []
    assert alice.said() == [
        ("bob", "question from bob", "say"),
        ("op", "announcement", "say"),
        ("op", "the end", "say"),
    ]
    assert ("op", "just for you", "private") not in bob.said()


async def test_a_private_message_reaches_only_its_target() -> None:
    async with running() as nursery:
        room = await open_room(nursery)
        alice, bob, carol = await join_all(nursery, room, "alice", "bob", "carol")
        alice.enter("/msg Bob psst, bob", "/msg server psst, operator", "/msg zed hello?")
        to_bob = await bob.terminal.wait_for(RoomMessage)
        to_operator = await room.operator.wait_for(RoomMessage)
        refused = await alice.terminal.wait_for(RequestRefused)
        # A public message after the private ones: whoever hears it would have
        # heard a private message sent before it (a session is in order).
        alice.enter("public again")
        for member in (bob, carol):
            await member.hears("alice", "public again")
        await room.operator.wait_for(RoomMessage, lambda e: e.text == "public again")
    assert (to_bob.name, to_bob.text, to_bob.kind) == ("alice", "psst, bob", "private")
    assert room_line(render(to_bob, "client")) == "*alice* psst, bob"
    assert bob.said() == [("alice", "psst, bob", "private"), ("alice", "public again", "say")]
    assert carol.said() == [("alice", "public again", "say")]
    assert (to_operator.name, to_operator.text, to_operator.kind) == (
        "alice",
        "psst, operator",
        "private",
    )
    assert [e.text for e in room.operator.of(RoomMessage)] == ["psst, operator", "public again"]
    assert refused.text.startswith("no one here is called 'zed'")
    assert "not sent" in refused.text


async def test_who_lists_the_operator_first_then_every_member() -> None:
    async with running() as nursery:
        room = await open_room(nursery, operator="op")
        alice, bob, carol = await join_all(nursery, room, "carol", "Bob", "alice")
        for member in (alice, bob, carol):
            member.enter("/who")
        expected = ["op", "alice", "Bob", "carol"]  # members sorted, ignoring case
        listed = [
            await member.terminal.wait_for(WhoListed, lambda e: len(e.entries) == 4)
            for member in (alice, bob, carol)
        ]
        room.operator.enter("/who")
        operator_listed = await room.operator.wait_for(WhoListed)
    for who in [*listed, operator_listed]:
        assert [name for name, _, _, _ in who.entries] == expected
        assert [operator for _, _, operator, _ in who.entries] == [True, False, False, False]
        assert all(idle >= 0 for _, idle, _, _ in who.entries)
    line = render(operator_listed, "server") or ""
    assert line.startswith("*** 4 here: op (operator, idle ")
    assert re.search(r"alice \(idle \d+s\), Bob \(idle \d+s\), carol \(idle \d+s\)$", line)


async def test_who_gives_a_silent_operator_the_idle_time_since_the_server_started() -> None:
    # Under trio's real clock, which starts at a large random offset.
    async with running() as nursery:
        room = await open_room(nursery)
        alice = await join(nursery, room, "alice")
    (who,) = alice.terminal.of(WhoListed)
    assert who.entries[0][0] == "server"
    assert who.entries[0][2] is True
    assert who.entries[0][1] < 60, who


# -- presence --------------------------------------------------------------------


async def test_presence_notices_for_join_rename_and_leave() -> None:
    async with running() as nursery:
        room = await open_room(nursery)
        alice, bob, carol = await join_all(nursery, room, "alice", "bob", "carol")
        bob.enter("/nick robert")
        assigned = await bob.terminal.wait_for(NameAssigned)
        for member in (alice, carol):
            await member.notices("renamed", "bob", "robert")
        carol.enter("/quit see you")
        for member in (alice, bob):
            await member.notices("left", "carol", "quit: see you")
        bob.eof()
        await alice.notices("left", "robert", "quit")
        await room.operator.wait_for(PresenceNoticed, lambda e: e.name == "robert")
    assert assigned.name == "robert"
    assert bob.core.name == "robert"
    assert render(assigned, "client") == "*** you are now known as robert"
    notices = [(e.what, e.name, e.detail) for e in alice.terminal.of(PresenceNoticed)]
    assert notices == [
        ("joined", "bob", ""),
        ("joined", "carol", ""),
        ("renamed", "bob", "robert"),
        ("left", "carol", "quit: see you"),
        ("left", "robert", "quit"),
    ]
    shown = [render(e, "client") for e in alice.terminal.of(PresenceNoticed)]
    assert shown == [
        "--> bob joined",
        "--> carol joined",
        "--- bob is now known as robert",
        "<-- carol left (quit: see you)",
        "<-- robert left (quit)",
    ]
    # The operator did not hear alice join (a one-to-one chat then), but all the rest.
    operator = [(e.what, e.name, e.detail) for e in room.operator.of(PresenceNoticed)]
    assert operator == notices
    # Nobody is told about themselves.
    assert [(e.what, e.name) for e in bob.terminal.of(PresenceNoticed)] == [
        ("joined", "carol"),
        ("left", "carol"),
    ]


async def test_with_one_member_the_operator_sees_the_classic_chat() -> None:
    async with running() as nursery:
        room = await open_room(nursery)
        alice = await join(nursery, room, "alice")
        alice.enter("just us")
        classic = await room.operator.wait_for(MessageReceived)
        bob = await join(nursery, room, "bob")
        await alice.notices("joined", "bob")
        bob.enter("now a room")
        await room.operator.wait_for(RoomMessage, lambda e: e.text == "now a room")
        bob.eof()
        await alice.notices("left", "bob", "quit")
        alice.enter("just us again")
        again = await room.operator.wait_for(MessageReceived, lambda e: e.text == "just us again")
    assert classic.text == "just us"
    assert render(classic, "server") == f"The client at {classic.sender!r} says 'just us'"
    assert again.sender == classic.sender
    assert [(e.what, e.name) for e in room.operator.of(PresenceNoticed)] == [
        ("joined", "bob"),
        ("left", "bob"),
    ]
    assert [e.text for e in room.operator.of(RoomMessage)] == ["now a room"]


async def test_a_taken_name_is_refused_and_the_address_used_instead() -> None:
    async with running() as nursery:
        room = await open_room(nursery)
        (alice,) = await join_all(nursery, room, "alice")
        clash = await join(nursery, room, "ALICE")
        address_name = clash.name
        refused = await clash.terminal.wait_for(RequestRefused)
        joined = await alice.terminal.wait_for(PresenceNoticed)
        clash.enter("/nick SERVER")  # the operator's name is taken too
        await clash.terminal.wait_for(RequestRefused, lambda e: "'SERVER'" in e.text)
        clash.enter("/nick alice2")
        assigned = await clash.terminal.wait_for(NameAssigned)
        await alice.notices("renamed", address_name, "alice2")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", address_name), address_name
    assert joined.name == address_name
    assert refused.text == (
        f"the name 'ALICE' is taken; try /nick ALICE2; for now you are {address_name}"
    )
    assert render(refused, "client") == f"! {refused.text}"
    assert assigned.name == clash.name == "alice2"


async def test_history_is_replayed_to_a_late_joiner() -> None:
    config = Config(history_count=3)
    async with running() as nursery:
        room = await open_room(nursery, config)
        alice, bob = await join_all(nursery, room, "alice", "bob")
        alice.enter("too old to keep")
        await bob.hears("alice", "too old to keep")
        alice.enter("/msg bob never in history")
        await bob.hears("alice", "never in history")
        bob.enter("/me arrives")
        await alice.hears("bob", "arrives")
        alice.enter("one")
        await bob.hears("alice", "one")
        room.operator.enter("/all from the operator")
        await alice.hears("server", "from the operator")
        carol = await join(nursery, room, "carol")
        alice.enter("live")
        await carol.hears("alice", "live")
    replayed = [e for e in carol.terminal.of(RoomMessage) if e.history]
    assert [(e.name, e.text, e.kind) for e in replayed] == [
        ("bob", "arrives", "act"),
        ("alice", "one", "say"),
        ("server", "from the operator", "say"),
    ]
    assert [room_line(render(e, "client")) for e in replayed] == [
        "(history) * bob arrives",
        "(history) <alice> one",
        "(history) <server> from the operator",
    ]
    assert carol.said()[-1] == ("alice", "live", "say")
    assert not carol.terminal.of(RoomMessage)[-1].history
    # The history came before anything live, and nobody else got a replay.
    assert carol.terminal.events.index(replayed[-1]) < carol.terminal.events.index(
        carol.terminal.of(RoomMessage)[-1]
    )
    assert not [e for m in (alice, bob) for e in m.terminal.of(RoomMessage) if e.history]


# -- limits ----------------------------------------------------------------------


async def test_rate_limit_refuses_the_excess_and_does_not_relay_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = Config(rate_limit=1.0, rate_burst=2)
    async with running() as nursery:
        room = await open_room(nursery, config)
        alice, bob, carol = await join_all(nursery, room, "alice", "bob", "carol")
        alice.enter("one", "two", "three", "/msg bob four")
        first = await alice.terminal.wait_for(RequestRefused)
        await alice.terminal.wait_for(RequestRefused, lambda e: e is not first)
        await trio.sleep(1.0)  # virtual time: the bucket earns one message a second
        alice.enter("five")
        for member in (bob, carol):
            await member.hears("alice", "five")
        await room.operator.wait_for(RoomMessage, lambda e: e.text == "five")
    assert first.text.startswith("slow down: at most 1 messages a second (bursts of 2)")
    assert render(first, "client") == f"! {first.text}"
    assert len(alice.terminal.of(RequestRefused)) == 2
    assert [text for _, text, _ in bob.said()] == ["one", "two", "five"]
    assert [text for _, text, _ in carol.said()] == ["one", "two", "five"]
    assert [e.text for e in room.operator.of(RoomMessage)] == ["one", "two", "five"]


async def test_rate_limit_zero_relays_everything(
    autojump_clock: trio.testing.MockClock,
) -> None:
    texts = [f"line {i}" for i in range(60)]
    async with running() as nursery:
        room = await open_room(nursery, Config(rate_limit=0))
        alice, bob = await join_all(nursery, room, "alice", "bob")
        alice.enter(*texts)
        await bob.hears("alice", texts[-1])
    assert [text for _, text, _ in bob.said()] == texts
    assert alice.terminal.of(RequestRefused) == []


async def test_messages_waiting_for_a_member_go_together_in_bundles_and_in_order() -> None:
    # One packet in flight per session: what the room says meanwhile waits, and
    # leaves together when the member's ack makes room.
    texts = [f"line {i}" for i in range(40)]
    async with running() as nursery:
        room = await open_room(nursery, Config(rate_limit=0, window=1))
        alice, bob = await join_all(nursery, room, "alice", "bob")
        alice.enter(*texts)
        await bob.hears("alice", texts[-1])
    assert [text for _, text, _ in bob.said()] == texts
    assert room.core.stats["bundled"] > 0
    assert room.core.stats["datagrams_out"] < room.core.stats["deliveries"]


async def test_a_full_room_turns_the_next_client_away() -> None:
    config = Config(max_clients=2, plain_budget_factor=None)  # the plain peer hears "full"
    async with running() as nursery:
        room = await open_room(nursery, config)
        alice, bob = await join_all(nursery, room, "alice", "bob")
        turned_away = FakeTerminal()
        with pytest.raises(StartupError, match=r"the room is full \(2 members\)"):
            await run_client(turned_away, *room.address[:2], name="carol")
        # A plain-text peer is told in a line of its own.
        with udp_socket() as peer:
            await peer.sendto(b"let me in\n", room.address)
            data, _ = await peer.recvfrom(65536)
        bob.enter("/quit")
        await alice.notices("left", "bob", "quit")
        carol = await join(nursery, room, "carol")
        carol.enter("in at last")
        await alice.hears("carol", "in at last")
    assert data == b"*** the room is full (2 members)\n"
    # Neither the client turned away nor the plain-text peer ever joined.
    assert [(e.what, e.name) for e in alice.terminal.of(PresenceNoticed)] == [
        ("joined", "bob"),
        ("left", "bob"),
        ("joined", "carol"),
    ]
    assert room.core.stats["dropped:room-full"] == 2


# -- leaving ---------------------------------------------------------------------


async def test_a_member_leaving_mid_flight_still_delivers_its_last_message() -> None:
    last_words = "last words " + "x" * 4000  # several datagrams, all in flight at once
    async with running() as nursery:
        room = await open_room(nursery)
        alice, bob, carol = await join_all(nursery, room, "alice", "bob", "carol")
        # No linger: the goodbye follows the message at once, before any ack.
        leaving = await join(nursery, room, "dave", Config(linger=0))
        for member in (alice, bob, carol):
            await member.notices("joined", "dave")
        leaving.enter(last_words)
        leaving.eof()
        for member in (alice, bob, carol):
            await member.notices("left", "dave", "quit")
        await room.operator.wait_for(PresenceNoticed, lambda e: e.what == "left")
    for member in (alice, bob, carol):
        events = member.terminal.events
        said = [e for e in events if isinstance(e, RoomMessage) and e.name == "dave"]
        assert [e.text for e in said] == [last_words]
        left = [e for e in events if isinstance(e, PresenceNoticed) and e.what == "left"]
        assert events.index(said[0]) < events.index(left[0])
    assert [e.text for e in room.operator.of(RoomMessage)] == [last_words]


async def test_a_vanished_member_times_out(autojump_clock: trio.testing.MockClock) -> None:
    expiry = 5.0
    async with running() as nursery:
        room = await open_room(nursery, Config(session_expiry=expiry))
        alice, bob = await join_all(nursery, room, "alice", "bob")
        async with trio.open_nursery() as doomed:
            # No time for a goodbye: as if the machine had dropped off the network.
            await join(doomed, room, "carol", Config(goodbye_timeout=0))
            await alice.notices("joined", "carol")
            doomed.cancel_scope.cancel()
        gone = trio.current_time()
        notice = await alice.notices("left", "carol", "timed out")
        waited = trio.current_time() - gone
        await bob.notices("left", "carol", "timed out")
    # The others kept their sessions alive meanwhile, and the notice came on time.
    assert expiry - 1 <= waited <= expiry + 1
    assert render(notice, "client") == "<-- carol left (timed out)"
    assert [(e.what, e.name) for e in alice.terminal.of(PresenceNoticed)] == [
        ("joined", "bob"),
        ("joined", "carol"),
        ("left", "carol"),
    ]


# -- plain-text peers ------------------------------------------------------------


async def test_a_plain_text_peer_shares_the_room_as_text_lines() -> None:
    async with running() as nursery:
        room = await open_room(nursery, Config(plain_budget_factor=None))  # --trust-plain
        alice, bob = await join_all(nursery, room, "alice", "bob")
        with udp_socket() as peer:
            await peer.bind((LOOPBACK, 0))
            peer_address = peer.getsockname()
            name = f"{LOOPBACK}:{peer_address[1]}"
            await peer.sendto(b"hi from plain\n", room.address)
            for member in (alice, bob):
                await member.notices("joined", name)
                await member.hears(name, "hi from plain")
            shown = await room.operator.wait_for(RoomMessage, lambda e: e.name == name)
            alice.enter("hello plain")
            got = await receive_lines(peer, is_room_line("<alice> hello plain"))
            bob.enter("/me nods", "/nick robert")
            got += await receive_lines(peer, lambda line: line.startswith("---"))
            alice.enter(f"/msg {name} just you", HOSTILE)
            got += await receive_lines(peer, is_room_line(f"<alice> {HOSTILE_SHOWN}"))
            room.operator.enter("/all to everyone")
            got += await receive_lines(peer, is_room_line("<server> to everyone"))
            await peer.sendto(b"the plain peer speaks last", room.address)
            await alice.hears(name, "the plain peer speaks last")
            room.operator.enter("the operator answers the plain peer")
            got += await receive_lines(peer, lambda line: "answers" in line)
            bob.eof()
            got += await receive_lines(peer, lambda line: line.startswith("<--"))
    assert shown.address == peer_address
    assert [room_line(line) if ROOM_LINE.fullmatch(line) else line for line in got] == [
        "<alice> hello plain",
        "* bob nods",
        "--- bob is now known as robert",
        "*alice* just you",
        f"<alice> {HOSTILE_SHOWN}",
        "<server> to everyone",
        "the operator answers the plain peer",  # the classic reply: bare text
        "<-- robert left (quit)",
    ]
    assert "\x1b" not in "".join(got)


async def test_a_plain_peer_without_newlines_gets_lines_without_them() -> None:
    async with running() as nursery:
        room = await open_room(nursery)
        (alice,) = await join_all(nursery, room, "alice")
        with udp_socket() as peer:
            await peer.bind((LOOPBACK, 0))
            await peer.sendto(b"classic", room.address)
            name = f"{LOOPBACK}:{peer.getsockname()[1]}"
            await alice.hears(name, "classic")
            alice.enter("hi")
            data, _ = await peer.recvfrom(65536)
    assert ROOM_LINE.fullmatch(data.decode()) is not None
    assert room_line(data.decode()) == "<alice> hi"


async def test_a_silent_plain_peer_times_out(autojump_clock: trio.testing.MockClock) -> None:
    expiry = 30.0
    async with running(120) as nursery:
        room = await open_room(nursery, Config(plain_expiry=expiry))
        alice, bob = await join_all(nursery, room, "alice", "bob")
        with udp_socket() as peer:
            await peer.bind((LOOPBACK, 0))
            await peer.sendto(b"drive-by", room.address)
            name = f"{LOOPBACK}:{peer.getsockname()[1]}"
            await alice.hears(name, "drive-by")
            spoke = trio.current_time()
            await alice.notices("left", name, "timed out")
            waited = trio.current_time() - spoke
            await bob.notices("left", name, "timed out")
    assert expiry - 1 <= waited <= expiry + 1


# -- what the network says is shown escaped ---------------------------------------


async def test_hostile_text_is_relayed_as_is_and_rendered_escaped() -> None:
    async with running() as nursery:
        room = await open_room(nursery)
        alice, bob, carol = await join_all(nursery, room, "alice", "bob", "carol")
        alice.enter(HOSTILE, f"/me {HOSTILE}", f"/msg bob {HOSTILE}", f"/nick {HOSTILE.split()[0]}")
        refused = await alice.terminal.wait_for(RequestRefused)
        await bob.terminal.wait_for(RoomMessage, lambda e: e.kind == "private")
        carol.enter(f"/quit {HOSTILE}")
        left = await bob.notices("left", "carol", f"quit: {HOSTILE}")
        await room.operator.wait_for(PresenceNoticed, lambda e: e.what == "left")
    relayed = bob.terminal.of(RoomMessage)
    assert [e.text for e in relayed] == [HOSTILE] * 3  # the bytes are the sender's
    to_members: list[Event] = [*relayed, left, refused]
    lines = [render(e, "client") or "" for e in to_members]
    lines += [render(e, "server") or "" for e in room.operator.of(RoomMessage)]
    assert [room_line(line) for line in lines[:3]] == [
        f"<alice> {HOSTILE_SHOWN}",
        f"* alice {HOSTILE_SHOWN}",
        f"*alice* {HOSTILE_SHOWN}",
    ]
    assert lines[3] == f"<-- carol left (quit: {HOSTILE_SHOWN})"
    assert lines[4].startswith(r"! the name '\x1b]0;pwned\x07' cannot be used")
    assert len(lines) == 7
    for line in lines:
        assert "\x1b" not in line, line
        assert "\x07" not in line, line
    assert alice.name == "alice"
