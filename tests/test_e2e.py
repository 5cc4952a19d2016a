"""Tier 4: the real program as a subprocess, over real UDP on loopback.

Pipes for the classic transcript, pexpect for the terminal, and plain-text
peers written with the stdlib ``socket`` module for interoperability.
"""

from __future__ import annotations

import itertools
import random
import re
import signal
from collections.abc import Callable, Iterator

import pytest

from tests.e2e_helpers import (
    CLIENT_PROMPT,
    CONSOLE_SCRIPT,
    LOCALHOST,
    SERVER_PROMPT,
    SHUTDOWN_LIMIT,
    Exit,
    Launcher,
    Program,
    can_bind,
    command,
    end_tty,
    listening_port,
    reply,
    run_to_end,
    say,
    server_replied,
    server_says,
    udp_socket,
)
from trio_udpchat import Config, __version__
from trio_udpchat._render import NOT_ENCRYPTED

pytestmark = pytest.mark.e2e

HELLO_SERVER = "Hello, server!"
HELLO_CLIENT = "Hello, client!"
NON_ASCII = ("héllo", "🎉", "héllo wörld 🎉 ✓")


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    """Starts programs for a test and kills whatever is left when it ends."""
    with Launcher() as launcher:
        yield launcher


# -- the classic demo, through pipes ------------------------------------------


def test_classic_transcript_byte_for_byte(launcher: Launcher) -> None:
    server, port = launcher.server()
    client = launcher.client(port)
    client_port = say(client, server, HELLO_SERVER)
    reply(server, client, HELLO_CLIENT)

    client_exit = client.eof()
    server_exit = server.eof()

    client_exit.assert_clean()
    server_exit.assert_clean()
    assert client_port not in (0, port)
    server_transcript = (
        f"Listening at ('127.0.0.1', {port})\n"
        f"The client at ('127.0.0.1', {client_port}) says 'Hello, server!'\n"
    )
    assert server_exit.stdout == server_transcript.encode()
    assert client_exit.stdout == b"The server replied with 'Hello, client!'\n"


def test_messages_in_a_row_both_ways(launcher: Launcher) -> None:
    server, client, client_port = launcher.chatting()
    client.write(b"one\ntwo\r\n")  # two lines in one write; a CRLF ending is a newline
    assert server.read_line() == server_says(client_port, "one")
    assert server.read_line() == server_says(client_port, "two")
    server.write_line("three")
    server.write_line("four")
    assert client.read_line() == server_replied("three")
    assert client.read_line() == server_replied("four")


def test_non_ascii_both_ways(launcher: Launcher) -> None:
    server, client, client_port = launcher.chatting()
    for text in NON_ASCII:
        assert say(client, server, text) == client_port
        reply(server, client, text)
    assert server.eof().stdout.decode("utf-8").endswith(f"says {NON_ASCII[-1]!r}\n")
    assert client.eof().stdout.decode("utf-8").endswith(f"replied with {NON_ASCII[-1]!r}\n")


def test_last_line_without_a_newline_is_sent(launcher: Launcher) -> None:
    server, client, client_port = launcher.chatting()
    client.write("no newline 🎉".encode())
    client.eof().assert_clean(within=SHUTDOWN_LIMIT)
    assert server.read_line() == server_says(client_port, "no newline 🎉")


#: Lines piped in at once: several times what the send window and queue hold.
SCRIPTED = 2000


@pytest.mark.parametrize("sender", ["client", "server"])
def test_piped_lines_are_paced_not_dropped(launcher: Launcher, sender: str) -> None:
    # A script on a trusted LAN turns the room's rate limit off.
    server, client, client_port = launcher.chatting(LOCALHOST, "--rate-limit", "0")
    texts = [f"line {i}" for i in range(SCRIPTED)]
    source, sink = (client, server) if sender == "client" else (server, client)
    source.write("".join(text + "\n" for text in texts).encode())
    result = source.eof()
    result.assert_clean()
    assert not [line for line in result.stdout_lines if line.startswith("! not delivered")]
    if sender == "client":
        expected = [server_says(client_port, text) for text in texts]
    else:
        expected = [server_replied(text) for text in texts]
    assert [sink.read_line() for _ in texts] == expected


ROOM_LINE = re.compile(r"\[\d\d:\d\d\] (?P<rest>.*)")


def room_line(line: str) -> str:
    """A room line without its ``[HH:MM]`` time."""
    match = ROOM_LINE.fullmatch(line)
    assert match is not None, f"not a room line: {line!r}"
    return match["rest"]


