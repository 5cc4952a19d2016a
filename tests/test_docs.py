"""The documentation builds (warnings are errors) and its generated pages are complete.

The docs are built once, with Sphinx's text builder, into a temporary folder;
the checks read the rendered pages, so a flag, name or frame missing from a page
fails here even if the extension that generates it has a bug.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

import trio_udpchat
from trio_udpchat import _client, _wire
from trio_udpchat._cli import PROG, build_parser
from trio_udpchat._config import Config

pytest.importorskip("sphinx", reason="sphinx is not installed (pip install -e '.[test]')")

from sphinx.cmd.build import build_main

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    status = build_main(
        ["-q", "-W", "-b", "text", "-d", str(out / ".doctrees"), str(DOCS), str(out)]
    )
    assert status == 0, "sphinx-build -W failed (see the warnings above)"
    return out


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    """The flags ``--help`` shows (hidden ones, such as ``--worker-index``, are internal)."""
    return {
        option
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and action.help != argparse.SUPPRESS
        for option in action.option_strings
    }


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _option_entries(text: str) -> set[str]:
    """The option strings of the option entries in a rendered text section: lines
    such as ``--port PORT`` or ``-v, --verbose``, flush left."""
    found: set[str] = set()
    for line in text.splitlines():
        if re.match(r"-{1,2}[a-z]", line):
            found.update(part.split()[0] for part in line.split(", "))
    return found


def test_the_cli_page_lists_every_flag_of_every_command(built: Path) -> None:
    page = (built / "cli.txt").read_text(encoding="utf-8")
    parser = build_parser()
    commands = _subparsers(parser)
    # Split the page at each command's heading; the part before is the top level.
    headings = [f'"{PROG} {name}"' for name in commands]
    pattern = "|".join(re.escape(h) + r"\n=+\n" for h in headings)
    top, *sections = re.split(pattern, page)
    assert len(sections) == len(commands), "a command has no section"
    assert _option_entries(top) == _flags(parser)
    for (name, sub), section in zip(commands.items(), sections, strict=True):
        assert _option_entries(section) == _flags(sub), f"{PROG} {name}"


def test_the_api_page_documents_every_public_name(built: Path) -> None:
    page = (built / "api.txt").read_text(encoding="utf-8")
    missing = [n for n in trio_udpchat.__all__ if f"trio_udpchat.{n}" not in page]
    assert missing == []


def test_the_protocol_page_has_every_frame_limit_and_transition(built: Path) -> None:
    page = (built / "protocol.txt").read_text(encoding="utf-8")
    for frame, code in _wire._CODES.items():
        assert f'{frame.__name__} ("{code:#04x}")' in page
    for field in dataclasses.fields(Config):
        assert f'"{field.name}"' in page
    rows = re.findall(r'^\| "(\w+)" +\| (.+?) +\| "(\w+)" +\|', page, re.MULTILINE)
    firsts = {(state, next_state) for state, _, next_state in rows}
    assert firsts == {(t.state, t.next) for t in _client.TRANSITIONS}
    assert len(rows) == len(_client.TRANSITIONS)


def test_the_tutorial_quotes_the_real_code(built: Path) -> None:
    page = (built / "tutorial.txt").read_text(encoding="utf-8")
    for excerpt in ("async def receive_task(", "async def timer_task(", "async def run_client("):
        assert excerpt in page
