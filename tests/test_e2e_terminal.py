"""Tier 4, the terminal: readline in a real pseudo-terminal, colour, JSON, the log.

The readline tests run the client in a tmux pane and read its screen, which is
what a person sees, escape sequences and all already applied.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_helpers import (
    CLIENT_PROMPT,
    CLIENT_SAYS,
    SHUTDOWN_LIMIT,
    Launcher,
    command,
    end_tty,
    free_port,
    reply,
    run_to_end,
    say,
    server_replied,
    server_says,
)
from tests.tmux_screen import HAVE_TMUX, TmuxPane

pytestmark = pytest.mark.e2e

#: An SGR sequence (colour, dim, reset): what --no-color and NO_COLOR leave out.
SGR = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    """Starts programs for a test and kills whatever is left when it ends."""
    with Launcher() as launcher:
        yield launcher


@pytest.fixture
def panes(tmp_path: Path) -> Iterator[list[TmuxPane]]:
    """Panes a test opens; their tmux servers are killed when it ends."""
    opened: list[TmuxPane] = []
    yield opened
    for pane in opened:
        pane.kill()


needs_tmux = pytest.mark.skipif(not HAVE_TMUX, reason="tmux is not installed")


@needs_tmux
def test_message_arrives_while_typing(
    launcher: Launcher, panes: list[TmuxPane], tmp_path: Path
) -> None:
    server, port = launcher.server()
    client = TmuxPane(tmp_path, "client", "--port", str(port))
    panes.append(client)
    client.wait_for_row(CLIENT_PROMPT.rstrip())
    client.type("Hello, server!")
    client.press("Enter")
    said = CLIENT_SAYS.fullmatch(server.read_line())
    assert said is not None
    client_port = int(said["port"])
    # Half a line, with the cursor moved back into it.
    client.type("half a li")
    client.press("Left", "Left")
    typing = CLIENT_PROMPT + "half a li"
    client.wait_for_row(typing)
    server.write_line("Hello, client!")
    screen = client.wait_for_row(server_replied("Hello, client!"))
    print("\n".join(screen))  # the screen, for the record (pytest -s shows it)
    rows = [row for row in screen if row]
    # The message is above the prompt, which still holds the half line.
    assert rows[-2:] == [server_replied("Hello, client!"), typing], screen
    # The cursor is where it was: typing goes in before the last two letters.
    client.type("X")
    client.wait_for_row(CLIENT_PROMPT + "half a Xli")
    client.press("Enter")
    assert server.read_line() == server_says(client_port, "half a Xli")
    # Up-arrow recalls the previous line, ready to edit.
    client.wait_until(lambda s: [r for r in s if r][-1] == CLIENT_PROMPT.rstrip(), "new prompt")
    client.press("Up")
    client.wait_until(lambda s: [r for r in s if r][-1] == typing[:-2] + "Xli", "recalled line")
    client.press("Up")
    client.wait_until(
        lambda s: [r for r in s if r][-1] == CLIENT_PROMPT + "Hello, server!", "older line"
    )
    client.press("C-c")
    assert client.exit_status() == 0, "\n".join(client.screen())


@needs_tmux
def test_ctrl_d_on_an_empty_line_ends_the_client(
    launcher: Launcher, panes: list[TmuxPane], tmp_path: Path
) -> None:
    _, port = launcher.server()
    client = TmuxPane(tmp_path, "client", "--port", str(port))
    panes.append(client)
    client.wait_for_row(CLIENT_PROMPT.rstrip())
    client.press("C-d")
    assert client.exit_status() == 0


def test_ctrl_c_with_half_a_line_exits_cleanly(launcher: Launcher) -> None:
    _, port = launcher.server()
    child = launcher.tty("client", "--port", str(port))
    child.expect_exact(CLIENT_PROMPT)
    child.send("half typed")
    child.expect_exact("half typed")
    end_tty(child, "intr").assert_clean(within=SHUTDOWN_LIMIT)


# -- colour --------------------------------------------------------------------


def test_notices_are_dim_at_a_terminal(launcher: Launcher) -> None:
    _, port = launcher.server()
    child = launcher.tty("client", "--port", str(port))
    child.expect_exact("\x1b[2m*** this chat is not encrypted")
    child.expect_exact(CLIENT_PROMPT)
    end_tty(child, "eof").assert_clean(within=SHUTDOWN_LIMIT)


def test_a_slow_server_gets_connecting_then_connected(launcher: Launcher) -> None:
    # A prompt handshake says nothing (the classic screen); one that takes more than
    # a second says "connecting", and "connected" once the server answers.
    port = free_port()
    child = launcher.tty("client", "--port", str(port), "--no-color")
    child.expect_exact(f"*** connecting to the server at ('127.0.0.1', {port})")
    launcher.start("server", "--port", str(port), "--no-input", stdin=False)
    child.expect_exact(f"*** connected to the server at ('127.0.0.1', {port})")
    end_tty(child, "eof").assert_clean(within=SHUTDOWN_LIMIT)


def test_a_prompt_connection_keeps_the_classic_screen(launcher: Launcher) -> None:
    server, port = launcher.server()
    child = launcher.tty("client", "--port", str(port), "--no-color")
    child.expect_exact(CLIENT_PROMPT)
    seen = child.before  # everything before the first prompt
    child.sendline("Hello, server!")
    assert server.read_line().endswith("says 'Hello, server!'")
    server.write_line("Hello, client!")
    child.expect_exact(server_replied("Hello, client!"))
    seen += child.before
    child.expect_exact(CLIENT_PROMPT)
    result = end_tty(child, "eof")
    result.assert_clean(within=SHUTDOWN_LIMIT)
    assert "connect" not in seen + result.output, seen


@pytest.mark.parametrize(("flag", "env"), [("--no-color", {}), (None, {"NO_COLOR": "1"})])
def test_no_colour_at_a_terminal(launcher: Launcher, flag: str | None, env: dict[str, str]) -> None:
    server, port = launcher.server()
    child = launcher.tty("client", "--port", str(port), *([flag] if flag else []), env=env)
    child.expect_exact(CLIENT_PROMPT)
    seen = child.before
    child.sendline("Hello, server!")
    assert server.read_line().endswith("says 'Hello, server!'")
    server.write_line("Hello, client!")
    child.expect_exact(server_replied("Hello, client!"))
    seen += child.before
    child.expect_exact(CLIENT_PROMPT)
    result = end_tty(child, "eof")
    result.assert_clean(within=SHUTDOWN_LIMIT)
    assert "*** this chat is not encrypted" in seen
    assert not SGR.search(seen + result.output), seen + result.output


def test_piped_output_has_no_escape_codes(launcher: Launcher) -> None:
    server, port = launcher.server()
    alice = launcher.client(port, "--nick", "alice", "--receipts")
    say(alice, server, "Hello, server!")
    bob = launcher.client(port, "--nick", "bob")
    assert server.read_line() == "--> bob joined"
    bob.write_line("hi all")
    alice.wait_for_line("<bob> hi all")
    alice.write_line("/stats")
    assert alice.read_line().startswith("*** stats: sent ")
    for program in (bob, alice, server):
        result = program.eof()
        result.assert_clean()
        assert b"\x1b" not in result.stdout, result.stdout
        assert b"Input message" not in result.stdout  # no prompts either


# -- JSON, the log file, -v ------------------------------------------------------


def test_json_lines(launcher: Launcher) -> None:
    server, port = launcher.server()
    client = launcher.client(port, "--json")
    say(client, server, "Hello, server!")
    server.write_line("Hello, client!")
    # connected, the not-encrypted notice, delivered, the message
    events = [json.loads(client.read_line()) for _ in range(4)]
    client.write_line("/stats")
    stats = json.loads(client.read_line())
    too_long = "x" * 70_000
    client.write_line(too_long)
    failed = json.loads(client.read_line())
    result = client.eof()
    result.assert_clean()
    for event in (*events, stats, failed):
        assert isinstance(event["type"], str)
        assert isinstance(event["time"], float)
    by_type = {event["type"]: event for event in events}
    # "connecting" only if the server takes more than a second to answer
    assert [e["state"] for e in events if e["type"] == "status"] == ["connected"]
    assert by_type["message"]["from"] == "server"
    assert by_type["message"]["text"] == "Hello, client!"
    assert "not encrypted" in by_type["notice"]["text"]
    assert by_type["delivered"]["text"] == "Hello, server!"
    assert stats["type"] == "stats"
    assert stats["datagrams_out"] > 0
    assert stats["round_trips"][0]["srtt"] > 0
    assert failed["type"] == "delivery_failed"
    assert failed["text"] == too_long
    assert failed["reason"].startswith("too long")


def test_json_server_names_the_sender(launcher: Launcher) -> None:
    server = launcher.start("server", "--port", "0", "--json")
    listening = json.loads(server.read_line())
    assert listening["type"] == "status"
    assert listening["state"] == "listening"
    notice = json.loads(server.read_line())
    assert notice["type"] == "notice"
    assert "not encrypted" in notice["text"]
    port = listening["address"][1]
    client = launcher.client(port)
    client.write_line("Hello, server!")
    joined = json.loads(server.read_line())
    said = json.loads(server.read_line())
    assert joined["type"] == "peer"
    assert said["type"] == "message"
    assert said["text"] == "Hello, server!"
    assert said["from"] == f"127.0.0.1:{said['address'][1]}"


def test_log_file_and_verbose(launcher: Launcher, tmp_path: Path) -> None:
    log = tmp_path / "chat.log"
    log.write_text("an earlier line\n")
    server, port = launcher.server()
    client = launcher.client(port, "--log", str(log), "-v")
    client_port = say(client, server, "Hello, server!")
    reply(server, client, "Hello, client!")
    result = client.eof()
    result.assert_clean()
    # Stdout is the classic transcript, byte for byte; the log went to stderr.
    assert result.stdout == b"The server replied with 'Hello, client!'\n"
    assert "INFO" in result.stderr
    assert "on exit: sent " in result.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "an earlier line"  # appended, not overwritten
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
    expected = [
        r"\*\*\* connected to the server at .*",
        "> Hello, server!",
        re.escape(server_replied("Hello, client!")),
    ]
    assert len(lines) == 1 + len(expected), lines
    # The line typed may be logged before the handshake (two round trips) completes.
    if lines[1].endswith("> Hello, server!"):
        lines[1], lines[2] = lines[2], lines[1]
    for line, pattern in zip(lines[1:], expected, strict=True):
        assert re.fullmatch(stamp + pattern, line), line
    assert "\x1b" not in log.read_text()
    assert client_port


def test_log_file_that_cannot_be_opened(tmp_path: Path) -> None:
    result = run_to_end(*command("client", "--log", str(tmp_path / "no" / "such" / "dir")))
    assert "cannot open log file" in result.assert_one_line_error(1)