def test_with_two_clients_the_operator_still_answers_whoever_spoke_last(
    launcher: Launcher,
) -> None:
    server, port = launcher.server()
    first = launcher.client(port, "--nick", "first")
    say(first, server, "I am first")  # one member: still the classic line
    second = launcher.client(port, "--nick", "second")
    assert server.read_line() == "--> second joined"
    assert first.read_line() == "--> second joined"
    assert room_line(second.read_line()) == "(history) <first> I am first"
    second.write_line("I am second")
    assert room_line(server.read_line()) == "<second> I am second"
    assert room_line(first.read_line()) == "<second> I am second"
    reply(server, second, "to second")
    first.write_line("first again")
    assert room_line(server.read_line()) == "<first> first again"
    assert room_line(second.read_line()) == "<first> first again"
    reply(server, first, "to first")
    first.eof().assert_clean(within=SHUTDOWN_LIMIT)
    assert server.read_line() == "<-- first left (quit)"
    assert second.eof().stdout_lines[-1] == "<-- first left (quit)"


def test_client_survives_a_server_restart(launcher: Launcher) -> None:
    server, port = launcher.server()
    client = launcher.client(port)
    say(client, server, HELLO_SERVER)
    server.interrupt().assert_clean(within=SHUTDOWN_LIMIT)
    client.write_line("anybody there?")
    assert client.read_line().startswith("! nothing is listening")
    restarted = launcher.start("server", "--port", str(port))
    assert listening_port(restarted.read_line()) == port
    client.write_line("back again")
    # Once the client has a new session it sends again what was never acknowledged.
    assert restarted.read_line().endswith("says 'anybody there?'")
    assert restarted.read_line().endswith("says 'back again'")
    restarted.write_line(HELLO_CLIENT)
    client.wait_for_line(server_replied(HELLO_CLIENT))  # after a line about reconnecting


# -- shutting down -------------------------------------------------------------

ENDINGS: dict[str, Callable[[Program], Exit]] = {
    "SIGINT": lambda program: program.interrupt(signal.SIGINT),
    "SIGTERM": lambda program: program.interrupt(signal.SIGTERM),
    "EOF": Program.eof,
}


@pytest.mark.parametrize("role", ["server", "client"])
@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_shutdown_is_clean_and_quick(launcher: Launcher, role: str, ending: str) -> None:
    server, client, _ = launcher.chatting()
    first, second = (server, client) if role == "server" else (client, server)
    ENDINGS[ending](first).assert_clean(within=SHUTDOWN_LIMIT)
    second.eof().assert_clean(within=SHUTDOWN_LIMIT)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_server_without_input_serves_until_signalled(
    launcher: Launcher, signum: signal.Signals
) -> None:
    server, port = launcher.server("--no-input", stdin=False)
    client = launcher.client(port)
    say(client, server, HELLO_SERVER)
    say(client, server, "still there?")
    assert server.is_alive()
    client.eof().assert_clean(within=SHUTDOWN_LIMIT)
    result = server.interrupt(signum)
    result.assert_clean(within=SHUTDOWN_LIMIT)
    assert result.stderr.splitlines() == [NOT_ENCRYPTED]  # said once, on stderr
    assert client.stderr.seen().decode().splitlines() == [NOT_ENCRYPTED]


def test_server_with_stdin_at_eof_stops_and_says_why(launcher: Launcher) -> None:
    server, _ = launcher.server(stdin=False)
    result = server.end()
    result.assert_clean()
    [notice, why] = result.stderr.splitlines()
    assert notice == NOT_ENCRYPTED
    assert "--no-input" in why


# -- plain-text peers ----------------------------------------------------------


def test_classic_client_gets_a_plain_reply(launcher: Launcher) -> None:
    server, port = launcher.server()
    with udp_socket() as peer:
        peer.sendto(HELLO_SERVER.encode(), (LOCALHOST, port))
        assert server.read_line() == server_says(peer.getsockname()[1], HELLO_SERVER)
        server.write_line(HELLO_CLIENT)
        data, sender = peer.recvfrom(65536)
    assert data == HELLO_CLIENT.encode()
    assert sender == (LOCALHOST, port)


def test_netcat_peer_sends_lines_and_gets_a_newline(launcher: Launcher) -> None:
    server, port = launcher.server()
    with udp_socket() as peer:
        peer_port = peer.getsockname()[1]
        peer.sendto(b"line one\nline two\n", (LOCALHOST, port))
        assert server.read_line() == server_says(peer_port, "line one")
        assert server.read_line() == server_says(peer_port, "line two")
        server.write_line("héllo 🎉")
        data, _ = peer.recvfrom(65536)
    assert data == "héllo 🎉\n".encode()


