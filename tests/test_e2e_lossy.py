"""Tier 4 over a bad network: the real client and server through the seeded lossy relay."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_helpers import Launcher, program_env, server_replied, server_says

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
MESSAGES = 100
REPLIES = 20


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    with Launcher() as launcher:
        yield launcher


def start_relay(launcher: Launcher, upstream_port: int) -> int:
    """A relay dropping 10%, duplicating 5%, delaying 0-30 ms (reordering); its port.

    10%, not the 20% of the virtual-clock test in test_lossy.py: with real timing
    the seeded relay's choices vary run to run, and at 20% each way a packet among
    the 100+ here fails all 8 of its sends in a few percent of runs (the protocol
    then reports it not delivered, which is correct, but the test would be flaky).
    """
    link = ["--loss", "0.1", "--duplicate", "0.05", "--delay", "0", "0.03", "--seed", "3"]
    link += ["--lifetime", "60"]
    relay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.lossy_relay",
            "--upstream-port",
            str(upstream_port),
            *link,
            "--lifetime",
            "60",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env=program_env(),
    )
    assert relay.stdout is not None
    launcher.callback(relay.stdout.close)
    launcher.callback(relay.wait, 10)
    launcher.callback(relay.kill)
    return int(relay.stdout.readline())


def test_every_typed_line_is_printed_once_in_order_through_a_lossy_network(
    launcher: Launcher,
) -> None:
    server, port = launcher.server("--rate-limit", "0")  # 100 lines at once
    client = launcher.client(start_relay(launcher, port), "--receipts")
    lines = [f"line {i} of {MESSAGES}" for i in range(MESSAGES)]
    client.write("".join(line + "\n" for line in lines).encode())
    shown = [server.read_line(timeout=30) for _ in lines]
    client_port = int(shown[0].split(", ")[1].split(")")[0])
    assert shown == [server_says(client_port, line) for line in lines]
    replies = [f"reply {i}" for i in range(REPLIES)]
    server.write("".join(text + "\n" for text in replies).encode())
    got: list[str] = []
    for _ in range(10 * (MESSAGES + REPLIES)):  # notices may come in between
        got.append(client.read_line(timeout=30))
        if (
            sum(line.startswith(("The server", "*** delivered")) for line in got)
            == MESSAGES + REPLIES
        ):
            break
    assert [line for line in got if line.startswith("The server")] == [
        server_replied(text) for text in replies
    ]
    # Receipts come in order: a message counts as delivered once all before it are.
    assert [line for line in got if line.startswith("*** delivered")] == [
        f"*** delivered: {line!r}" for line in lines
    ]
    client.eof().assert_clean()
    server_end = server.eof()
    server_end.assert_clean()
    assert b"not delivered" not in server_end.stdout
