"""Tier 2: a ``RuleBasedStateMachine`` over a ClientCore, a ServerCore and a lossy link.

The link (``tests/lossy_link.py``) holds every datagram in flight until a rule
delivers it (oldest first, or any one), drops, duplicates or corrupts it; the
client may roam (NAT rebinding) and the server may be replaced by a fresh
instance. Time passes in the ``delay`` rule and, per the drawn latency, before
each delivery; due timers fire as a good (or, drawn, a late) timer would.

After every step: no text shown twice, texts shown in send order, no timer in
the past, windows/queues/buffers/peers within their limits, MessageDelivered
only for texts the peer showed and never together with NotDelivered, and the
server's room holding only live sessions (the client joins it on every
session; the operator's replies go through it). At the
end (and in the ``settle`` rule once the link healed) the run settles, and then
every text sent was shown by the other side or reported NotDelivered.

The machine tolerates one thing, narrowly (:data:`TOLERATE_REDELIVERY`): after
a server *restart* a text whose ack was lost may be shown again (at least once,
never lost). Within one server's lifetime delivery is exactly once: a session
the server ended is remembered, and its Reset says what had arrived.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from dataclasses import replace
from typing import Final

import pytest
from hypothesis import event, settings, target
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tests.lossy_link import (
    CLIENT_ADDR,
    SERVER_ADDR,
    UNLIMITED,
    Datagram,
    Simulation,
    flip_bit,
    sim_config,
)
from trio_udpchat._client import ClientCore
from trio_udpchat._config import Config
from trio_udpchat._errors import RemoteProtocolError
from trio_udpchat._events import (
    Address,
    MessageDelivered,
    NotDelivered,
    PeerLeft,
    PeerMoved,
    ServerSilent,
    SessionLost,
    SessionStarted,
)
from trio_udpchat._wire import Ack, Hello, Welcome, decode_frame_untrusted, encode_frame

#: Shorter than the defaults where that only saves virtual time; the window
#: and queue sizes stay at their defaults except in "small", which exists to
#: push against them.
CONFIGS: Final[dict[str, Config]] = {
    "stock": UNLIMITED,
    "quick": sim_config(Config(give_up_after=10.0, keepalive_after=5.0, session_expiry=30.0)),
    "small": sim_config(
        Config(
            give_up_after=10.0,
            keepalive_after=5.0,
            session_expiry=30.0,
            window=4,
            send_queue=16,
            reorder_window=8,
            max_queued_messages=4,
            max_peers=2,
        )
    ),
}

#: Delays worth trying: the first RTO, backoffs, the keepalive, silence, give-up
#: and expiry times of the configs above, plus any float.
DELAYS: Final = st.one_of(
    st.sampled_from([0.05, 0.2, 1.0, 3.0, 5.0, 10.0, 15.0, 30.0, 61.0]),
    st.floats(min_value=0.0, max_value=70.0, allow_nan=False, allow_infinity=False),
)
#: Text after the unique prefix: usually nothing, sometimes enough for several
#: fragments (1180 payload bytes each), in 1-, 2- and 4-byte characters.
PADDING: Final = st.one_of(
    st.just(""),
    st.builds(
        lambda char, n: char * n,
        st.sampled_from(["x", "\u00e9", "\U0001f600"]),
        st.integers(min_value=1, max_value=4096),
    ),
)
#: After a server restart (a Reset that knows nothing of the session) the client
#: resends everything unacknowledged: a text the old server showed whose ack was
#: lost is shown again. Only such texts may be shown twice: at least once by design.
TOLERATE_REDELIVERY: Final = True
#: The link may heal only after this many steps, so the faults get their turn.
HEAL_AFTER_STEPS: Final = 20
#: Index into the flight list (taken modulo its length).
INDEX: Final = st.integers(min_value=0, max_value=63)


class ChatMachine(RuleBasedStateMachine):
    """One client and one server over a link the rules torment."""

    def __init__(self) -> None:
        super().__init__()
        self._sim: Simulation | None = None
        self.sent = 0
        self.steps = 0

    @property
    def sim(self) -> Simulation:
        assert self._sim is not None
        return self._sim

    @initialize(
        seed=st.integers(min_value=0, max_value=2**32 - 1),
        config=st.sampled_from(sorted(CONFIGS)),
        loss=st.sampled_from([0.0, 0.1, 0.3]),
        latency=st.sampled_from([0.0, 0.01, 0.1]),
    )
    def start(self, seed: int, config: str, loss: float, latency: float) -> None:
        """Seeded session ids and nonces; some random loss on top of the rules'
        faults; each delivery takes ``latency`` seconds."""
        self._sim = Simulation(seed, CONFIGS[config], loss=loss, latency=latency)
        self._sim.tolerate_redelivery = TOLERATE_REDELIVERY

    def _text(self, prefix: str, padding: str = "") -> str:
        self.sent += 1
        return f"{prefix}{self.sent}:{padding}"

    # -- the two users ------------------------------------------------------

    @rule(padding=PADDING)
    def client_sends(self, padding: str) -> None:
        self.sim.client_send(self._text("c", padding))

    @rule(count=st.integers(min_value=2, max_value=40))
    def client_sends_burst(self, count: int) -> None:
        """Short texts typed faster than the window drains (pasted lines)."""
        for _ in range(count):
            self.sim.client_send(self._text("c"))

    @rule(padding=PADDING)
    def server_replies(self, padding: str) -> None:
        """The operator answers whoever spoke last."""
        self.sim.server_reply(self._text("s", padding))

    @rule(count=st.integers(min_value=2, max_value=40))
    def server_replies_burst(self, count: int) -> None:
        for _ in range(count):
            self.sim.server_reply(self._text("s"))

    # -- the link -----------------------------------------------------------

    def _in_flight(self) -> bool:
        return bool(self.sim.link.in_flight)

    def _faulty(self) -> bool:
        return bool(self.sim.link.in_flight) and not self.sim.link.healed

    @precondition(_in_flight)
    @rule()
    def deliver_next(self) -> None:
        self.sim.deliver(0)

    @precondition(_in_flight)
    @rule(index=INDEX)
    def deliver_out_of_order(self, index: int) -> None:
        self.sim.deliver(index)

    @precondition(_in_flight)
    @rule()
    def deliver_all(self) -> None:
        """Everything now in flight, in order (what the cores send meanwhile waits)."""
        for _ in range(len(self.sim.link.in_flight)):
            self.sim.deliver(0)

    @precondition(_faulty)
    @rule(index=INDEX)
    def drop(self, index: int) -> None:
        self.sim.drop(index)

    @precondition(_faulty)
    @rule(index=INDEX)
    def duplicate(self, index: int) -> None:
        self.sim.duplicate(index)

    @precondition(_faulty)
    @rule(index=INDEX, bit=st.integers(min_value=0, max_value=2**16))
    def corrupt(self, index: int, bit: int) -> None:
        """Flip a bit the frame layout can catch; see ``lossy_link.detectable_bits``."""
        self.sim.corrupt(index, bit)

    @precondition(_faulty)
    @rule(index=INDEX, bit=st.integers(min_value=0, max_value=2**16))
    def corrupt_anywhere(self, index: int, bit: int) -> None:
        """Flip any bit, also where no check can tell (as a forger could, or a link
        without UDP checksums): from then on only crash-freedom, timers, bounds
        and liveness are checked."""
        self.sim.corrupt(index, bit, anywhere=True)

    @rule(seconds=DELAYS, precise=st.booleans())
    def delay(self, seconds: float, precise: bool) -> None:
        self.sim.advance(seconds, precise=precise)

    @precondition(lambda self: not self.sim.link.healed)
    @rule()
    def roam(self) -> None:
        """NAT rebinding: the client's port changes; replies to the old one are lost."""
        self.sim.roam()

    @precondition(lambda self: not self.sim.link.healed and self.sim.client.state == "connected")
    @rule(padding=PADDING)
    def roam_and_speak(self, padding: str) -> None:
        """Rebinding mid-session, and a text that tells the server the new address."""
        self.sim.roam()
        self.sim.client_send(self._text("c", padding))

    @precondition(lambda self: not self.sim.link.healed and self.sim.restarts < 2)
    @rule()
    def restart_server(self) -> None:
        self.sim.restart_server()

    @precondition(lambda self: not self.sim.link.healed and self.steps >= HEAL_AFTER_STEPS)
    @rule()
    def heal(self) -> None:
        """No more faults: no loss, duplication, corruption or rebinding from here on."""
        self.sim.link.heal()

    @precondition(lambda self: self.sim.link.healed)
    @rule()
    def settle(self) -> None:
        """Once healed: run to quiescence, then everything is received or reported."""
        self.sim.settle()
        self.sim.check_settled()

    # -- invariants ---------------------------------------------------------

    @invariant()
    def nothing_received_twice(self) -> None:
        self.steps += 1  # one invariant that counts the steps (for ``heal``)
        self.sim.check_no_duplicates()

    @invariant()
    def order_kept_per_sender(self) -> None:
        self.sim.check_order()

    @invariant()
    def timers_not_in_the_past(self) -> None:
        self.sim.check_timers()

    @invariant()
    def memory_bounded(self) -> None:
        self.sim.check_bounds()

    @invariant()
    def reports_true(self) -> None:
        """MessageDelivered only for what arrived; never both delivered and not."""
        self.sim.check_reports()

    @invariant()
    def room_consistent(self) -> None:
        """Room members are live sessions; only the operator's texts are pending."""
        self.sim.check_room()

    def teardown(self) -> None:
        # Hypothesis calls this in a ``finally``: after a failure, leave that failure alone.
        if self._sim is None or sys.exc_info()[0] is not None:
            return
        sim = self.sim
        steps = sim.settle()
        sim.check_settled()
        sim.check_all()
        event(f"settled in {'<100' if steps < 100 else '>=100'} steps")
        for kind, name in ((SessionLost, "session lost"), (ServerSilent, "server silent")):
            if sim.client_log.count(kind):
                event(name)
        if sim.server_log.count(PeerMoved):
            event("peer moved")
        if sim.restarts:
            event("server restarted")
        if sim.client_log.not_delivered or sim.server_log.not_delivered:
            event("NotDelivered reported")
        if sim.redelivery_allowed:
            event("known bug: a shown text requeued after a Reset")
        if sim.tampered:
            event("corrupted where frames have no check")
        if sim.max_peer_count > sim.config.max_peers:
            event("peer_count above max_peers (plain peers count separately)")
        # Steer generation toward runs where much happened.
        target(float(len(sim.server_log.received) + len(sim.client_log.received)), label="received")
        target(float(sim.client_log.count(SessionStarted)), label="sessions")


