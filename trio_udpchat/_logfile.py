"""``--log FILE``: the conversation appended to a file, a timestamp on each line.

Plain text, no colour and no prompts, flushed after every line, so ``tail -f``
follows along and nothing is lost if the program is killed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from ._commands import Role
from ._events import Event, NotEncrypted
from ._render import render


class LogFile:
    """Appends each shown event's line to a file; call :meth:`close` at the end."""

    def __init__(
        self,
        path: str,
        role: Role,
        *,
        receipts: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Line-buffered UTF-8; opening fails early with OSError, which the CLI reports.
        self._file: TextIO = open(path, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        self._role = role
        self._receipts = receipts
        self._clock = clock

    def __call__(self, event: Event) -> None:
        """Append the line for ``event``, if it has one (the conversation, not notices
        about the program such as :class:`NotEncrypted`)."""
        if isinstance(event, NotEncrypted):
            return
        line = render(event, self._role, receipts=self._receipts, status=True)
        if line is not None:
            self._write(line)

    def _write(self, line: str) -> None:
        if self._file.closed:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self._clock()))
        for part in line.split("\n"):  # a multi-line message stays one entry per line
            self._file.write(f"{stamp} {part}\n")
        self._file.flush()

    def typed(self, line: str) -> None:
        """Append what the user typed (a message or a command), marked ``>``."""
        self._write("> " + line)

    def close(self) -> None:
        """Close the file."""
        self._file.close()
