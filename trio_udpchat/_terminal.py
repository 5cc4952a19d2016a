"""The real terminal: lines from stdin, rendered events to stdout.

Stdin is read with ``os.read`` in a worker thread (``abandon_on_cancel`` so
CTRL+C never waits for the user), which leaves stdout blocking and holds no
Python-level lock that could wedge interpreter shutdown.

When both stdin and stdout are terminals, a prompt is shown while we wait for
input; an incoming line clears the prompt, prints, and draws it again, so the
screen reads exactly like the classic demo's.
"""

from __future__ import annotations

import codecs
import os
import sys
from collections import deque
from typing import TextIO

import trio

from ._events import Event
from ._render import PROMPTS, Role, render

_CLEAR_LINE = "\r\x1b[K"


class StdioTerminal:
    """A :class:`~trio_udpchat._run.Terminal` over the process's stdin and stdout."""

    def __init__(self, role: Role, *, stdin_fd: int = 0, stdout: TextIO | None = None) -> None:
        self._role = role
        self._fd = stdin_fd
        self._out = stdout if stdout is not None else sys.stdout
        self._interactive = os.isatty(stdin_fd) and self._out.isatty()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._lines: deque[str] = deque()
        self._eof = False
        self._prompt_shown = False

    @property
    def interactive(self) -> bool:
        """Whether stdin and stdout are both terminals (prompts are shown)."""
        return self._interactive

    @property
    def input_ended(self) -> bool:
        """Whether stdin has reached EOF."""
        return self._eof

    async def read_line(self) -> str | None:
        """The next line from stdin without its newline, or ``None`` at EOF."""
        while not self._lines:
            if self._eof:
                if not self._partial:
                    return None
                self._lines.append(self._partial)
                self._partial = ""
                break
            self._show_prompt()
            chunk = await trio.to_thread.run_sync(os.read, self._fd, 65536, abandon_on_cancel=True)
            self._prompt_shown = False  # the user pressed Enter (or CTRL+D)
            self._take(chunk)
        return self._lines.popleft()

    def show(self, event: Event) -> None:
        """Print the line for ``event``, keeping the prompt at the bottom."""
        line = render(event, self._role)
        if line is None:
            return
        if self._prompt_shown:
            # Clear the prompt, print above it, and draw it again below.
            self._out.write(_CLEAR_LINE + line + "\n" + PROMPTS[self._role])
        else:
            self._out.write(line + "\n")
        self._out.flush()

    def close(self) -> None:
        """End the prompt's line, so the shell's prompt starts on a fresh one."""
        if self._prompt_shown:
            self._out.write("\n")
            self._out.flush()
            self._prompt_shown = False

    def _take(self, chunk: bytes) -> None:
        if not chunk:
            self._eof = True
            self._partial += self._decoder.decode(b"", final=True)
            if self._interactive:
                self._out.write("\n")  # CTRL+D left the cursor after the prompt
                self._out.flush()
            return
        text = self._partial + self._decoder.decode(chunk)
        *lines, self._partial = text.split("\n")
        self._lines.extend(line.removesuffix("\r") for line in lines)

    def _show_prompt(self) -> None:
        if self._interactive and not self._prompt_shown:
            self._out.write(PROMPTS[self._role])
            self._out.flush()
            self._prompt_shown = True