ChatMachine.TestCase.settings = settings(
    max_examples=max(100, settings().max_examples),
    stateful_step_count=50,
    deadline=None,
)
TestChatMachine = ChatMachine.TestCase


# -- deterministic runs over the same link ---------------------------------


def _lossy_run(sim: Simulation, rng: random.Random, messages: int, start: int = 0) -> None:
    """Send ``messages`` texts from the client (and a reply to every other one).

    After each, deliver as many datagrams as are in flight, each picked at
    random from the flight list (so they arrive out of order, and some wait
    longer), then let up to 0.3 s pass.
    """
    for i in range(start, start + messages):
        sim.client_send(f"c{i}" + ("y" * 2500 if i % 17 == 0 else ""))
        if i % 2 and sim.server_log.received:  # someone to reply to
            sim.server_reply(f"s{i}")
        for _ in range(len(sim.link.in_flight)):
            sim.deliver(rng.randrange(len(sim.link.in_flight)))
        sim.advance(rng.uniform(0.0, 0.3))
        sim.check_all()


def _strict(sim: Simulation) -> Simulation:
    sim.tolerate_redelivery = False
    return sim


def test_200_messages_under_loss_duplication_and_reordering() -> None:
    sim = _strict(Simulation(7, UNLIMITED, loss=0.2, duplicate=0.05))
    rng = random.Random(7)
    # Connect first: 200 texts typed before the welcome would overflow
    # max_queued_messages, which is not what this test is about.
    sim.settle(shuffle=rng)
    sim.link.impair(loss=0.2, duplicate=0.05)
    _lossy_run(sim, rng, 200)
    sim.settle(shuffle=rng)
    sim.check_settled()
    sim.check_all()
    assert sim.link.stats["lost"] > 100
    assert sim.link.stats["duplicated"] > 10
    assert sim.server_log.received == sim.client_sent
    assert sim.client_log.received == sim.server_sent
    assert len(sim.server_sent) > 80
    assert sim.server_log.not_sent == []
    assert sim.client_log.not_delivered == sim.server_log.not_delivered == []
    assert sim.client_log.delivered == sim.client_sent
    assert sim.server_log.delivered == sim.server_sent


