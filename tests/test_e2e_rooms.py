"""Tier 4 for chat rooms: the real server and clients as subprocesses, with a
plain-text peer (a stdlib UDP socket) in the same room, and a TTY check.

Every wait is bounded (the helpers' line and socket timeouts); a test waits
for the line that proves the room got where it should be, never sleeps.
"""

from __future__ import annotations

import re
import socket
import time
from collections import deque
from collections.abc import Iterator

import pytest

from tests.e2e_helpers import (
    CLIENT_PROMPT,
    LOCALHOST,
    SHUTDOWN_LIMIT,
    Exit,
    Launcher,
    Program,
    end_tty,
    server_replied,
    udp_socket,
)
from tests.test_e2e import room_line
from trio_udpchat._chat import (
    Presence,
    PresenceKind,
    Refused,
    RefusedWhy,
    Roster,
    RosterEntry,
    Said,
    SaidKind,
    ServerMessage,
    encode_chat,
)
from trio_udpchat._wire import Ack, Data, Hello, Welcome, decode_frame_untrusted, encode_frame

pytestmark = pytest.mark.e2e

#: A terminal title change and a screen clear: what a hostile peer would send.
HOSTILE_NAME = "\x1b]0;pwned\x07"
HOSTILE = f"{HOSTILE_NAME} \x1b[2J"
#: How they must be shown: escaped, as ``repr`` would.
HOSTILE_NAME_SHOWN = r"\x1b]0;pwned\x07"
HOSTILE_SHOWN = rf"{HOSTILE_NAME_SHOWN} \x1b[2J"
#: How presence notices start; every other room line starts with its ``[HH:MM]`` time.
PRESENCE = ("--> ", "<-- ", "--- ")
#: More datagrams than a plain-text peer is ever expected to receive in one wait.
MAX_DATAGRAMS = 100


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    """Starts programs for a test and kills whatever is left when it ends."""
    with Launcher() as launcher:
        yield launcher


class PlainPeer:
    """A plain-text member: a stdlib UDP socket that sends lines ending in a newline."""

    def __init__(self, sock: socket.socket, server_port: int) -> None:
        self.sock = sock
        self.server = (LOCALHOST, server_port)
        self.name = f"{LOCALHOST}:{sock.getsockname()[1]}"
        self._lines: deque[str] = deque()

    def send(self, text: str) -> None:
        self.sock.sendto(f"{text}\n".encode(), self.server)

    def read_line(self) -> str:
        """The next line from the server (a datagram may carry several)."""
        if not self._lines:
            data, sender = self.sock.recvfrom(65536)  # the socket's timeout bounds this
            assert sender == self.server, sender
            self._lines.extend(data.decode("utf-8").removesuffix("\n").split("\n"))
        return self._lines.popleft()

    def wait_for_line(self, ending: str) -> str:
        """Skip lines until one ends with ``ending``."""
        for _ in range(MAX_DATAGRAMS):
            line = self.read_line()
            if line.endswith(ending):
                return line
        raise AssertionError(f"no line ending {ending!r}")


def first_member(launcher: Launcher, port: int, nick: str) -> Program:
    """A client alone in the room, once it is in (its /who has been answered)."""
    client = launcher.client(port, "--nick", nick)
    client.write_line("/who")
    assert client.read_line().startswith("*** 2 here: server (operator, idle ")
    return client


def next_member(launcher: Launcher, port: int, nick: str, *present: Program) -> Program:
    """A client joining the room, once the programs ``present`` have seen it join."""
    client = launcher.client(port, "--nick", nick)
    for other in present:
        assert other.read_line() == f"--> {nick} joined"
    return client


def shows(shown: str, expected: str) -> bool:
    """Whether ``shown`` is the line ``expected``: presence notices as they are,
    anything said with its ``[HH:MM]`` time in front."""
    if expected.startswith(PRESENCE):
        return shown == expected
    return room_line(shown) == expected


def everyone_reads(line: str, *programs: Program) -> None:
    """Each of ``programs`` shows ``line`` next."""
    for program in programs:
        assert shows(program.read_line(), line), program


def plain_reads(peer: PlainPeer, *lines: str) -> None:
    """The plain-text peer receives ``lines`` next."""
    for line in lines:
        received = peer.read_line()
        assert shows(received, line), received


def nothing_more(*programs: Program) -> None:
    """End ``programs`` cleanly, one after the other: after what was read, none
    showed anything but the leaving of those ended before it."""
    for program in programs:
        program.eof().assert_clean(within=SHUTDOWN_LIMIT)
        for _ in range(len(programs)):
            rest = program.stdout.readline()
            if rest is None:
                break
            assert re.fullmatch(r"<-- \S+ left \(quit\)", rest.decode()), program
        assert program.stdout.readline() is None, program


