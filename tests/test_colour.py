"""Colour: stable per name, only where wanted, never on the classic lines."""

from __future__ import annotations

import io
import json
import re

import pytest

from trio_udpchat import (
    Connecting,
    Listening,
    MessageReceived,
    NotDelivered,
    RoundTrip,
    SessionStarted,
    StatsListed,
    StatsSummary,
)
from trio_udpchat._colour import PALETTE, PLAIN, AnsiStyle, colour_wanted, name_colour
from trio_udpchat._events import PresenceNoticed, RoomMessage
from trio_udpchat._jsonout import json_formatter
from trio_udpchat._render import render

SGR = re.compile(r"\x1b\[[0-9;]*m")
ADDRESS = ("127.0.0.1", 54321)


def test_a_name_has_the_same_colour_in_every_run() -> None:
    # CRC-32, not hash(): these are fixed whatever PYTHONHASHSEED is.
    assert [name_colour(n) for n in ("alice", "bob", "carol")] == [93, 92, 95]
    assert name_colour("Alice") == name_colour("alice")
    assert {name_colour(f"user{i}") for i in range(200)} == set(PALETTE)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("tty", "environ", "disabled", "wanted"),
    [
        (True, {}, False, True),
        (False, {}, False, False),
        (True, {"NO_COLOR": "1"}, False, False),
        (True, {"NO_COLOR": ""}, False, True),  # set but empty: no-color.org says colour
        (True, {}, True, False),
    ],
)
def test_colour_wanted(tty: bool, environ: dict[str, str], disabled: bool, wanted: bool) -> None:
    stream = _Tty() if tty else io.StringIO()
    assert colour_wanted(stream, environ, disabled=disabled) is wanted


def test_room_lines_colour_names_and_dim_the_time() -> None:
    line = render(RoomMessage("alice", "hi", 0.0), "client", style=AnsiStyle()) or ""
    assert SGR.sub("", line) == render(RoomMessage("alice", "hi", 0.0), "client")
    assert f"\x1b[{name_colour('alice')}malice\x1b[39m" in line
    assert line.startswith("\x1b[2m[")
    joined = render(PresenceNoticed("joined", "bob", "", 0.0), "client", style=AnsiStyle())
    assert joined == f"\x1b[2m--> \x1b[{name_colour('bob')}mbob\x1b[39m joined\x1b[22m"


def test_classic_lines_and_warnings_are_never_coloured() -> None:
    style = AnsiStyle()
    for event, role in [
        (Listening(ADDRESS), "server"),
        (MessageReceived(ADDRESS, "Hello, server!"), "server"),
        (MessageReceived(ADDRESS, "Hello, client!"), "client"),
        (NotDelivered("x", "why"), "client"),
    ]:
        line = render(event, role, style=style)  # type: ignore[arg-type]
        assert line == render(event, role, style=PLAIN)  # type: ignore[arg-type]
        assert line is not None
        assert "\x1b" not in line


def test_first_connection_is_announced_only_with_status() -> None:
    for event in (Connecting(ADDRESS), SessionStarted(ADDRESS)):
        assert render(event, "client") is None
        assert (render(event, "client", status=True) or "").startswith("*** ")
    assert render(SessionStarted(ADDRESS, reconnect=True), "client") is not None


def test_json_fields() -> None:
    fmt = json_formatter("client", clock=lambda: 1700000000.25)
    message = json.loads(fmt(MessageReceived(ADDRESS, "hi")))
    assert message == {
        "type": "message",
        "time": 1700000000.25,
        "from": "server",
        "text": "hi",
        "kind": "say",
        "address": list(ADDRESS),
        "plain": False,
    }
    room = json.loads(fmt(RoomMessage("alice", "waves", 1600000000.0, "act")))
    assert (room["type"], room["time"], room["from"], room["kind"]) == (
        "message",
        1600000000.0,
        "alice",
        "act",
    )
    failed = json.loads(fmt(NotDelivered("x", "the server never answered")))
    assert failed == {
        "type": "delivery_failed",
        "time": 1700000000.25,
        "text": "x",
        "reason": "the server never answered",
    }
    summary = StatsSummary(1, 2, 3, 4, 0, (("duplicate", 1),), (), (RoundTrip(0.01, 0.0, 0.2),))
    stats = json.loads(fmt(StatsListed(summary)))
    assert stats["drops"] == {"duplicate": 1}
    assert stats["round_trips"] == [{"srtt": 0.01, "rttvar": 0.0, "rto": 0.2}]
    assert "\x1b" not in fmt(PresenceNoticed("joined", "e\x1bvil", "", 0.0))