def _restart_run(seed: int, *, loss: float, quiet: bool) -> Simulation:
    """100 texts, a server restart, 100 more; ``quiet``: settle before the restart."""
    sim = Simulation(seed, UNLIMITED, loss=loss, duplicate=0.05 if loss else 0.0)
    rng = random.Random(seed)
    sim.settle(shuffle=rng)
    sim.link.impair(loss=loss, duplicate=0.05 if loss else 0.0)
    _lossy_run(sim, rng, 100)
    if quiet:
        sim.settle(shuffle=rng)
        sim.link.impair(loss=loss, duplicate=0.05 if loss else 0.0)
    sim.restart_server()
    _lossy_run(sim, rng, 100, start=100)
    sim.settle(shuffle=rng)
    sim.check_settled()
    sim.check_all()
    lost = sim.client_log.events.index(SessionLost(SERVER_ADDR))
    assert SessionStarted(SERVER_ADDR, reconnect=True) in sim.client_log.events[lost:]
    assert [server.session_count for server in sim.servers] == [1, 1]
    return sim


@pytest.mark.parametrize("seed", [3, 11])
def test_server_restart_when_quiet(seed: int) -> None:
    """Restart with nothing in flight: Reset, SessionLost, reconnect; then under
    loss every text is shown exactly once by one of the two servers, in order."""
    sim = _strict(_restart_run(seed, loss=0.2, quiet=True))
    sim.check_no_duplicates()
    assert sim.server_log.received == sim.client_sent
    assert sim.client_log.received == sim.server_sent
    assert sim.client_log.not_delivered == []