def no_escapes(*results: Exit) -> None:
    """Programs that ended cleanly, and printed no ESC or BEL."""
    for result in results:
        result.assert_clean()
        assert b"\x1b" not in result.stdout, result.stdout
        assert b"\x07" not in result.stdout, result.stdout


# -- a room of two clients, a plain-text peer and the operator ---------------------


def test_messages_cross_in_every_direction(launcher: Launcher) -> None:
    server, port = launcher.server("--trust-plain")  # the plain peer hears all
    alice = first_member(launcher, port, "alice")
    bob = next_member(launcher, port, "bob", alice, server)
    with udp_socket() as sock:
        peer = PlainPeer(sock, port)
        peer.send("hi from plain")
        everyone_reads(f"--> {peer.name} joined", alice, bob, server)
        everyone_reads(f"<{peer.name}> hi from plain", alice, bob, server)

        alice.write_line("hello all")
        everyone_reads("<alice> hello all", bob, server)
        plain_reads(peer, "<alice> hello all")

        bob.write_line("/me waves")
        everyone_reads("* bob waves", alice, server)
        plain_reads(peer, "* bob waves")

        server.write_line("/all welcome")
        everyone_reads("<server> welcome", alice, bob)
        plain_reads(peer, "<server> welcome")

        server.write_line("hi bob")  # bob spoke last: the classic reply
        assert bob.read_line() == server_replied("hi bob")

        peer.send("plain again")
        everyone_reads(f"<{peer.name}> plain again", alice, bob, server)
        server.write_line("hi plain")  # now the plain peer spoke last
        assert peer.read_line() == "hi plain"  # bare text, as the classic server sent it

        carol = next_member(launcher, port, "carol", alice, bob, server)
        plain_reads(peer, "--> carol joined")
        for line in (
            f"(history) <{peer.name}> hi from plain",
            "(history) <alice> hello all",
            "(history) * bob waves",
            "(history) <server> welcome",
            f"(history) <{peer.name}> plain again",
        ):
            everyone_reads(line, carol)
        carol.write_line("hello, I am late")
        everyone_reads("<carol> hello, I am late", alice, bob, server)
        plain_reads(peer, "<carol> hello, I am late")

        alice.eof().assert_clean(within=SHUTDOWN_LIMIT)
        everyone_reads("<-- alice left (quit)", bob, carol, server)
        plain_reads(peer, "<-- alice left (quit)")
    # Nobody heard anything more: the replies to bob and to the plain peer were theirs alone.
    nothing_more(bob, carol, server)


def test_private_messages_and_who(launcher: Launcher) -> None:
    server, port = launcher.server("--trust-plain")  # the plain peer hears all
    alice = first_member(launcher, port, "alice")
    bob = next_member(launcher, port, "bob", alice, server)
    with udp_socket() as sock:
        peer = PlainPeer(sock, port)
        peer.send("here")
        for program in (alice, bob, server):
            program.wait_for_line("> here")

        alice.write_line("/msg bob psst, bob")
        everyone_reads("*alice* psst, bob", bob)
        alice.write_line(f"/msg {peer.name} psst, plain")
        plain_reads(peer, "*alice* psst, plain")
        alice.write_line("/msg SERVER psst, operator")
        everyone_reads("*alice* psst, operator", server)
        alice.write_line("/msg nobody hello?")
        assert alice.read_line() == (
            "! no one here is called 'nobody' (try /who); that message was not sent"
        )
        server.write_line("/to Bob psst from the operator")
        everyone_reads("*server* psst from the operator", bob)
        server.write_line("/to nobody hello?")
        assert server.read_line().startswith("! no one here is called 'nobody'")

        # Whoever hears this next heard no private message meant for another.
        alice.write_line("public again")
        everyone_reads("<alice> public again", bob, server)
        plain_reads(peer, "<alice> public again")

        members = rf"{re.escape(peer.name)} \(idle \d+s\), alice \(idle \d+s\), bob \(idle \d+s\)"
        who = re.compile(rf"\*\*\* 4 here: server \(operator, idle \d+[smh]\), {members}")
        bob.write_line("/who")
        assert who.fullmatch(bob.read_line())
        server.write_line("/who")
        assert who.fullmatch(server.read_line())
        peer.send("/who")  # a plain-text peer has no commands: it is just text
        everyone_reads(f"<{peer.name}> /who", alice, bob, server)
    nothing_more(alice)
    everyone_reads("<-- alice left (quit)", bob, server)
    nothing_more(bob, server)


