"""Hypothesis drives a room spanning three servers through bus failures, pauses,
wipes, lost broadcasts and clients moving between servers.

Whatever happens: nobody is shown a message twice, and nobody is shown their
own. While the bus never split the room, each sender's messages arrive in the
order typed, any two members agree on the order of what both were shown, and
once the faults end and someone speaks, every member has every message said
since they joined.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from tests.bus_helpers import Cluster, client_address

NAMES = ("ann", "ben", "cat", "dan")
SERVERS = 3


class RoomAcrossServers(RuleBasedStateMachine):
    """Four members on three servers, one bus that misbehaves."""

    def __init__(self) -> None:
        super().__init__()
        self.cluster = Cluster(SERVERS)
        for number, name in enumerate(NAMES):
            self.cluster.join(number, name, number % SERVERS)
        self.cluster.clear()
        self.said: list[tuple[str, str]] = []
        self.count = 0
        self.split = False  # the bus failed, was wiped or paused: orders may differ

    @rule(who=st.integers(0, len(NAMES) - 1))
    def say(self, who: int) -> None:
        self.count += 1
        text = f"{NAMES[who]}-{self.count}"
        self.cluster.say(who, text)
        self.said.append((NAMES[who], text))
        self.cluster.settle()

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.5, 5.0]))
    def wait(self, seconds: float) -> None:
        self.cluster.advance(self.cluster.now + seconds)

    @precondition(lambda self: self.cluster.bus.up)
    @rule()
    def bus_fails(self) -> None:
        self.split = True
        self.cluster.bus.fail(self.cluster.now)
        self.cluster.settle()

    @precondition(lambda self: not self.cluster.bus.up)
    @rule(wiped=st.booleans())
    def bus_returns(self, wiped: bool) -> None:
        self.cluster.bus.restore(self.cluster.now, wiped=wiped)
        self.cluster.settle()

    @precondition(lambda self: not self.cluster.bus.held)
    @rule()
    def bus_pauses(self) -> None:
        self.split = True
        self.cluster.bus.held = True

    @precondition(lambda self: self.cluster.bus.held)
    @rule()
    def bus_resumes(self) -> None:
        self.cluster.bus.resume(self.cluster.now)
        self.cluster.settle()

    @rule(server=st.integers(0, SERVERS - 1), deaf=st.booleans())
    def broadcasts_lost(self, server: int, deaf: bool) -> None:
        # A server that hears nothing back within bus_timeout goes on alone: a split.
        # (A gap filled in time is tests/test_roombus.py's.)
        self.split = self.split or deaf
        (self.cluster.bus.deaf.add if deaf else self.cluster.bus.deaf.discard)(f"s{server}")

    @rule(who=st.integers(0, len(NAMES) - 1), server=st.integers(0, SERVERS - 1))
    def client_moves(self, who: int, server: int) -> None:
        self.cluster.route[client_address(who)] = server
        self.cluster.advance(self.cluster.now + 0.5)

    # -- what must always hold ---------------------------------------------------------

    @invariant()
    def nobody_sees_a_message_twice_or_their_own(self) -> None:
        for number, name in enumerate(NAMES):
            seen = self.cluster.seen(number)
            assert len(seen) == len(set(seen)), f"{name} saw a message twice: {seen}"
            assert all(sender != name for sender, _ in seen)

    @invariant()
    def each_senders_order_is_kept(self) -> None:
        if self.split:
            # A sender that moves to another server while the bus is split can have
            # its older message (applied alone on the first) arrive after a newer one
            # when the bus heals. Documented, not fixed.
            return
        for number in range(len(NAMES)):
            seen = self.cluster.seen(number)
            for name in NAMES:
                counts = [int(t.rsplit("-", 1)[1]) for s, t in seen if s == name]
                assert counts == sorted(counts)

    @invariant()
    def one_order_while_the_bus_held_together(self) -> None:
        if self.split:
            return
        orders = [self.cluster.seen(number) for number in range(len(NAMES))]
        for mine in orders:
            for theirs in orders:
                shared = set(mine) & set(theirs)
                assert [m for m in mine if m in shared] == [m for m in theirs if m in shared]

    def teardown(self) -> None:
        """Heal everything, let one member speak, and check nothing was lost."""
        cluster = self.cluster
        if not cluster.bus.up:
            cluster.bus.restore(cluster.now)
        if cluster.bus.held:
            cluster.bus.resume(cluster.now)
        cluster.bus.deaf.clear()
        cluster.advance(cluster.now + 5.0)
        if self.split:
            return  # what was said alone stays on its server, by design
        self.say(0)
        cluster.advance(cluster.now + 5.0)
        for number, name in enumerate(NAMES):
            seen = set(cluster.seen(number))
            missing = [m for m in self.said if m[0] != name and m not in seen]
            assert not missing, f"{name} never saw {missing}"


RoomAcrossServers.TestCase.settings = settings(stateful_step_count=25)
test_room_across_servers = RoomAcrossServers.TestCase
