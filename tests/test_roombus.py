"""One room across several servers, on the in-memory bus: order, gaps, epochs,
presence, names, splits and heals, and clients moving between servers.

Everything here is the sans-IO core with explicit time; the same core runs
over Redis in tests/test_redis_room.py.
"""

from __future__ import annotations

import pytest

from tests.bus_helpers import Cluster, client_address
from tests.core_helpers import make_client
from trio_udpchat._bus import Publish
from trio_udpchat._chat import AskWho, PresenceKind, Rename, SaidKind, Whisper
from trio_udpchat._envelope import Envelope, decode_envelope_untrusted, encode_envelope
from trio_udpchat._events import (
    PresenceNoticed,
    RequestRefused,
    RoomMessage,
    RoomNotice,
    WhoListed,
)
from trio_udpchat._room import Origin, RoomPresence, RoomSaid, RoomWhisper
from trio_udpchat._roombus import HISTORY_RESET, LINK_LOST, LINK_RESTORED, STAYED_HERE


def three() -> Cluster:
    """alice and carol on s0, bob on s1."""
    cluster = Cluster(2)
    cluster.join(1, "alice", 0)
    cluster.join(2, "bob", 1)
    cluster.join(3, "carol", 0)
    cluster.clear()
    return cluster


# -- order ----------------------------------------------------------------------------


def test_messages_cross_servers_once_each_in_one_order() -> None:
    cluster = three()
    for round_ in range(5):  # all three type at once: the bus decides the order
        for number in (1, 2, 3):
            cluster.say(number, f"{number}.{round_}")
    cluster.settle()
    everyone = sorted(
        [("alice", f"1.{r}") for r in range(5)]
        + [("bob", f"2.{r}") for r in range(5)]
        + [("carol", f"3.{r}") for r in range(5)]
    )
    orders = []
    for number, name in ((1, "alice"), (2, "bob"), (3, "carol")):
        seen = cluster.seen(number)
        assert sorted(seen) == [m for m in everyone if m[0] != name]  # once each, not own
        orders.append(seen)
    # One order: any two members agree on the order of what both saw.
    for mine in orders:
        for theirs in orders:
            both = [m for m in mine if m in theirs]
            assert both == [m for m in theirs if m in mine]
    # Per sender, the order typed.
    for seen in orders:
        for name in ("alice", "bob", "carol"):
            texts = [t for n, t in seen if n == name]
            assert texts == sorted(texts)


def test_the_senders_server_waits_for_the_bus_like_everyone_else() -> None:
    cluster = three()
    cluster.say(1, "hello")
    # Before the bus runs, carol (alice's server) has nothing either.
    cluster._exchange()
    assert cluster.seen(3) == []
    assert cluster.servers[0].link is not None
    assert cluster.servers[0].link._pending
    cluster.settle()
    assert cluster.seen(3) == [("alice", "hello")]
    assert cluster.seen(2) == [("alice", "hello")]


# -- presence and names ---------------------------------------------------------------


def test_joins_and_leaves_are_told_on_every_server() -> None:
    cluster = three()
    cluster.join(4, "dave", 1)
    assert ("joined", "dave", "") in cluster.presence(1)
    assert ("joined", "dave", "") in cluster.presence(2)
    cluster.clients[client_address(4)].close(cluster.now)
    cluster.settle()
    assert [p for p in cluster.presence(1) if p[0] == "left"] == [("left", "dave", "quit")]
    assert [p for p in cluster.presence(3) if p[0] == "left"] == [("left", "dave", "quit")]