def test_invalid_utf8_is_shown_replaced(launcher: Launcher) -> None:
    server, port = launcher.server()
    with udp_socket() as peer:
        peer_port = peer.getsockname()[1]
        peer.sendto(b"caf\xe9 \xff\xfe ok", (LOCALHOST, port))
        assert server.read_line() == f"The client at ('127.0.0.1', {peer_port}) says 'caf� �� ok'"
        peer.sendto(b"still here", (LOCALHOST, port))
        assert server.read_line() == server_says(peer_port, "still here")
        server.write_line(HELLO_CLIENT)
        assert peer.recvfrom(65536)[0] == HELLO_CLIENT.encode()
    assert server.is_alive()


GARBAGE_BATCH = 16


def _garbage() -> list[bytes]:
    """Malformed frames (they start with the magic byte 0xF9) and seeded random bytes.

    For every frame type code near the real ones, bodies of many lengths: too
    short, about right with nonsense in them, and too long.
    """
    frames = [b"", b"\xf9", b"\xf9\x01", b"\xf9" * 1500, b"\xf9\xff" * 30_000]
    for version, code, size, fill in itertools.product(
        (0, 1, 2, 255), range(8), (0, 1, 4, 7, 8, 12, 16, 17, 25, 40), (b"\x00", b"\xff")
    ):
        frames.append(bytes((0xF9, version, code)) + fill * size)
    rng = random.Random(20240601)
    for _ in range(40):
        noise = rng.randbytes(rng.randrange(1, 1500))
        frames += [noise, b"\xf9" + noise, b"\xf9\x01" + noise]
    return frames


def test_garbage_does_not_stop_the_server(launcher: Launcher) -> None:
    # The markers come fast, from the garbage's own address: no rate limits here.
    server, port = launcher.server("--rate-limit", "0", "--trust-plain")
    garbage = _garbage()
    with udp_socket() as peer:
        # In batches, each followed by a marker the server must show: a burst
        # larger than the socket's receive buffer would be dropped by the kernel.
        for batch in range(0, len(garbage), GARBAGE_BATCH):
            for datagram in garbage[batch : batch + GARBAGE_BATCH]:
                peer.sendto(datagram, (LOCALHOST, port))
            marker = f"survived {batch}"
            peer.sendto(marker.encode(), (LOCALHOST, port))
            server.wait_for_line(f"says {marker!r}")
    # The marker peer is a member of the room, so a second member makes it a room.
    client = launcher.client(port, "--nick", "after")
    assert server.read_line() == "--> after joined"
    client.write_line(HELLO_SERVER)
    assert room_line(server.read_line()) == f"<after> {HELLO_SERVER}"
    server.write_line(HELLO_CLIENT)
    client.wait_for_line(server_replied(HELLO_CLIENT))  # after the markers, as history
    server.eof().assert_clean(within=SHUTDOWN_LIMIT)


@pytest.mark.parametrize("text", [HELLO_SERVER, *NON_ASCII])
def test_plain_client_talks_to_a_stdlib_server(launcher: Launcher, text: str) -> None:
    with udp_socket() as plain_server:
        client = launcher.client(plain_server.getsockname()[1], "--plain")
        client.write_line(text)
        data, sender = plain_server.recvfrom(65536)
        assert data == text.encode("utf-8")
        plain_server.sendto(f"you said {text}".encode(), sender)
        assert client.read_line() == server_replied(f"you said {text}")
    client.eof().assert_clean(within=SHUTDOWN_LIMIT)


def test_plain_client_talks_to_our_server(launcher: Launcher) -> None:
    server, port = launcher.server()
    client = launcher.client(port, "--plain")
    say(client, server, HELLO_SERVER)
    reply(server, client, HELLO_CLIENT)
    client.eof().assert_clean(within=SHUTDOWN_LIMIT)


def test_plain_client_answers_a_netcat_server_in_its_style(launcher: Launcher) -> None:
    with udp_socket() as plain_server:
        client = launcher.client(plain_server.getsockname()[1], "--plain")
        client.write_line("first")
        _, sender = plain_server.recvfrom(65536)
        plain_server.sendto(b"line one\nline two\n", sender)
        assert client.read_line() == server_replied("line one")
        assert client.read_line() == server_replied("line two")
        client.write_line("second")
        assert plain_server.recvfrom(65536)[0] == b"second\n"