@pytest.mark.parametrize("seed", [11, 15, 21])
def test_server_restart_mid_flight(seed: int) -> None:
    """Restart with texts in flight, under loss: every text reaches one of the two
    servers or is reported NotDelivered, in order, at most once -- except that a
    text the old server showed but had not acknowledged yet may be shown again
    (the known bug below; ``_restart_run`` checks with it tolerated)."""
    sim = _restart_run(seed, loss=0.2, quiet=False)
    received = set(sim.server_log.received)
    failed = set(sim.client_log.not_delivered)
    assert all(text in received or text in failed for text in sim.client_sent)


def test_server_restart_mid_flight_may_repeat_but_never_loses() -> None:
    """At least once across a restart: repeats are exactly the texts requeued after
    the unknown Reset that the old server had shown (its ack lost at the crash)."""
    sim = _restart_run(21, loss=0.2, quiet=False)
    counts = Counter(sim.server_log.received)
    repeated = {text for text, n in counts.items() if n > 1}
    assert repeated <= set(sim.redelivery_allowed)
    assert all(text in counts or text in sim.client_log.not_delivered for text in sim.client_sent)


# -- regressions as minimal deterministic reproductions -------------------------


def _connected(config: Config | None = None) -> Simulation:
    sim = _strict(Simulation(1, config))
    sim.settle()
    assert isinstance(sim.client_log.events[-1], SessionStarted)
    return sim


def _take(sim: Simulation, kind: type[object], dst: Address) -> Datagram:
    """Remove the first in-flight datagram of frame type ``kind`` going to ``dst``."""
    for i, datagram in enumerate(sim.link.in_flight):
        if datagram.dst == dst and isinstance(decode_frame_untrusted(datagram.data), kind):
            return sim.link.take(i)
    raise AssertionError(f"no {kind.__name__} to {dst} in flight")