def test_nick_clash_rename_and_quit_notices(launcher: Launcher) -> None:
    server, port = launcher.server("--trust-plain")  # the plain peer hears all
    alice = first_member(launcher, port, "alice")
    bob = next_member(launcher, port, "bob", alice, server)
    clash = launcher.client(port, "--nick", "Alice")
    refused = re.fullmatch(
        r"! the name 'Alice' is taken; try /nick Alice2; for now you are (127\.0\.0\.1:\d+)",
        clash.read_line(),
    )
    assert refused is not None
    everyone_reads(f"--> {refused[1]} joined", alice, bob, server)
    clash.write_line("/quit")
    everyone_reads(f"<-- {refused[1]} left (quit)", alice, bob, server)
    assert clash.end().status == 0

    with udp_socket() as sock:
        peer = PlainPeer(sock, port)
        peer.send("watching")
        for program in (alice, bob, server):
            program.wait_for_line("> watching")
        bob.write_line("/nick robert")
        assert bob.read_line() == "*** you are now known as robert"
        everyone_reads("--- bob is now known as robert", alice, server)
        plain_reads(peer, "--- bob is now known as robert")
        bob.write_line("/nick ALICE")
        assert bob.read_line() == "! the name 'ALICE' is taken; try /nick ALICE2"

        alice.write_line("/quit gotta go")
        result = alice.end()
        result.assert_clean(within=SHUTDOWN_LIMIT)
        everyone_reads("<-- alice left (quit: gotta go)", bob, server)
        plain_reads(peer, "<-- alice left (quit: gotta go)")

        bob.eof().assert_clean(within=SHUTDOWN_LIMIT)
        everyone_reads("<-- robert left (quit)", server)
        plain_reads(peer, "<-- robert left (quit)")
    server.eof().assert_clean(within=SHUTDOWN_LIMIT)


def test_a_full_room_turns_the_next_client_away(launcher: Launcher) -> None:
    server, port = launcher.server("--max-clients", "1")
    alice = first_member(launcher, port, "alice")
    result = launcher.client(port, "--nick", "bob").end()
    line = result.assert_one_line_error(1)
    assert line == "trio-udpchat: error: the room is full (1 members); try again later"
    assert result.stdout == b""
    alice.write_line("still just us")
    assert server.read_line().endswith("says 'still just us'")  # nobody joined
    alice.eof().assert_clean(within=SHUTDOWN_LIMIT)
    server.eof().assert_clean(within=SHUTDOWN_LIMIT)


# -- what comes from the network is shown escaped ---------------------------------


def test_hostile_text_is_shown_escaped_to_members_and_operator(launcher: Launcher) -> None:
    server, port = launcher.server()
    alice = first_member(launcher, port, "alice")
    alice.write_line(HOSTILE)  # one member: the operator's classic line
    assert server.read_line().endswith(f"says '{HOSTILE_SHOWN}'")
    bob = next_member(launcher, port, "bob", alice, server)
    everyone_reads(f"(history) <alice> {HOSTILE_SHOWN}", bob)
    alice.write_line(f"/me {HOSTILE}")
    everyone_reads(f"* alice {HOSTILE_SHOWN}", bob, server)
    alice.write_line(f"/msg bob {HOSTILE}")
    everyone_reads(f"*alice* {HOSTILE_SHOWN}", bob)
    alice.write_line(f"/msg server {HOSTILE}")
    everyone_reads(f"*alice* {HOSTILE_SHOWN}", server)
    bob.write_line(f"/nick {HOSTILE_NAME}")
    refused = bob.read_line()
    assert refused.startswith(
        f"! the name '{HOSTILE_NAME_SHOWN}' cannot be used:"
        " a name can only contain printable characters; try /nick "
    )
    assert "\x1b" not in refused  # the suggestion is printable too
    server.write_line(f"/all {HOSTILE}")
    everyone_reads(f"<server> {HOSTILE_SHOWN}", alice, bob)
    server.write_line(HOSTILE)  # alice spoke last (the /me)
    assert alice.read_line() == server_replied(HOSTILE)
    bob.write_line(f"/quit {HOSTILE}")
    bob_exit = bob.end()
    everyone_reads(f"<-- bob left (quit: {HOSTILE_SHOWN})", alice, server)
    no_escapes(alice.eof(), server.eof(), bob_exit)