def test_who_lists_everyone_with_their_server() -> None:
    cluster = three()
    cluster.clients[client_address(2)].send(AskWho(), "/who", cluster.now)
    cluster.settle()
    listed = [e for e in cluster.events[client_address(2)] if isinstance(e, WhoListed)]
    assert listed == [
        WhoListed(
            (
                ("op1", 0, True, ""),
                ("alice", 0, False, "host:0"),
                ("bob", 0, False, ""),
                ("carol", 0, False, "host:0"),
            )
        )
    ]
    cluster.servers[0].who(cluster.now)
    cluster.settle()
    (operator,) = [e for e in cluster.operator_events[0] if isinstance(e, WhoListed)]
    assert [(n, s) for n, _, _, s in operator.entries] == [
        ("op0", ""),
        ("alice", ""),
        ("bob", "host:1"),
        ("carol", ""),
    ]


def test_a_name_held_on_another_server_is_refused_with_a_suggestion() -> None:
    cluster = three()
    cluster.join(4, "Alice", 1)  # alice is on s0
    events = cluster.events[client_address(4)]
    refused = [e.text for e in events if isinstance(e, RequestRefused)]
    assert refused
    assert "taken" in refused[0]
    assert "try /nick" in refused[0]
    assert cluster.clients[client_address(4)].current_name == "192.0.2.1:41004"


def test_two_servers_giving_one_name_at_once_the_bus_picks_one() -> None:
    cluster = Cluster(2)
    for number, server in ((1, 0), (2, 1)):
        client = make_client(cluster.config, seed=900 + number, name="zed", token=number)
        cluster.clients[client_address(number)] = client
        cluster.route[client_address(number)] = server
        cluster.events[client_address(number)] = []
        client.start(cluster.now)
    # Both hellos, welcomes and joins happen before the bus runs its first command.
    for _ in range(6):
        cluster._exchange()
    cluster.settle()
    names = sorted(c.current_name for c in cluster.clients.values())
    assert names[0] != names[1]
    assert "zed" in names
    loser = next(a for a, c in cluster.clients.items() if c.current_name != "zed")
    refused = [e.text for e in cluster.events[loser] if isinstance(e, RequestRefused)]
    assert refused == [f"the name 'zed' is taken on another server; you are {names[0]}"]
    # Everyone agrees who is who.
    for core in cluster.servers:
        roster = sorted(e.name for e in core.room.roster(cluster.now).entries[1:])
        assert roster == names


def test_a_rename_to_a_name_held_elsewhere_is_refused() -> None:
    cluster = three()
    cluster.clients[client_address(3)].send(Rename("BOB"), "/nick BOB", 0.0)
    cluster.settle()
    assert cluster.clients[client_address(3)].current_name == "carol"
    assert not [p for p in cluster.presence(2) if p[0] == "renamed"]


def test_private_messages_cross_to_the_right_server_only() -> None:
    cluster = three()
    cluster.clients[client_address(1)].send(Whisper("bob", "psst"), "/msg bob psst", 0.0)
    cluster.settle()
    shown = {
        address: [(e.name, e.text, e.kind) for e in events if isinstance(e, RoomMessage)]
        for address, events in cluster.events.items()
    }
    assert shown == {
        client_address(1): [],
        client_address(2): [("alice", "psst", "private")],
        client_address(3): [],
    }


# -- history ----------------------------------------------------------------------------


def test_history_on_join_is_the_shared_history() -> None:
    cluster = three()
    cluster.say(1, "one")
    cluster.say(2, "two")
    cluster.settle()
    cluster.join(4, "dave", 1)
    assert cluster.replayed(4) == [("alice", "one"), ("bob", "two")]


def test_a_server_started_later_reads_the_history_and_shows_nothing_of_it() -> None:
    cluster = three()
    cluster.say(1, "before")
    cluster.settle()
    cluster.add_server(2)
    assert cluster.operator_events[2] == []
    cluster.join(4, "erin", 2)
    assert cluster.replayed(4) == [("alice", "before")]
    cluster.say(4, "after")
    cluster.settle()
    assert cluster.seen(1)[-1] == ("erin", "after")


# -- gaps and epochs ------------------------------------------------------------------


