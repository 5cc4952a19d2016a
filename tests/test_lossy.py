"""Tier 3: real UDP on loopback through a seeded lossy relay, under a virtual clock."""

from __future__ import annotations

from functools import partial

import trio
import trio.testing

from tests.fakes import FakeTerminal
from tests.lossy_relay import Impairment, LossyRelay
from tests.test_run import running, start_client, start_server
from trio_udpchat import (
    Address,
    Config,
    MessageDelivered,
    MessageReceived,
    NotDelivered,
    PeerMoved,
    ServerCore,
    SessionStarted,
    run_server,
)

ROUGH = Impairment(loss=0.2, duplicate=0.05, delay=(0.0, 0.05), seed=7)


async def start_relay(
    nursery: trio.Nursery, upstream: Address, link: Impairment
) -> tuple[LossyRelay, Address]:
    relay = LossyRelay(upstream, link)
    front: Address = await nursery.start(relay.run)
    return relay, front


def texts(terminal: FakeTerminal) -> list[str]:
    return [event.text for event in terminal.of(MessageReceived)]


async def test_200_messages_each_way_arrive_once_in_order_over_a_rough_link(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sent = [f"message {i}" for i in range(200)]
    replies = [f"reply {i}" for i in range(50)]
    unlimited = ServerCore(Config(rate_limit=0))  # a burst of 200: no "slow down"
    async with running(600) as nursery:
        server, address = await start_server(nursery, core=unlimited)
        relay, front = await start_relay(nursery, address, ROUGH)
        client = await start_client(nursery, front)
        client.enter(*sent)
        await server.wait_for(MessageReceived, lambda e: e.text == sent[-1])
        server.enter(*replies)
        await client.wait_for(MessageReceived, lambda e: e.text == replies[-1])
        await client.wait_for(MessageDelivered, lambda e: e.text == sent[-1])
    assert texts(server) == sent
    assert texts(client) == replies
    assert client.of(NotDelivered) == []
    assert relay.dropped > 20
    assert relay.duplicated > 2


async def test_server_restart_mid_conversation_over_a_rough_link(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(600) as nursery:
        async with trio.open_nursery() as first_life:
            server, address = await start_server(first_life)
            _relay, front = await start_relay(nursery, address, ROUGH)
            client = await start_client(nursery, front)
            client.enter("before the restart")
            await server.wait_for(MessageReceived)
            await client.wait_for(MessageDelivered)
            first_life.cancel_scope.cancel()
        client.enter("while it was down")
        await trio.sleep(5)  # virtual time (autojump_clock): the server stays down a while
        reborn = FakeTerminal()
        await nursery.start(partial(run_server, reborn, "127.0.0.1", address[1]))
        await client.wait_for(SessionStarted, lambda e: e.reconnect)
        client.enter("after")
        await reborn.wait_for(MessageReceived, lambda e: e.text == "after")
    assert texts(reborn) == ["while it was down", "after"]


async def test_client_keeps_its_session_when_its_source_port_changes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    core = ServerCore()
    async with running(600) as nursery:
        server, address = await start_server(nursery, core=core)
        relay, front = await start_relay(nursery, address, Impairment(seed=1))
        client = await start_client(nursery, front)
        client.enter("from the old port")
        first = await server.wait_for(MessageReceived)
        await relay.rebind()
        client.enter("from the new port")
        second = await server.wait_for(MessageReceived, lambda e: e.text == "from the new port")
        moved = await server.wait_for(PeerMoved)
        server.enter("following you")
        await client.wait_for(MessageReceived)
    assert moved.old == first.sender
    assert moved.new == second.sender != first.sender
    assert core.session_count == 1
    assert len(client.of(SessionStarted)) == 1  # one session all along