def test_commands_are_not_sent(launcher: Launcher) -> None:
    server, port = launcher.server()
    client = launcher.client(port, "--receipts")
    client.write_line("/help")
    assert client.read_line().startswith("*** commands: ")
    client.write_line("/no-such-command")
    assert client.read_line().startswith("! unknown command /no-such-command")
    client.write_line("//not a command")
    # The first thing the server hears: neither command was sent.
    assert server.read_line().endswith("says '/not a command'")
    assert client.read_line() == "*** delivered: '/not a command'"


# -- nobody to reply to, messages that do not fit ------------------------------


def test_operator_before_any_client_spoke(launcher: Launcher) -> None:
    server, port = launcher.server()
    server.write_line("anyone?")
    assert server.read_line().startswith("*** ")
    client = launcher.client(port)
    say(client, server, HELLO_SERVER)
    reply(server, client, HELLO_CLIENT)
    # The early line never reached the client: its whole output is the one reply.
    assert client.eof().stdout_lines == [server_replied(HELLO_CLIENT)]


def test_operator_after_the_client_left(launcher: Launcher) -> None:
    server, client, client_port = launcher.chatting()
    client.eof().assert_clean(within=SHUTDOWN_LIMIT)
    server.write_line("are you gone?")
    line = server.read_line()
    assert line.startswith("*** ")
    assert repr((LOCALHOST, client_port)) in line


#: Longer than one datagram, so a session splits it and a plain peer cannot take it.
LONG = 2000
#: Longer than any message a session carries.
TOO_LONG = Config().max_message + 1


def test_long_message_is_delivered_whole(launcher: Launcher) -> None:
    server, client, _ = launcher.chatting()
    say(client, server, "x" * LONG)
    reply(server, client, "y" * LONG)


def test_client_message_too_long(launcher: Launcher) -> None:
    server, client, _ = launcher.chatting()
    client.write_line("x" * TOO_LONG)
    assert client.read_line().startswith("! message too long")
    say(client, server, "after")
    client.eof().assert_clean(within=SHUTDOWN_LIMIT)
    assert b"xxx" not in server.eof().stdout


def test_too_long_names_the_message_limit_not_a_datagram(launcher: Launcher) -> None:
    _, client, _ = launcher.chatting()
    client.write_line("x" * TOO_LONG)
    line = client.read_line()
    assert line.startswith("! message too long")
    assert "datagram" not in line, line


def test_operator_reply_too_long(launcher: Launcher) -> None:
    server, client, _ = launcher.chatting()
    server.write_line("y" * TOO_LONG)
    assert server.read_line().startswith("! message too long")
    reply(server, client, "after")
    assert client.eof().stdout_lines == [server_replied("after")]


def test_plain_client_message_too_long(launcher: Launcher) -> None:
    with udp_socket() as plain_server:
        client = launcher.client(plain_server.getsockname()[1], "--plain")
        client.write_line("x" * LONG)
        assert client.read_line().startswith("! message too long")
        client.write_line("after")
        assert plain_server.recvfrom(65536)[0] == b"after"  # the first datagram to arrive


def test_operator_reply_too_long_for_a_plain_peer(launcher: Launcher) -> None:
    server, port = launcher.server()
    with udp_socket() as peer:
        peer.sendto(HELLO_SERVER.encode(), (LOCALHOST, port))
        assert server.read_line().endswith(f"says {HELLO_SERVER!r}")
        server.write_line("y" * LONG)
        assert server.read_line().startswith("! message too long")
        server.write_line("after")
        assert peer.recvfrom(65536)[0] == b"after"  # the first datagram to arrive


@pytest.mark.parametrize("silent", [False, True], ids=["port closed", "peer silent"])
def test_client_without_a_server(launcher: Launcher, silent: bool) -> None:
    with udp_socket() as peer:
        port = peer.getsockname()[1]
        if not silent:
            peer.close()  # the kernel answers "port unreachable"
        client = launcher.client(port)
        assert client.read_line().startswith("! ")  # refused at once, or silent for 3 s
        assert client.is_alive()
        client.write_line("are you there?")
        result = client.eof()
    result.assert_clean()  # it may linger a while, hoping to deliver
    assert result.stdout_lines[-1].startswith("! not delivered: 'are you there?'")


# -- bad usage and startup failures -------------------------------------------