def test_no_text_shown_twice_after_server_gives_up() -> None:
    sim = _connected(CONFIGS["quick"])  # give_up_after=10
    sim.client_send("c0")
    sim.settle()
    sim.server_reply("s1")  # sent at t=0: the server gives up on it at t=10 ...

    def lose_everything_to_the_client() -> None:
        sim.link.in_flight = [d for d in sim.link.in_flight if d.dst == SERVER_ADDR]

    lose_everything_to_the_client()  # ... as it never arrives
    sim.advance(5.0)
    lose_everything_to_the_client()
    sim.client_send("c2")
    while sim.link.in_flight:  # the server shows c2 (after the client's keepalive) ...
        sim.deliver(0)
        lose_everything_to_the_client()  # ... but its acks are lost
    assert sim.server_log.received == ["c0", "c2"]
    for _ in range(20):  # the client retransmits c2; those wait in flight
        sim.advance(0.5)
        lose_everything_to_the_client()
        if not sim.server.session_count:
            break
    assert sim.server_log.count(PeerLeft) == 1  # t=10: "not answering"
    assert sim.server_log.not_delivered == ["s1"]
    sim.settle()  # a retransmitted c2 -> Reset (it had arrived) -> SessionLost, no resend
    assert sim.client_log.count(SessionLost) == 1
    assert sim.server_log.received == ["c0", "c2"], "the server showed c2 twice"


def test_a_flipped_ack_is_caught_by_the_checksum() -> None:
    sim = _connected(sim_config(Config(ack_every=2)))  # the join and c0: acked at once
    for i in range(4):
        sim.client_send(f"c{i}")
    first = sim.link.in_flight[0]
    sim.link.in_flight.clear()  # c1, c2, c3 are lost
    sim._arrive(first)
    ack = _take(sim, Ack, CLIENT_ADDR)
    frame = decode_frame_untrusted(ack.data)
    assert isinstance(frame, Ack)
    assert (frame.next, frame.bitmap) == (2, 0)  # the join (seq 0) and c0
    # Ack.next is bytes 15..18; bit 151 is its 0x01 bit: next 2 -> 3 would
    # "acknowledge" c1, but the CRC-32 trailer no longer matches.
    forged = flip_bit(ack.data, 151)
    with pytest.raises(RemoteProtocolError, match="checksum"):
        decode_frame_untrusted(forged)
    sim._arrive(Datagram(forged, ack.src, ack.dst))
    assert sim.client.stats["dropped:bad-checksum"] == 1
    sim.pump()
    assert sim.client_log.count(MessageDelivered) == 0  # the forged ack acknowledged nothing
    sim.settle()
    assert sim.server_log.received == ["c0", "c1", "c2", "c3"]
    sim.check_reports()


def test_shown_yet_reported_not_delivered() -> None:
    """Why check_settled says "received or reported", not "exactly one of them":
    the server shows c0, every ack is lost, the client gives up and reports it."""
    sim = _connected(CONFIGS["quick"])
    sim.client_send("c0")
    for _ in range(100):
        sim.link.in_flight = [d for d in sim.link.in_flight if d.dst == SERVER_ADDR]
        if sim.link.in_flight:
            sim.deliver(0)
        else:
            sim.advance(0.5)
        if sim.client_log.not_delivered:
            break
    assert sim.server_log.received == ["c0"]
    assert sim.client_log.not_delivered == ["c0"]
    sim.settle()
    sim.check_settled()
    sim.check_all()


def test_selective_ack_is_not_delivery() -> None:
    """Regression: a text the server holds behind a gap is not reported delivered,
    and when that session ends it is reported not delivered (it was never shown)."""
    sim = _connected(CONFIGS["quick"])
    sim.client_send("c0")
    sim.client_send("c1")
    sim.drop(0)  # c0 is lost (and every retransmission of it, below)
    sim.deliver(0)  # c1 waits in the server's reorder buffer; its ack says so
    sim.deliver(0)
    assert sim.client_log.delivered == []
    for _ in range(100):  # the client gives up on c0 and says hello again
        sim.link.in_flight.clear()
        sim.advance(0.5)
        if sim.client_log.not_delivered:
            break
    sim.settle()  # the new hello ends the old session on the server, buffer and all
    assert sim.client_log.not_delivered == ["c0", "c1"]
    assert sim.server_log.received == []
    sim.check_settled()
    sim.check_all()


