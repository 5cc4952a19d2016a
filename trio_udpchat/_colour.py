"""Colour for the terminal: one stable colour per name, dim notices and timestamps.

Colour is for people at a terminal only: never when stdout is piped, when the
``NO_COLOR`` environment variable is set to anything non-empty (no-color.org),
or with ``--no-color``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Final, TextIO

#: Foreground colours a name may get: readable on dark and light backgrounds
#: (no black, white or plain blue).
PALETTE: Final = (31, 32, 33, 35, 36, 91, 92, 93, 94, 95, 96)
# Each style ends only what it started (default colour, normal intensity), so a
# coloured name inside a dim notice leaves the rest of the notice dim.
_DEFAULT_COLOUR: Final = "\x1b[39m"
_DIM: Final = "\x1b[2m"
_NORMAL: Final = "\x1b[22m"


class Style:
    """How names and notices look: unchanged (the base class is the plain style)."""

    def name(self, name: str) -> str:
        """``name`` as shown in a chat line."""
        return name

    def dim(self, text: str) -> str:
        """``text`` as shown for a notice or a timestamp."""
        return text


class AnsiStyle(Style):
    """ANSI SGR colours: a name's colour comes from a CRC-32 of it, so it is the
    same in every run and on every machine (``hash()`` of a ``str`` is not)."""

    def name(self, name: str) -> str:
        """``name`` in its own colour."""
        return f"\x1b[{name_colour(name)}m{name}{_DEFAULT_COLOUR}"

    def dim(self, text: str) -> str:
        """``text`` dimmed."""
        return f"{_DIM}{text}{_NORMAL}"


PLAIN: Final = Style()


def name_colour(name: str) -> int:
    """The SGR foreground code of ``name``; names equal but for case share one."""
    return PALETTE[zlib.crc32(name.casefold().encode("utf-8")) % len(PALETTE)]


def colour_wanted(stream: TextIO, environ: Mapping[str, str], *, disabled: bool = False) -> bool:
    """Whether to colour what goes to ``stream``: a terminal, no ``NO_COLOR``, no flag."""
    if disabled or environ.get("NO_COLOR", ""):
        return False
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False
