"""Names in a room: what is allowed, what clashes, what to suggest instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # the command line checks names before it loads anything else
    from ._events import Address

MAX_NAME: Final = 32


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be chosen, in words; ``None`` if it can.

    1-32 printable characters, no spaces, and no ``:``, which only the names
    given to members by their address contain (so no one can pose as one).
    """
    if not name:
        return "a name cannot be empty"
    if len(name) > MAX_NAME:
        return f"a name has at most {MAX_NAME} characters"
    if any(char.isspace() for char in name):
        return "a name cannot contain spaces"
    if not name.isprintable():
        return "a name can only contain printable characters"
    if ":" in name:
        return "a name cannot contain ':'"
    return None


def name_key(name: str) -> str:
    """The form names are compared in: ``Alice`` and ``alice`` clash."""
    return name.casefold()


def show_address(address: Address) -> tuple[str, int]:
    """``(host, port)``, as the classic demo prints it, for IPv4 and IPv6 alike."""
    return (str(address[0]), int(address[1]))


def address_name(address: Address) -> str:
    """The name of a member known only by its address: ``host:port`` or ``[v6]:port``."""
    host, port = show_address(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def suggest(name: str, taken: Callable[[str], bool]) -> str:
    """A free name close to ``name`` (``alice`` -> ``alice2``), or ``guest<N>``."""
    base = "".join(char for char in name if char.isprintable() and not char.isspace())
    base = base.replace(":", "")[: MAX_NAME - 4] or "guest"
    for number in range(2, 10_000):
        candidate = f"{base}{number}"
        if not taken(candidate):
            return candidate
    return base  # unreachable in practice: a room holds far fewer members