def test_a_lost_broadcast_is_filled_from_the_history() -> None:
    cluster = three()
    cluster.bus.deaf.add("s1")
    cluster.say(1, "lost 1")
    cluster.say(1, "lost 2")
    cluster.settle()
    assert cluster.seen(2) == []
    cluster.bus.deaf.clear()
    cluster.say(3, "heard")
    cluster.settle()
    assert cluster.seen(2) == [("alice", "lost 1"), ("alice", "lost 2"), ("carol", "heard")]


def test_a_new_epoch_tells_members_the_history_was_reset() -> None:
    cluster = three()
    cluster.say(1, "old")
    cluster.settle()
    cluster.bus.fail(cluster.now)
    cluster.bus.restore(cluster.now, wiped=True)
    cluster.settle()
    for number in (1, 2, 3):
        assert HISTORY_RESET in cluster.notices(number)
    cluster.say(2, "new")
    cluster.settle()
    assert cluster.seen(1)[-1] == ("bob", "new")
    cluster.join(4, "dave", 0)
    assert cluster.replayed(4) == [("bob", "new")]


# -- split and heal ---------------------------------------------------------------------


def test_a_split_keeps_local_chat_going_and_tells_everyone_once() -> None:
    cluster = three()
    cluster.bus.fail(cluster.now)
    cluster.settle()
    cluster.say(1, "a1")
    cluster.say(1, "a2")
    cluster.say(2, "b1")
    cluster.settle()
    assert cluster.seen(3) == [("alice", "a1"), ("alice", "a2")]  # local chat goes on
    assert cluster.seen(2) == []  # nothing crosses
    assert cluster.notices(1) == [LINK_LOST, STAYED_HERE]  # the sender: told once
    assert cluster.notices(2) == [LINK_LOST, STAYED_HERE]
    assert cluster.notices(3) == [LINK_LOST]
    assert RoomNotice(LINK_LOST) in cluster.operator_events[0]
    cluster.bus.restore(cluster.now)
    cluster.settle()
    for number in (1, 2, 3):
        assert cluster.notices(number)[-1] == LINK_RESTORED
    cluster.say(2, "b2")
    cluster.settle()
    assert cluster.seen(1)[-1] == ("bob", "b2")
    assert cluster.seen(3)[-1] == ("bob", "b2")


def test_a_server_cut_off_fills_what_others_said_when_it_heals() -> None:
    cluster = three()
    link = cluster.servers[1]
    cluster.bus.ports.pop("s1")
    link.bus_lost(cluster.now)
    cluster.say(1, "while you were out")
    cluster.settle()
    assert cluster.seen(2) == []
    cluster.bus.attach(link, cluster.now)
    cluster.settle()
    assert cluster.seen(2) == [("alice", "while you were out")]
    assert cluster.notices(2) == [LINK_LOST, LINK_RESTORED]


def test_a_paused_bus_does_not_stall_local_delivery_nor_duplicate_later() -> None:
    cluster = three()
    cluster.bus.held = True
    cluster.say(1, "stuck?")
    cluster.settle()
    assert cluster.seen(3) == []  # waiting for the bus
    cluster.advance(cluster.now + cluster.config.bus_timeout)
    assert cluster.seen(3) == [("alice", "stuck?")]  # the bus took too long: alone
    assert LINK_LOST in cluster.notices(3)
    cluster.bus.resume(cluster.now)
    cluster.settle()
    cluster.advance(cluster.now + 5)
    assert cluster.seen(3) == [("alice", "stuck?")]  # not twice
    assert cluster.seen(2) == [("alice", "stuck?")]  # and it did get out
    assert cluster.notices(3)[-1] == LINK_RESTORED
    cluster.say(2, "back")
    cluster.settle()
    assert cluster.seen(3)[-1] == ("bob", "back")


# -- presence expiry and moves ---------------------------------------------------------


