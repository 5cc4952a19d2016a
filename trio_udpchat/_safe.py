"""Text from the network, made safe to show on someone's terminal.

Control characters (C0, DEL, C1: escape sequences start with them) and the
invisible format characters (bidi overrides, zero-width joiners, ...) are shown
as visible escapes, the way ``repr`` shows them, so no peer can retitle, clear
or reprogram a terminal, or make text read differently than it is.
"""

from __future__ import annotations

import unicodedata


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def visible(text: str) -> str:
    """``text`` with every control, format and unassigned character escaped."""
    if text.isprintable():  # the common case, and fast
        return text
    return "".join(_escape(char) if _unsafe(char) else char for char in text)