def test_port_already_in_use() -> None:
    with udp_socket() as taken:
        result = run_to_end(*command("server", "--port", str(taken.getsockname()[1])))
    assert "in use" in result.assert_one_line_error(1)
    assert result.stdout == b""


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (("server", "--host", "nonexistent.invalid", "--port", "0"), 1),
        (("client", "--host", "nonexistent.invalid"), 1),
        (("server", "--port", "70000"), 2),
        (("client", "--port", "70000"), 2),
        (("server", "--port", "abc"), 2),
        (("client", "--port", "abc"), 2),
        (("server", "--port", "-1"), 2),
        (("client", "--port", "0"), 2),
        (("server", "--bogus"), 2),
        (("server", "--session-timeout", "0"), 2),
        (("client", "--keepalive", "abc"), 2),
        (("chat",), 2),
        ((), 2),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value),
)
def test_startup_error_is_one_line(args: tuple[str, ...], status: int) -> None:
    result = run_to_end(*command(*args))
    result.assert_one_line_error(status)
    assert result.stdout == b""


@pytest.mark.parametrize("args", [("--help",), ("server", "--help"), ("client", "--help")])
def test_help(args: tuple[str, ...]) -> None:
    result = run_to_end(*command(*args))
    result.assert_clean()
    assert result.stdout.startswith(b"usage: trio-udpchat")
    assert result.stderr == ""


def test_version() -> None:
    result = run_to_end(*command("--version"))
    result.assert_clean()
    assert result.stdout == f"trio-udpchat {__version__}\n".encode()


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason=f"{CONSOLE_SCRIPT} is not installed")
def test_console_script() -> None:
    result = run_to_end(str(CONSOLE_SCRIPT), "--version")
    result.assert_clean()
    assert result.stdout == f"trio-udpchat {__version__}\n".encode()
    run_to_end(str(CONSOLE_SCRIPT), "client", "--port", "abc").assert_one_line_error(2)


# -- in a terminal ---------------------------------------------------------------

KEYS = ["intr", "eof"]  # CTRL+C, CTRL+D


@pytest.mark.parametrize("key", KEYS)
def test_client_in_a_terminal(launcher: Launcher, key: str) -> None:
    server, port = launcher.server()
    client = launcher.tty("client", "--port", str(port))
    client.expect_exact(CLIENT_PROMPT)
    client.sendline(HELLO_SERVER)
    assert server.read_line().endswith(f"says {HELLO_SERVER!r}")
    server.write_line(HELLO_CLIENT)
    client.expect_exact(server_replied(HELLO_CLIENT) + "\r\n" + CLIENT_PROMPT)
    end_tty(client, key).assert_clean(within=SHUTDOWN_LIMIT)


@pytest.mark.parametrize("key", KEYS)
def test_server_in_a_terminal(launcher: Launcher, key: str) -> None:
    server = launcher.tty("server", "--port", "0")
    server.expect(r"Listening at \('127\.0\.0\.1', (\d+)\)\r\n")
    port = int(server.match.group(1))
    server.expect_exact(SERVER_PROMPT)
    client = launcher.client(port)
    client.write_line(HELLO_SERVER)
    says = re.escape(server_says(12345, HELLO_SERVER)).replace("12345", r"\d+")
    server.expect(says + re.escape("\r\n" + SERVER_PROMPT))
    server.sendline(HELLO_CLIENT)
    assert client.read_line() == server_replied(HELLO_CLIENT)
    end_tty(server, key).assert_clean(within=SHUTDOWN_LIMIT)


def test_paste_in_a_terminal_is_one_message(launcher: Launcher) -> None:
    server, port = launcher.server()
    client = launcher.tty("client", "--port", str(port))
    client.expect_exact(CLIENT_PROMPT)
    client.send("line one\nline two\n")  # both lines at once, as a paste
    assert server.read_line().endswith(r"says 'line one\nline two'")
    end_tty(client, "eof").assert_clean(within=SHUTDOWN_LIMIT)


# -- other addresses -------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        pytest.param(
            "::1",
            marks=pytest.mark.skipif(
                not can_bind("::1"), reason="cannot bind a UDP socket on ::1 (IPv6 disabled)"
            ),
        ),
        "localhost",
    ],
)
def test_chat_over_host(launcher: Launcher, host: str) -> None:
    server, client, _ = launcher.chatting(host)
    reply(server, client, HELLO_CLIENT)
    client.eof().assert_clean(within=SHUTDOWN_LIMIT)
    server.eof().assert_clean(within=SHUTDOWN_LIMIT)
