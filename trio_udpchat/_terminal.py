"""The real terminal: lines from stdin, rendered events to stdout.

Stdin is read with ``os.read`` in a worker thread (``abandon_on_cancel`` so
CTRL+C never waits for the user), which leaves stdout blocking and holds no
Python-level lock that could wedge interpreter shutdown.

When both stdin and stdout are terminals, GNU readline edits the line (history,
cursor keys; see :mod:`._lineeditor`) and an incoming message is printed above
the prompt, which is drawn again with the half-typed line intact. Without
readline, a plain prompt is cleared and drawn again the same way. Lines that
arrive together from a terminal (a multi-line paste) make one message; from a
pipe, every line is one, and there are no prompts and no escape codes.
"""

from __future__ import annotations

import codecs
import os
import select
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import TextIO

import trio

from ._colour import PLAIN, Style
from ._commands import Role
from ._events import Connecting, Event, NotEncrypted, ServerAnswered, SessionStarted
from ._lineeditor import LineEditor, open_line_editor
from ._render import PROMPTS, render

_CLEAR_LINE = "\r\x1b[K"
#: How long after a line more input may follow and still belong to the same paste.
_PASTE_GAP = 0.01
_READ_SIZE = 65536


def _read_once(fd: int) -> list[bytes]:
    """Block for the next chunk of input (``b""`` at EOF)."""
    return [os.read(fd, _READ_SIZE)]


def _read_burst(fd: int) -> list[bytes]:
    """Block for input, then take whatever else arrives right behind it (a paste).

    The chunks come back in order; an EOF among them is kept as ``b""``, since a
    terminal reports CTRL+D only once.
    """
    chunks = [os.read(fd, _READ_SIZE)]
    for _ in range(1024):  # bounded: a paste of up to 1024 reads
        if not chunks[-1] or not select.select([fd], [], [], _PASTE_GAP)[0]:
            break
        chunks.append(os.read(fd, _READ_SIZE))
    return chunks


#: Turns an event into the line to print (``None``: nothing), e.g. as JSON.
Formatter = Callable[[Event], str | None]


class StdioTerminal:
    """A :class:`~trio_udpchat._run.Terminal` over the process's stdin and stdout.

    ``style`` colours what is printed; ``formatter`` replaces the rendering
    altogether (``--json``: no prompts then, whatever stdin is); each of
    ``observers`` also sees every event, and ``on_typed`` every line read
    (a log file, the log). Events of the types in ``hidden`` are observed but
    not printed (a worker leaves what is said once per server to its supervisor).
    """

    def __init__(
        self,
        role: Role,
        *,
        receipts: bool = False,
        stdin_fd: int = 0,
        stdout: TextIO | None = None,
        style: Style = PLAIN,
        formatter: Formatter | None = None,
        observers: Sequence[Callable[[Event], None]] = (),
        on_typed: Callable[[str], None] | None = None,
        line_editing: bool = True,
        hidden: tuple[type[Event], ...] = (),
    ) -> None:
        self._role = role
        self._receipts = receipts
        self._fd = stdin_fd
        self._out = stdout if stdout is not None else sys.stdout
        self._style = style
        self._formatter = formatter
        self._observers = tuple(observers)
        self._on_typed = on_typed
        self._hidden = hidden
        self._just_connected = False
        self._said_connecting = False
        self._interactive = formatter is None and os.isatty(stdin_fd) and self._out.isatty()
        self._editor: LineEditor | None = None
        if self._interactive and line_editing:
            self._editor = open_line_editor(PROMPTS[role], self._out, stdin_fd)
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

    @property
    def line_editor(self) -> LineEditor | None:
        """The readline editor in use, if any (others may print above its prompt)."""
        return self._editor

    async def read_line(self) -> str | None:
        """The next line from stdin without its newline, or ``None`` at EOF."""
        line = await self._read_line()
        if line is not None and self._on_typed is not None:
            self._on_typed(line)
        return line

    async def _read_line(self) -> str | None:
        if self._editor is not None:
            return await self._edit_line(self._editor)
        while not self._lines:
            if self._eof:
                if not self._partial:
                    return None
                self._lines.append(self._partial)
                self._partial = ""
                break
            self._show_prompt()
            read = _read_burst if self._interactive else _read_once
            chunks = await trio.to_thread.run_sync(read, self._fd, abandon_on_cancel=True)
            self._prompt_shown = False  # the user pressed Enter (or CTRL+D)
            self._take(chunks)
        return self._lines.popleft()

    async def _edit_line(self, editor: LineEditor) -> str | None:
        while not self._lines and not self._eof:
            lines, self._eof = await trio.to_thread.run_sync(editor.read, abandon_on_cancel=True)
            if len(lines) > 1:
                self._lines.append("\n".join(lines))  # a paste is one message
            else:
                self._lines.extend(lines)
        return self._lines.popleft() if self._lines else None

    def show(self, event: Event) -> None:
        """Print the line for ``event``, keeping the prompt at the bottom."""
        for observe in self._observers:
            observe(event)
        if isinstance(event, self._hidden):
            return
        just_connected, self._just_connected = self._just_connected, False
        if self._formatter is not None:
            line = self._formatter(event)
        elif isinstance(event, ServerAnswered) and just_connected and self._interactive:
            line = None  # "connected" right before it said so already
        else:
            self._just_connected = isinstance(event, SessionStarted)
            # "connected" only answers a "connecting" shown before (a slow server):
            # a prompt connection keeps the classic screen as it was.
            self._said_connecting |= isinstance(event, Connecting)
            status = self._interactive and (
                self._said_connecting or not isinstance(event, SessionStarted)
            )
            line = render(
                event, self._role, receipts=self._receipts, status=status, style=self._style
            )
        if line is None:
            return
        if self._editor is not None:
            self._editor.print_above(line)
            return
        if isinstance(event, NotEncrypted) and self._formatter is None:
            # A notice about the program, not the conversation: stdout keeps the
            # classic transcript byte for byte.
            print(line, file=sys.stderr, flush=True)
            return
        if self._prompt_shown:
            # Clear the prompt, print above it, and draw it again below.
            self._out.write(_CLEAR_LINE + line + "\n" + PROMPTS[self._role])
        else:
            self._out.write(line + "\n")
        self._out.flush()

    def close(self) -> None:
        """End the prompt's line, so the shell's prompt starts on a fresh one."""
        if self._editor is not None:
            self._editor.close()
        if self._prompt_shown:
            self._out.write("\n")
            self._out.flush()
            self._prompt_shown = False

    def _take(self, chunks: list[bytes]) -> None:
        lines: list[str] = []
        for chunk in chunks:
            if not chunk:
                self._eof = True
                break
            *complete, self._partial = (self._partial + self._decoder.decode(chunk)).split("\n")
            lines.extend(line.removesuffix("\r") for line in complete)
        if self._interactive and len(lines) > 1:
            self._lines.append("\n".join(lines))  # a paste is one message
        else:
            self._lines.extend(lines)
        if self._eof:
            self._partial += self._decoder.decode(b"", final=True)
            if self._interactive:
                self._out.write("\n")  # CTRL+D left the cursor after the prompt
                self._out.flush()

    def _show_prompt(self) -> None:
        if self._interactive and not self._prompt_shown:
            self._out.write(PROMPTS[self._role])
            self._out.flush()
            self._prompt_shown = True