def test_give_up_deadline_is_handled_when_due() -> None:
    """Regression: the give-up deadline get_timer() reports is due for handle_timer
    even where first_sent + give_up_after - first_sent < give_up_after in floats."""
    start = 22.73601671263322  # (start + 10.0) - start == 9.999999999999996
    client = ClientCore(SERVER_ADDR, CONFIGS["quick"], randbits=random.Random(0).getrandbits)
    client.start(start)
    [(hello, _)] = client.datagrams_to_send(start)
    frame = decode_frame_untrusted(hello)
    assert isinstance(frame, Hello)
    client.receive_datagram(encode_frame(Welcome(frame.nonce, 1, 60_000)), SERVER_ADDR, start)
    client.send_text("c1", start)
    client.datagrams_to_send(start)  # never acknowledged
    for _ in range(10):  # retransmissions at +1, +3, +7, then the give-up at +10
        due = client.get_timer()
        assert due is not None
        client.handle_timer(due)
        client.datagrams_to_send(due)
        if due >= start + 10.0:
            break
    assert due == start + 10.0
    assert NotDelivered("c1", "the server did not acknowledge it") in client.pop_events()
    after = client.get_timer()
    assert after is not None
    assert after > due


def test_a_rejoin_replays_the_history_which_is_not_shown_as_received() -> None:
    """After a session the server ended, the client joins again and the room replays
    what was said (its own texts too): room lines marked as history, not received again."""
    sim = _connected(CONFIGS["quick"])
    for text in ("c0", "c1"):
        sim.client_send(text)
    sim.settle()
    for _ in range(100):  # cut the client off until it gives up and says hello again
        sim.link.in_flight.clear()
        sim.advance(0.5)
        if sim.client.state == "connecting":
            break
    sim.settle()
    assert sim.client_log.count(SessionStarted) == 2
    assert sim.server_log.count(PeerLeft) == 1
    assert sim.client_log.room == ["c0", "c1"]  # the replay
    assert sim.client_log.received == []
    assert sim.server_log.received == ["c0", "c1"]
    sim.check_settled()
    sim.check_all()


def _rejoin_after_a_busy_room(
    config: Config, messages: int, latency: float, length: int = 0
) -> Simulation:
    """A room where ``messages`` texts (padded to ``length``) were said; then the client
    is cut off until it gives up and joins again, over a link that takes ``latency``
    per datagram."""
    sim = _strict(Simulation(0, config, latency=latency))
    sim.settle()
    for i in range(messages):
        sim.client_send(f"c{i}".ljust(length, "."))
        sim.settle()
    for _ in range(200):
        sim.link.in_flight.clear()
        sim.advance(0.5)
        if sim.client.state == "connecting":
            break
    return sim


def test_a_rejoin_with_a_short_history_settles_on_a_slow_link() -> None:
    sim = _rejoin_after_a_busy_room(CONFIGS["quick"], 40, latency=0.1)
    sim.settle()
    assert sim.client_log.room == ["c36", "c37", "c38", "c39"]  # history_count=4
    sim.check_all()


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="liveness: each (re)join replays up to history_count messages; on a link slow "
    "enough that the replay outlasts give_up_after, the server gives up, the client "
    "rejoins, the whole replay starts again, and the session never settles",
)
def test_a_rejoin_on_a_slow_link_settles_despite_the_history_replay() -> None:
    config = replace(CONFIGS["quick"], history_count=100, history_bytes=65536)  # the defaults
    # Texts too long for two to share a packet: 40 datagrams of replay.
    sim = _rejoin_after_a_busy_room(config, 40, latency=0.1, length=700)  # 10 datagrams a second
    sim.settle()
    assert sim.server_log.count(PeerLeft) == 1  # fails: 2, the server gave up on the replay


def test_a_replay_of_short_texts_goes_in_bundles_and_settles_on_a_slow_link() -> None:
    # The xfail's case with short texts: the 40 replayed messages share a few packets.
    config = replace(CONFIGS["quick"], history_count=100, history_bytes=65536)
    sim = _rejoin_after_a_busy_room(config, 40, latency=0.1)
    sim.settle()
    assert sim.server_log.count(PeerLeft) == 1
    assert sim.client_log.room == [f"c{i}" for i in range(40)]
    assert sim.server.stats["bundled"] >= 40
    sim.check_all()