def test_members_of_a_crashed_server_leave_when_their_presence_expires() -> None:
    cluster = three()
    cluster.crash(1)
    cluster.advance(cluster.config.presence_ttl - 1)
    assert not [p for p in cluster.presence(1) if p[0] == "left"]
    cluster.advance(cluster.config.presence_ttl + 2 * cluster.config.presence_refresh + 1)
    assert ("left", "bob", "lost with its server") in cluster.presence(1)
    assert "bob" not in [e.name for e in cluster.servers[0].room.roster(cluster.now).entries]


def test_a_client_moving_to_another_server_rejoins_quietly_keeping_its_name() -> None:
    cluster = three()
    alice = cluster.clients[client_address(1)]
    cluster.route[client_address(1)] = 1  # the kernel now sends alice to s1
    cluster.say(1, "still me")
    cluster.advance(cluster.now + 5)
    assert alice.current_name == "alice"
    assert cluster.seen(2) == [("alice", "still me")]
    assert cluster.seen(3) == [("alice", "still me")]
    assert not [p for n in (2, 3) for p in cluster.presence(n)]  # no join or leave notice
    assert "alice" in [m.name for m in cluster.servers[1].room.members.values()]
    assert "alice" not in [m.name for m in cluster.servers[0].room.members.values()]
    assert cluster.servers[0].room.remote  # s0 now knows alice as s1's
    # And nothing said meanwhile is lost to her.
    cluster.say(3, "welcome back")
    cluster.settle()
    assert cluster.seen(1)[-1] == ("carol", "welcome back")


# -- the envelope ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        RoomSaid(7, "alice", "hi ✓", 1.5, SaidKind.ACT, "t:00000000000000ff"),
        RoomSaid(None, "op", "", 0.0, SaidKind.SAY),
        RoomPresence(("10.0.0.1", 5), PresenceKind.RENAMED, "a", "b", 2.0, 3, "t:01", True),
        RoomWhisper("s2/9", "alice", "psst", 3.0),
    ],
)
def test_envelopes_round_trip_with_members_named_by_key(event: object) -> None:
    assert isinstance(event, RoomSaid | RoomPresence | RoomWhisper)
    envelope = Envelope(Origin("s1", "h:1"), 42, event)
    decoded = decode_envelope_untrusted(encode_envelope(envelope, lambda m: f"s1/{m}"))
    assert decoded.origin == Origin("s1", "h:1")
    assert decoded.number == 42
    if isinstance(event, RoomSaid):
        sender = None if event.sender is None else f"s1/{event.sender}"
        assert decoded.event == RoomSaid(
            sender, event.name, event.text, event.time, event.kind, event.owner
        )
    elif isinstance(event, RoomPresence):
        assert isinstance(decoded.event, RoomPresence)
        assert decoded.event.subject == "s1/('10.0.0.1', 5)"
    else:
        assert decoded.event == event


def test_a_malformed_broadcast_is_dropped_and_counted() -> None:
    cluster = three()
    server = cluster.servers[1]
    for junk in (b"", b"{", b"[]", b'{"from": 1}', b'{"from":"x","label":"","n":1,"event":"?"}'):
        cluster.bus.seq += 1
        server.bus_message(cluster.bus.epoch, cluster.bus.seq, junk, cluster.now)
    assert server.stats["dropped:bus-malformed"] == 5
    cluster.say(1, "fine")
    cluster.settle()
    assert cluster.seen(2)[-1] == ("alice", "fine")


def test_publishes_claim_and_release_names() -> None:
    cluster = three()
    link = cluster.servers[0].link
    assert link is not None
    cluster.clients[client_address(1)].close(cluster.now)
    cluster._exchange()
    (command,) = [c for c in cluster.bus.ports["s0"].bus_commands() if isinstance(c, Publish)]
    assert command.release is not None
    assert command.release.name_key == "alice"
    assert command.claim is None
    assert isinstance(decode_envelope_untrusted(command.payload).event, RoomPresence)
    assert [e for e in cluster.operator_events[0] if isinstance(e, PresenceNoticed)] == []
