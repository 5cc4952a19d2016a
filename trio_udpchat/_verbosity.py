"""``-v``/``-vv``: the standard :mod:`logging` output on stderr, never on stdout.

WARNING by default, INFO with ``-v`` (connection changes, peers, a summary of the
traffic on exit), DEBUG with ``-vv`` (every event). At a terminal with a
readline prompt, log lines are printed above the prompt like messages.
"""

from __future__ import annotations

import logging
import sys
from typing import Final

from ._events import (
    Connecting,
    Event,
    Listening,
    PeerJoined,
    PeerLeft,
    PeerMoved,
    ServerAnswered,
    ServerRefused,
    ServerSilent,
    SessionLost,
    SessionStarted,
)
from ._lineeditor import LineEditor

logger: Final = logging.getLogger("trio_udpchat")

#: Events worth an INFO line: the connection's state and who comes and goes.
_INFO_EVENTS: Final = (
    Listening,
    Connecting,
    SessionStarted,
    ServerSilent,
    ServerRefused,
    ServerAnswered,
    SessionLost,
    PeerJoined,
    PeerLeft,
    PeerMoved,
)


class _PromptAwareHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to stderr; above the readline prompt when one is shown."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.editor: LineEditor | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.editor is None:
            super().emit(record)
            return
        try:
            self.editor.print_above(self.format(record), sys.stderr)
        except Exception:
            self.handleError(record)


_handler = _PromptAwareHandler()


def configure_logging(verbosity: int) -> None:
    """Send our log records to stderr at the level ``verbosity`` (0, 1, 2+) asks for."""
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    _handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    logger.setLevel(level)
    if _handler not in logger.handlers:
        logger.addHandler(_handler)
    logger.propagate = False


def log_above(editor: LineEditor | None) -> None:
    """Print log lines above ``editor``'s prompt (``None``: straight to stderr)."""
    _handler.editor = editor


def log_event(event: Event) -> None:
    """Log ``event``: state changes at INFO, everything at DEBUG."""
    if isinstance(event, _INFO_EVENTS):
        logger.info("%r", event)
    else:
        logger.debug("%r", event)