class HostileServer:
    """A server written in the test: it speaks the framed protocol to one real client
    and sends whatever chat messages the test likes."""

    SESSION = 42

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self._pn = 0
        self._seq = 0

    def welcome(self) -> None:
        """Answer the client's hello, then acknowledge its join."""
        data, self.client = self.sock.recvfrom(65536)
        hello = decode_frame_untrusted(data)
        assert isinstance(hello, Hello), hello
        self.sock.sendto(encode_frame(Welcome(hello.nonce, self.SESSION, 60_000)), self.client)
        for _ in range(MAX_DATAGRAMS):  # skip a retransmitted hello, if any
            frame = decode_frame_untrusted(self.sock.recvfrom(65536)[0])
            if isinstance(frame, Data):
                break
        assert isinstance(frame, Data), frame
        self.sock.sendto(encode_frame(Ack(self.SESSION, self._next_pn(), 1, 0)), self.client)

    def send(self, *messages: ServerMessage) -> None:
        """Send each message as one reliable packet (the client's acks pile up unread)."""
        for message in messages:
            data = Data(self.SESSION, self._next_pn(), self._seq, 0, encode_chat(message))
            self._seq += 1
            self.sock.sendto(encode_frame(data), self.client)

    def _next_pn(self) -> int:
        self._pn += 1
        return self._pn


def test_hostile_names_from_a_server_are_shown_escaped(launcher: Launcher) -> None:
    now = time.time()
    with udp_socket() as sock:
        evil = HostileServer(sock)
        client = launcher.client(evil.port, "--nick", "alice")
        evil.welcome()
        evil.send(
            Said(HOSTILE_NAME, HOSTILE, now),
            Said(HOSTILE_NAME, HOSTILE, now, SaidKind.ACT),
            Said(HOSTILE_NAME, HOSTILE, now, SaidKind.PRIVATE),
            Said(HOSTILE_NAME, HOSTILE, now, history=True),
            Presence(PresenceKind.JOINED, HOSTILE_NAME, "", now),
            Presence(PresenceKind.RENAMED, HOSTILE_NAME, HOSTILE_NAME, now),
            Presence(PresenceKind.LEFT, HOSTILE_NAME, HOSTILE, now),
            Roster((RosterEntry(HOSTILE_NAME, 5, operator=True),)),
            Refused(RefusedWhy.OTHER, HOSTILE),
            Said(HOSTILE_NAME, HOSTILE, now, SaidKind.REPLY),
        )
        lines = [client.read_line() for _ in range(10)]
    assert [room_line(line) for line in lines[:4]] == [
        f"<{HOSTILE_NAME_SHOWN}> {HOSTILE_SHOWN}",
        f"* {HOSTILE_NAME_SHOWN} {HOSTILE_SHOWN}",
        f"*{HOSTILE_NAME_SHOWN}* {HOSTILE_SHOWN}",
        f"(history) <{HOSTILE_NAME_SHOWN}> {HOSTILE_SHOWN}",
    ]
    assert lines[4:] == [
        f"--> {HOSTILE_NAME_SHOWN} joined",
        f"--- {HOSTILE_NAME_SHOWN} is now known as {HOSTILE_NAME_SHOWN}",
        f"<-- {HOSTILE_NAME_SHOWN} left ({HOSTILE_SHOWN})",
        f"*** 1 here: {HOSTILE_NAME_SHOWN} (operator, idle 5s)",
        f"! {HOSTILE_SHOWN}",
        server_replied(HOSTILE),
    ]
    no_escapes(client.eof())


def test_a_server_sending_an_absurd_time_does_not_crash_the_client(launcher: Launcher) -> None:
    with udp_socket() as sock:
        evil = HostileServer(sock)
        client = launcher.client(evil.port, "--nick", "alice")
        evil.welcome()
        evil.send(
            Said("mallory", "from the far future", 1e300), Said("mallory", "still alive", 0.0)
        )
        client.wait_for_line("<mallory> still alive")
    client.eof().assert_clean()


# -- in a terminal -----------------------------------------------------------------


def test_the_prompt_is_redrawn_below_a_room_line(launcher: Launcher) -> None:
    server, port = launcher.server()
    # Without colour, so the expected bytes are the lines themselves.
    alice = launcher.tty("client", "--port", str(port), "--nick", "alice", env={"NO_COLOR": "1"})
    alice.expect_exact(CLIENT_PROMPT)
    alice.sendline("/who")
    alice.expect(r"\*\*\* 2 here: [^\r\n]*\r\n" + re.escape(CLIENT_PROMPT))
    bob = next_member(launcher, port, "bob", server)
    redrawn = re.escape("\r\x1b[K")
    prompt = re.escape("\r\n" + CLIENT_PROMPT)
    alice.expect(redrawn + re.escape("--> bob joined") + prompt)
    bob.write_line("hi alice")
    alice.expect(redrawn + r"\[\d\d:\d\d\] <bob> hi alice" + prompt)
    bob.write_line(HOSTILE)
    alice.expect(redrawn + r"\[\d\d:\d\d\] <bob> " + re.escape(HOSTILE_SHOWN) + prompt)
    alice.sendline("hi bob")
    assert room_line(bob.read_line()) == "<alice> hi bob"
    end_tty(alice, "eof").assert_clean(within=SHUTDOWN_LIMIT)
    assert server.wait_for_line("<-- alice left (quit)")
