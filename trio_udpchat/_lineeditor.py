"""GNU readline for a chat: line editing and history while messages keep arriving.

Python's :mod:`readline` module loads GNU readline, reads ``~/.inputrc`` and keeps
the history, but its only way to read is a blocking ``input()``, and nothing
may be printed while that runs without wrecking the line being typed. So we
drive readline's *callback* interface (``rl_callback_handler_install``,
``rl_callback_read_char``) through :mod:`ctypes`, from the very library the module
loaded, and print messages with readline's own save-clear-print-redisplay idiom.

Threads: :meth:`LineEditor.read` runs in a worker thread and blocks in
``select()`` until a key is waiting; messages are printed by the Trio thread.
Readline is not thread-safe, so every call into it happens under one lock,
which the worker holds only while readline handles a key that has already
arrived, never while it waits for the user.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import sys
import threading
from typing import Any, Final, TextIO

#: How long after a line more input may follow and still belong to the same paste.
PASTE_GAP: Final = 0.01
#: At most this many keys are handled per read before the lines so far are returned.
_MAX_KEYS: Final = 1 << 20

_Handler = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _load() -> Any:
    """The GNU readline library behind the :mod:`readline` module, or ``None``."""
    try:
        import readline
    except ImportError:  # Windows, or a Python built without it
        return None
    if "libedit" in (readline.__doc__ or ""):  # macOS's emulation lacks the display calls
        return None
    try:
        lib = ctypes.CDLL(getattr(readline, "__file__", None))
        for name in (
            "rl_callback_handler_install",
            "rl_callback_read_char",
            "rl_callback_handler_remove",
            "rl_save_prompt",
            "rl_restore_prompt",
            "rl_replace_line",
            "rl_redisplay",
        ):
            getattr(lib, name)
        ctypes.c_int.in_dll(lib, "rl_catch_signals").value = 0  # CTRL+C is Trio's to handle
    except (OSError, AttributeError, ValueError):
        return None
    lib.rl_callback_handler_install.argtypes = [ctypes.c_char_p, _Handler]
    lib.rl_replace_line.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return lib


def _free(pointer: int) -> None:
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    libc.free(pointer)


class LineEditor:
    """A readline prompt on ``out`` that lines can be printed above at any time.

    Create one only when stdin and stdout are terminals; :func:`open_line_editor`
    returns ``None`` where GNU readline cannot be driven.
    """

    def __init__(self, lib: Any, prompt: str, out: TextIO, in_fd: int = 0) -> None:
        import readline

        self._readline = readline
        self._lib = lib
        self._prompt = prompt.encode("utf-8")
        self._out = out
        self._in_fd = in_fd
        self._lock = threading.Lock()  # guards every call into readline and the fields below
        self._handler = _Handler(self._on_line)  # kept referenced: readline holds a pointer
        self._installed = False  # the prompt is shown and readline owns the terminal
        self._closed = False
        self._reading = False
        self._got: list[str | None] = []
        self._wake_r, self._wake_w = os.pipe()

    # -- the worker thread ----------------------------------------------------

    def read(self) -> tuple[list[str], bool]:
        """Block until the user enters a line; return ``(lines, eof)``.

        Several lines come back when they arrive together (a paste without
        bracketed-paste support); ``eof`` when CTRL+D was pressed on an empty line
        or the editor was closed. Runs in a worker thread.
        """
        with self._lock:
            if self._closed:
                return [], True
            self._reading = True
            if not self._installed:
                self._lib.rl_callback_handler_install(self._prompt, self._handler)
                self._installed = True
        try:
            return self._read_keys()
        finally:
            with self._lock:
                self._reading = False
                if self._closed:
                    self._close_pipe()

    def _read_keys(self) -> tuple[list[str], bool]:
        for _ in range(_MAX_KEYS):
            # Wait for a key for as long as it takes; once a line is in, only as
            # long as a paste's next line would take.
            timeout = PASTE_GAP if self._got else None
            ready, _, _ = select.select([self._in_fd, self._wake_r], [], [], timeout)
            if self._wake_r in ready:
                return [], True
            if not ready:
                break
            with self._lock:
                if self._closed:
                    return [], True
                self._lib.rl_callback_read_char()
            if None in self._got:
                break
        got, self._got = self._got, []
        lines = [line for line in got if line is not None]
        return lines, len(lines) < len(got)

    def _on_line(self, pointer: int | None) -> None:
        """Readline's handler: called inside ``rl_callback_read_char``, lock held."""
        if pointer is None:  # CTRL+D on an empty line
            self._lib.rl_callback_handler_remove()
            self._installed = False
            self._out.write("\n")  # the cursor was left after the prompt
            self._out.flush()
            self._got.append(None)
            return
        line = ctypes.string_at(pointer).decode("utf-8", errors="replace")
        _free(pointer)
        if line.strip():
            self._readline.add_history(line)
        self._got.append(line)

    # -- any thread -----------------------------------------------------------

    def print_above(self, text: str, stream: TextIO | None = None) -> None:
        """Print ``text`` (and a newline) to ``stream`` (default: the prompt's), above
        the prompt, and redraw the prompt with the half-typed line and cursor as they were."""
        out = self._out if stream is None else stream
        with self._lock:
            if not self._installed:
                out.write(text + "\n")
                out.flush()
                return
            lib = self._lib
            point = ctypes.c_int.in_dll(lib, "rl_point")
            saved_point = point.value
            saved_line = ctypes.c_char_p.in_dll(lib, "rl_line_buffer").value or b""
            lib.rl_save_prompt()
            lib.rl_replace_line(b"", 0)
            lib.rl_redisplay()  # an empty prompt and line: the cursor is at column 0
            out.write(text + "\n")
            out.flush()
            lib.rl_restore_prompt()
            lib.rl_replace_line(saved_line, 0)
            point.value = saved_point
            lib.rl_redisplay()

    def close(self) -> None:
        """Give the terminal back (its modes restored, the cursor on a fresh line)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._installed:
                self._lib.rl_callback_handler_remove()
                self._installed = False
                self._out.write("\n")
                self._out.flush()
            if self._reading:
                os.write(self._wake_w, b"x")  # the worker closes the pipe on its way out
            else:
                self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def open_line_editor(prompt: str, out: TextIO | None = None, in_fd: int = 0) -> LineEditor | None:
    """A :class:`LineEditor` if GNU readline can be driven here, else ``None``."""
    lib = _load()
    if lib is None:
        return None
    return LineEditor(lib, prompt, out if out is not None else sys.stdout, in_fd)
