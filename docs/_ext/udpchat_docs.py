"""Sphinx directives that generate reference tables from the code, so they cannot drift.

* ``cli-reference``: every flag of ``trio_udpchat._cli.build_parser()``, per command.
* ``frame-layouts``: the byte layout of every frame type, from ``_wire``'s
  ``struct.Struct`` formats, frame dataclasses and constants.
* ``config-table``: every field of ``Config`` with its default and ``#:`` comment.
* ``client-transitions``: the client's state machine, from ``_client.TRANSITIONS``.

Each directive builds reStructuredText lines with a plain function (``*_rst``)
and parses them in place; the functions are what the tests can call directly.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import struct
from collections.abc import Iterable, Iterator

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from trio_udpchat import _client, _config, _wire
from trio_udpchat._cli import PROG, build_parser

_RST_SPECIAL = re.compile(r"([\\*`|_])")


def _escape(text: str) -> str:
    """``text`` with the characters reStructuredText would interpret escaped."""
    return _RST_SPECIAL.sub(r"\\\1", text)


def _cell(text: str) -> str:
    return _escape(" ".join(text.split()))


def _prose(text: str) -> str:
    """A docstring or ``#:`` comment (already RST) on one line, roles made literal."""
    return re.sub(r":[a-z]+:`~?([^`]+)`", r"``\1``", " ".join(text.split()))


def _list_table(header: Iterable[str], rows: Iterable[Iterable[str]], widths: str) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in (list(header), *(list(r) for r in rows)):
        first, *rest = row
        lines.append(f"   * - {first}")
        lines.extend(f"     - {cell}" for cell in rest)
    lines.append("")
    return lines


# -- the command line ------------------------------------------------------------------


def _help_of(action: argparse.Action, prog: str) -> str:
    """The help text of ``action`` as ``--help`` shows it (``%(default)s`` expanded)."""
    if not action.help or action.help == argparse.SUPPRESS:
        return ""
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = prog
    return action.help % params


def _signature(action: argparse.Action) -> str:
    """``-v, --verbose`` or ``--port PORT``: the option as Sphinx's ``option`` takes it."""
    takes_value = action.nargs != 0 and not isinstance(action, argparse._VersionAction)
    metavar = ""
    if takes_value:
        shown = action.metavar or action.dest.upper()
        metavar = " " + (shown if isinstance(shown, str) else " ".join(shown))
    return ", ".join(option + metavar for option in action.option_strings)


def _options_rst(parser: argparse.ArgumentParser, program: str) -> list[str]:
    lines = [f".. program:: {program}", ""]
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        if action.help == argparse.SUPPRESS:  # internal, as in --help
            continue
        lines += [f".. option:: {_signature(action)}", ""]
        lines += [f"   {_cell(_help_of(action, program))}", ""]
    return lines


def _subcommands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, help, parser)`` of each subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


def cli_reference_rst(parser: argparse.ArgumentParser | None = None) -> list[str]:
    """Every subcommand and flag of ``parser`` (by default the real one), as RST."""
    parser = parser or build_parser()
    lines = [
        _cell(parser.description or ""),
        "",
        "::",
        "",
        f"   {PROG} [--version] [--help] {{{','.join(n for n, _, _ in _subcommands(parser))}}}"
        " [flags]",
        "",
    ]
    lines += _options_rst(parser, PROG)
    lines += ["``--help``, ``-h``: show the flags and exit (for each command too).", ""]
    for name, summary, sub in _subcommands(parser):
        title = f"``{PROG} {name}``"
        lines += [title, "-" * len(title), ""]
        lines += [_cell(sub.description or summary), ""]
        lines += _options_rst(sub, f"{PROG} {name}")
    return lines


# -- frames ------------------------------------------------------------------------------

#: The wire order of the fields packed by each frame's struct, where a frame's
#: dataclass fields differ from it (a Challenge's ``keyed`` byte says whether
#: ``salt`` is empty).
_WIRE_FIELDS: dict[str, tuple[str, ...]] = {"Challenge": ("nonce", "cookie", "keyed", "salt")}
#: Bytes that follow a frame's struct: (field, size).
_TAIL: dict[str, tuple[str, str]] = {
    "Hello": ("proof", f"0 or {_wire.PROOF_SIZE}"),
    "Data": ("payload", "the rest"),
}


def _struct_items(layout: struct.Struct) -> list[tuple[str, int]]:
    """``(type, size)`` of each item of a big-endian ``layout`` such as ``!Q16sB``."""
    fmt = layout.format
    assert fmt.startswith("!"), fmt
    items = []
    for count, code in re.findall(r"(\d*)([a-zA-Z?])", fmt[1:]):
        size = struct.calcsize("!" + count + code)
        if code == "s":
            items.append(("bytes", size))
        else:
            items.append((f"u{8 * size}", size))
    return items


def _frame_rows(frame: type[_wire.Frame]) -> list[tuple[str, str, str, str]]:
    """``(offset, size, field, type)`` rows of a clear ``frame``, header to CRC."""
    name = frame.__name__
    layout: struct.Struct = getattr(_wire, f"_{name.upper()}")
    items = _struct_items(layout)
    fields = _WIRE_FIELDS.get(name) or tuple(f.name for f in dataclasses.fields(frame))
    tail = _TAIL.get(name)
    packed = fields[: len(fields) - 1] if tail and fields[-1] == tail[0] else fields
    if len(packed) != len(items):
        raise ExtensionError(f"frame-layouts: {name}'s fields {packed} do not match {layout}")
    known = set(fields) | {"keyed"}
    missing = {f.name for f in dataclasses.fields(frame)} - known
    if missing:
        raise ExtensionError(f"frame-layouts: {name} has fields {missing} not on the wire")
    code = _wire._CODES[frame]
    rows = [
        ("0", "1", "magic", f"``{_wire.MAGIC:#04x}``"),
        ("1", "1", "version", f"``{_wire.VERSION}``"),
        ("2", "1", "type", f"``{code:#04x}``"),
    ]
    offset = _wire.HEADER_SIZE
    for field, (kind, size) in zip(packed, items, strict=True):
        rows.append((str(offset), str(size), f"``{field}``", kind))
        offset += size
    crc_at = str(offset)
    if tail:
        rows.append((str(offset), tail[1], f"``{tail[0]}``", "bytes"))
        crc_at = "end - 4"
    rows.append((crc_at, "4", "crc", "u32, CRC-32 of all the bytes before it"))
    return rows


