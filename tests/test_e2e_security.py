"""Tier 4 with a room passphrase: the real program, key files, and the clear messages.

Two clients with the same key file chat; a wrong passphrase, a missing one, or
one the server does not have each ends the client with one clear line on
stderr; bad key files are usage errors. Key derivation is real (Argon2id).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_helpers import (
    LOCALHOST,
    Launcher,
    command,
    listening_port,
    run_to_end,
    say,
    udp_socket,
)
from trio_udpchat._render import NOT_ENCRYPTED

pytestmark = pytest.mark.e2e

PASSPHRASE = "seven purple elephants juggle quietly"


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    with Launcher() as launcher:
        yield launcher


def key_file(tmp_path: Path, passphrase: str = PASSPHRASE, name: str = "room.key") -> str:
    path = tmp_path / name
    path.write_text(passphrase + "\n")
    path.chmod(0o600)
    return str(path)


def test_two_clients_with_the_key_chat_encrypted(launcher: Launcher, tmp_path: Path) -> None:
    key = key_file(tmp_path)
    server, port = launcher.server("--key-file", key)
    alice = launcher.client(port, "--key-file", key, "--nick", "alice")
    say(alice, server, "only members can read this")
    bob = launcher.client(port, "--nick", "bob", env={"TRIO_UDPCHAT_KEY": PASSPHRASE})
    assert alice.wait_for_line("--> bob joined").endswith("--> bob joined")
    bob.write_line("hello alice")
    assert alice.wait_for_line("<bob> hello alice").endswith("<bob> hello alice")
    for program in (alice, bob):
        result = program.eof()
        result.assert_clean()
        assert NOT_ENCRYPTED not in result.stderr
    result = server.eof()
    result.assert_clean()
    assert NOT_ENCRYPTED not in result.stderr  # encrypted: nothing to warn about


def test_a_wrong_passphrase_is_one_clear_line(launcher: Launcher, tmp_path: Path) -> None:
    server, port = launcher.server("--key-file", key_file(tmp_path))
    wrong = key_file(tmp_path, "seven purple elephants juggle loudly", "wrong.key")
    client = launcher.client(port, "--key-file", wrong)
    result = client.end(lambda: None, timeout=10)
    line = result.assert_one_line_error(1)
    assert line == (
        "trio-udpchat: error: wrong passphrase or not a trio_udpchat server"
        f" at ('{LOCALHOST}', {port})"
    )
    assert result.seconds < 5
    assert server.is_alive()
    server.eof().assert_clean()


def test_no_passphrase_against_a_keyed_server(launcher: Launcher, tmp_path: Path) -> None:
    _, port = launcher.server("--key-file", key_file(tmp_path))
    result = launcher.client(port).end(lambda: None, timeout=10)
    assert "needs the room passphrase" in result.assert_one_line_error(1)


def test_a_passphrase_against_an_open_server(launcher: Launcher, tmp_path: Path) -> None:
    _, port = launcher.server()
    client = launcher.client(port, "--key-file", key_file(tmp_path))
    result = client.end(lambda: None, timeout=10)
    assert "refusing to chat unencrypted" in result.assert_one_line_error(1)


def test_plain_text_is_refused_by_a_keyed_server_unless_allowed(
    launcher: Launcher, tmp_path: Path
) -> None:
    key = key_file(tmp_path)
    for allow in ((), ("--allow-plain",)):
        server, port = launcher.server("--key-file", key, *allow)
        with udp_socket() as sock:
            sock.sendto(b"hello from nc\n", (LOCALHOST, port))
            if allow:
                assert server.read_line().endswith("says 'hello from nc'")
            else:
                # A member's message after it: by then the text datagram was handled.
                client = launcher.client(port, "--key-file", key)
                say(client, server, "after the plain text")
                sock.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    sock.recvfrom(2048)  # no reply, not even an error
        result = server.eof()
        result.assert_clean()
        assert ("hello from nc" in result.stdout.decode()) == bool(allow)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("client", "--key-file", "/nonexistent/key"), "cannot read key file"),
        (("server", "--allow-plain"), "--allow-plain needs a passphrase"),
        (("server", "--key-file", "/"), "Is a directory"),
    ],
)
def test_bad_key_flags_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = run_to_end(*command(*args))
    assert message in result.assert_one_line_error(2)


def test_an_empty_key_file_and_plain_with_a_key_are_usage_errors(tmp_path: Path) -> None:
    empty = key_file(tmp_path, "", "empty.key")
    result = run_to_end(*command("client", "--key-file", empty))
    assert "is empty" in result.assert_one_line_error(2)
    full = key_file(tmp_path)
    result = run_to_end(*command("client", "--plain", "--key-file", full))
    assert "no passphrase" in result.assert_one_line_error(2)


def test_the_server_warns_about_a_key_file_others_can_read(
    launcher: Launcher, tmp_path: Path
) -> None:
    key = key_file(tmp_path)
    Path(key).chmod(0o644)
    server = launcher.start("server", "--port", "0", "--key-file", key)
    listening_port(server.read_line())
    result = server.eof()
    result.assert_clean()
    assert "readable by other users" in result.stderr
