"""Tier 3: the Trio layer with real UDP sockets on loopback and fake terminals."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
import trio.testing

from tests.fakes import FakeTerminal
from trio_udpchat import (
    Address,
    Config,
    Listening,
    MessageReceived,
    MessageTooLong,
    NoRecipient,
    NotDelivered,
    PeerJoined,
    PeerLeft,
    PendingListed,
    ServerAnswered,
    ServerCore,
    ServerRefused,
    ServerSilent,
    SessionLost,
    SessionStarted,
    StartupError,
    encode_frame,
    run_client,
    run_server,
)
from trio_udpchat._render import render
from trio_udpchat._wire import Data, Hello

LOOPBACK = "127.0.0.1"


async def start_server(
    nursery: trio.Nursery, host: str = LOOPBACK, port: int = 0, core: ServerCore | None = None
) -> tuple[FakeTerminal, Address]:
    terminal = FakeTerminal()
    address: Address = await nursery.start(partial(run_server, terminal, host, port, core=core))
    return terminal, address


async def start_client(
    nursery: trio.Nursery, address: Address, config: Config | None = None, plain: bool = False
) -> FakeTerminal:
    terminal = FakeTerminal()
    run = partial(run_client, terminal, address[0], address[1], config, plain=plain)
    await nursery.start(run)
    return terminal


@asynccontextmanager
async def running(seconds: float = 10) -> AsyncIterator[trio.Nursery]:
    """A nursery that is cancelled at the end of the block, the block bounded in time."""
    with trio.fail_after(seconds):
        async with trio.open_nursery() as nursery:
            yield nursery
            nursery.cancel_scope.cancel()


def udp_socket(family: int = socket.AF_INET) -> trio.socket.SocketType:
    return trio.socket.socket(family, socket.SOCK_DGRAM)


async def test_classic_exchange_renders_the_classic_lines() -> None:
    async with running() as nursery:
        server, address = await start_server(nursery)
        client = await start_client(nursery, address)
        client.enter("Hello, server!")
        said = await server.wait_for(MessageReceived)
        server.enter("Hello, client!")
        replied = await client.wait_for(MessageReceived)
    listening = server.of(Listening)[0]
    assert render(listening, "server") == f"Listening at ('127.0.0.1', {address[1]})"
    assert render(said, "server") == (
        f"The client at ('127.0.0.1', {said.sender[1]}) says 'Hello, server!'"
    )
    assert render(replied, "client") == "The server replied with 'Hello, client!'"
    assert said.plain is False


async def test_full_duplex_two_in_a_row_and_utf8_both_ways() -> None:
    async with running() as nursery:
        server, address = await start_server(nursery)
        client = await start_client(nursery, address)
        client.enter("héllo", "second 🎉")
        await server.wait_for(MessageReceived, lambda e: e.text == "second 🎉")
        server.enter("ça va ✓", "and again")
        await client.wait_for(MessageReceived, lambda e: e.text == "and again")
    assert [e.text for e in server.of(MessageReceived)] == ["héllo", "second 🎉"]
    assert [e.text for e in client.of(MessageReceived)] == ["ça va ✓", "and again"]


async def test_operator_line_before_anyone_spoke_is_not_sent() -> None:
    core = ServerCore()
    async with running() as nursery:
        server, _ = await start_server(nursery, core=core)
        server.enter("anyone there?")
        event = await server.wait_for(NoRecipient)
    assert event.left is None
    assert core.stats["datagrams_out"] == 0


async def test_client_eof_and_cancel_both_say_goodbye() -> None:
    async with running() as nursery:
        server, address = await start_server(nursery)
        polite = await start_client(nursery, address)
        polite.enter("bye soon")
        await server.wait_for(MessageReceived)
        polite.eof()
        first = await server.wait_for(PeerLeft)
        async with trio.open_nursery() as inner:
            # A client cancelled from outside (as CTRL+C does) still says goodbye.
            await start_client(inner, address)
            await server.wait_for(PeerJoined, lambda e: e.address != first.address)
            inner.cancel_scope.cancel()
        await server.wait_for(PeerLeft, lambda e: e.address != first.address)
        server.enter("still there?")
        assert (await server.wait_for(NoRecipient)).left == first.address


async def test_client_reports_refused_port_and_keeps_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with udp_socket() as probe:
        await probe.bind((LOOPBACK, 0))
        dead_port = probe.getsockname()[1]
    async with running() as nursery:
        client = await start_client(nursery, (LOOPBACK, dead_port))
        await client.wait_for(ServerRefused)
        client.enter("hello?")
        client.eof()
        lost = await client.wait_for(NotDelivered)
    assert lost.text == "hello?"
    assert len(client.of(ServerRefused)) == 1


async def test_silent_server_reported_then_late_server_gets_queued_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = Config()
    async with running(60) as nursery:
        with udp_socket() as black_hole:
            await black_hole.bind((LOOPBACK, 0))
            address = black_hole.getsockname()
            client = await start_client(nursery, address, config=config)
            client.enter("are you there?")
            start = trio.current_time()
            silent = await client.wait_for(ServerSilent)
            assert trio.current_time() - start == pytest.approx(config.server_silent_after)
        server, _ = await start_server(nursery, port=address[1])
        said = await server.wait_for(MessageReceived)
        await client.wait_for(ServerAnswered)
    assert silent.seconds == pytest.approx(config.server_silent_after)
    assert said.text == "are you there?"


async def test_restarted_server_resets_the_session_and_nothing_typed_is_lost() -> None:
    async with running() as nursery:
        async with trio.open_nursery() as first_life:
            server, address = await start_server(first_life)
            client = await start_client(nursery, address)
            client.enter("before")
            await server.wait_for(MessageReceived)
            first_life.cancel_scope.cancel()
        reborn, _ = await start_server(nursery, port=address[1])
        client.enter("sent into the restart")
        await client.wait_for(SessionLost)
        await client.wait_for(SessionStarted, lambda e: e.reconnect)
        client.enter("after")
        await reborn.wait_for(MessageReceived, lambda e: e.text == "after")
    assert [e.text for e in reborn.of(MessageReceived)] == ["sent into the restart", "after"]


async def test_plain_text_peer_and_garbage_against_the_server() -> None:
    core = ServerCore()
    async with running() as nursery:
        server, address = await start_server(nursery, core=core)
        with udp_socket() as peer:
            await peer.bind((LOOPBACK, 0))
            await peer.sendto(b"\xf9\x03\x03short", address)  # a frame with a bad checksum
            await peer.sendto(b"\xf9\x07\x01" + bytes(12), address)  # an unknown version
            await peer.sendto(b"one\ntwo\n", address)
            await server.wait_for(MessageReceived, lambda e: e.text == "two")
            server.enter("got it")
            data, _ = await peer.recvfrom(2048)
    assert data == b"got it\n"
    assert [(e.text, e.plain) for e in server.of(MessageReceived)] == [
        ("one", True),
        ("two", True),
    ]
    assert core.stats["dropped:bad-checksum"] == 1
    assert core.stats["dropped:bad-version"] == 1


async def test_plain_client_talks_to_a_plain_server() -> None:
    async with running() as nursery:
        with udp_socket() as plain_server:
            await plain_server.bind((LOOPBACK, 0))
            client = await start_client(nursery, plain_server.getsockname(), plain=True)
            client.enter("Hello, server!")
            data, addr = await plain_server.recvfrom(2048)
            await plain_server.sendto(b"Hello, client!", addr)
            replied = await client.wait_for(MessageReceived)
    assert data == b"Hello, server!"
    assert replied.text == "Hello, client!"


async def test_long_messages_are_fragmented_and_too_long_ones_refused() -> None:
    config = Config()
    core = ServerCore()
    longest = "é" * (config.max_message // 2)  # 64 KiB of UTF-8 in 56 fragments
    async with running() as nursery:
        server, address = await start_server(nursery, core=core)
        client = await start_client(nursery, address)
        client.enter("x" * 2000, longest, longest + "x", "line one\nline two")
        await server.wait_for(MessageReceived, lambda e: e.text.startswith("line one"))
        too_long = await client.wait_for(MessageTooLong)
    assert too_long.size == config.max_message + 1
    assert too_long.limit == config.max_message
    assert [e.text for e in server.of(MessageReceived)] == [
        "x" * 2000,
        longest,
        "line one\nline two",
    ]
    assert core.stats["datagrams_in"] >= 2 + 56


async def test_datagram_from_a_stranger_never_reaches_the_client() -> None:
    async with running() as nursery:
        server, address = await start_server(nursery)
        client = await start_client(nursery, address)
        client.enter("hi")
        said = await server.wait_for(MessageReceived)
        with udp_socket() as stranger:
            # The client's socket is connected to the server, so the OS filters this out.
            await stranger.sendto(encode_frame(Data(0, 0, 0, 0, b"spoofed")), said.sender)
            await stranger.sendto(encode_frame(Hello(1)), said.sender)
        server.enter("real")
        await client.wait_for(MessageReceived)
    assert [e.text for e in client.of(MessageReceived)] == ["real"]


async def test_ipv6_loopback() -> None:
    try:
        with udp_socket(socket.AF_INET6) as probe:
            await probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"cannot bind ::1 here: {exc}")
    async with running() as nursery:
        server, address = await start_server(nursery, host="::1")
        client = await start_client(nursery, address)
        client.enter("over six")
        said = await server.wait_for(MessageReceived)
    assert render(server.of(Listening)[0], "server") == f"Listening at ('::1', {address[1]})"
    assert said.sender[0] == "::1"


@pytest.mark.parametrize(
    ("host", "port", "words"),
    [("nonexistent.invalid", 3000, "cannot resolve"), ("198.51.100.1", 0, "cannot listen")],
)
async def test_server_startup_failures_are_one_sentence(host: str, port: int, words: str) -> None:
    with pytest.raises(StartupError, match=words), trio.fail_after(10):
        await run_server(FakeTerminal(), host, port)


async def test_port_in_use_is_a_startup_error() -> None:
    with udp_socket() as taken:
        await taken.bind((LOOPBACK, 0))
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match="already in use"), trio.fail_after(10):
            await run_server(FakeTerminal(), LOOPBACK, port)


async def test_a_person_typing_while_the_server_is_down_is_told_when_the_queue_is_full(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = Config(max_queued_messages=3)
    with udp_socket() as black_hole:
        await black_hole.bind((LOOPBACK, 0))
        async with running() as nursery:
            client = FakeTerminal(interactive=True)
            run = partial(run_client, client, LOOPBACK, black_hole.getsockname()[1], config)
            await nursery.start(run)
            client.enter("one", "two", "three", "four", "five")
            await client.wait_for(NotDelivered, lambda e: e.text == "five")
            client.enter("/pending")
            listed = await client.wait_for(PendingListed)
    assert listed.texts == ("one", "two", "three")
    # Nothing is lost silently: the overflow at once, the rest when the client stops.
    assert [(e.text, e.reason) for e in client.of(NotDelivered)] == [
        ("four", "the send queue is full"),
        ("five", "the send queue is full"),
        ("one", "the server never answered"),
        ("two", "the server never answered"),
        ("three", "the server never answered"),
    ]