def frame_layouts_rst() -> list[str]:
    """A section per frame type: its code, what it means, and its byte layout."""
    lines: list[str] = []
    for frame, code in sorted(_wire._CODES.items(), key=lambda item: item[1]):
        name = frame.__name__
        title = f"{name} (``{code:#04x}``)"
        sealable = frame in (_wire.Welcome, _wire.Data, _wire.Ack, _wire.Bye, _wire.Reset)
        lines += [title, "~" * len(title), ""]
        lines += [_prose(frame.__doc__ or ""), ""]
        lines += [
            "Sealed in a room with a passphrase."
            if sealable
            else "Never sealed: it comes before a key can be known or checked.",
            "",
        ]
        rows = _frame_rows(frame)
        size = sum(int(r[1]) for r in rows if r[1].isdigit())
        extra = f", plus its ``{_TAIL[name][0]}``" if name in _TAIL else ""
        lines += [f"A clear {name} frame is {size} bytes{extra}.", ""]
        lines += _list_table(("offset", "size", "field", "type"), rows, "10 10 20 60")
    return lines


def sealed_layout_rst() -> list[str]:
    """The layout of a sealed frame, from ``_wire``'s constants."""
    nonce_end = _wire.HEADER_SIZE + _wire.AEAD_NONCE_SIZE
    rows = [
        ("0", "1", "magic", f"``{_wire.MAGIC:#04x}``"),
        ("1", "1", "version", f"``{_wire.VERSION}``"),
        ("2", "1", "type", f"``{_wire.SEALED:#04x}`` (sealed)"),
        ("3", str(_wire.AEAD_NONCE_SIZE), "nonce", "bytes, random per frame"),
        (
            str(nonce_end),
            "1 + body",
            "ciphertext",
            "the clear frame's type code and body, encrypted (no magic, version or CRC)",
        ),
        ("end - 16", str(_wire.AEAD_TAG_SIZE), "tag", "Poly1305 tag over ciphertext and header"),
    ]
    return [
        f"A sealed frame spends {_wire.SEALED_OVERHEAD} bytes besides the code and body it"
        f" encrypts; a sealed Data frame spends {_wire.SEALED_DATA_OVERHEAD} bytes besides its"
        f" payload (a clear one {_wire.DATA_OVERHEAD}).",
        "",
        *_list_table(("offset", "size", "field", "type"), rows, "10 10 20 60"),
    ]


def data_flags_rst() -> list[str]:
    rows = [
        (f"``{value:#04x}``", f"``{name}``")
        for name, value in vars(_wire).items()
        if name.startswith("FLAG_") and isinstance(value, int)
    ]
    return _list_table(("bit", "flag"), rows, "20 80")


# -- configuration -------------------------------------------------------------------------


def config_table_rst() -> list[str]:
    """Every ``Config`` field: its default and its ``#:`` comment (shared by a group)."""
    docs = ModuleAnalyzer.for_module(_config.__name__).find_attr_docs()
    rows = []
    comment = ""
    for field in dataclasses.fields(_config.Config):
        lines = docs.get(("Config", field.name))
        if lines:
            comment = " ".join(line.strip() for line in lines if line.strip())
        rows.append((f"``{field.name}``", f"``{field.default!r}``", _prose(comment)))
    return _list_table(("field", "default", "meaning"), rows, "25 15 60")


# -- the client's state machine -----------------------------------------------------------


def client_transitions_rst() -> list[str]:
    rows = [
        (f"``{t.state}``", _cell(t.trigger), f"``{t.next}``", _cell(t.does))
        for t in _client.TRANSITIONS
    ]
    return _list_table(("state", "on", "next state", "what the client does"), rows, "15 30 15 40")


# -- the directives ------------------------------------------------------------------------


class _Generated(SphinxDirective):
    """A directive whose content is the RST a function generates."""

    has_content = False

    def lines(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        source = f"<generated by {type(self).__name__}>"
        content = StringList(self.lines(), source=source)
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, content, node)
        return list(node.children)


class CliReference(_Generated):
    def lines(self) -> list[str]:
        return cli_reference_rst()


class FrameLayouts(_Generated):
    def lines(self) -> list[str]:
        return frame_layouts_rst()


class SealedLayout(_Generated):
    def lines(self) -> list[str]:
        return sealed_layout_rst()


class DataFlags(_Generated):
    def lines(self) -> list[str]:
        return data_flags_rst()


class ConfigTable(_Generated):
    def lines(self) -> list[str]:
        return config_table_rst()


class ClientTransitions(_Generated):
    def lines(self) -> list[str]:
        return client_transitions_rst()


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("cli-reference", CliReference)
    app.add_directive("frame-layouts", FrameLayouts)
    app.add_directive("sealed-layout", SealedLayout)
    app.add_directive("data-flags", DataFlags)
    app.add_directive("config-table", ConfigTable)
    app.add_directive("client-transitions", ClientTransitions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
