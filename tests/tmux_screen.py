"""A program in a tmux pane on a private tmux server, and what its screen shows.

Each :class:`TmuxPane` starts its own tmux server on a socket in the test's
temporary directory (``tmux -S``), so tests never touch a user's tmux, and
kills that server when done. Waiting is
by polling the captured screen until the expected text is there, under a
deadline: no sleep stands in for synchronisation.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Final

from tests.e2e_helpers import TIMEOUT, command, program_env

HAVE_TMUX: Final = shutil.which("tmux") is not None
_EXIT: Final = re.compile(r"\[exit status (\d+)\]")
#: How often the screen is looked at while waiting for something on it.
_POLL: Final = 0.02
_names = count()


class TmuxPane:
    """``trio-udpchat *args`` in a ``width`` x ``height`` tmux pane."""

    def __init__(self, tmp: Path, *args: str, width: int = 120, height: int = 20) -> None:
        name = f"tmux-{next(_names)}"
        self.socket = str(tmp / f"{name}.sock")
        config = tmp / f"{name}.conf"
        # Keep the pane after the program exits, so its exit status can be read.
        config.write_text("set -g remain-on-exit on\nset -g history-limit 100\n")
        # The shell reports the exit status on the screen: tmux 3.3 loses it
        # when the pane's terminal closes before the process is reaped.
        argv = " ".join(_quote(arg) for arg in command(*args)) + '; echo "[exit status $?]"'
        size = ("-x", str(width), "-y", str(height))
        # Started in our directory, so it runs the code under test as the other e2e tests do.
        self._tmux("-f", str(config), "new-session", "-d", "-c", os.getcwd(), *size, argv)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", self.socket, *args],
            capture_output=True,
            text=True,
            env=program_env(),
            timeout=TIMEOUT,
            check=True,
        )
        return done.stdout

    def type(self, text: str) -> None:
        """Type ``text`` literally (no Enter)."""
        self._tmux("send-keys", "-l", text)

    def press(self, *keys: str) -> None:
        """Press keys by tmux name: ``Enter``, ``Left``, ``Up``, ``C-c``, ``C-d``."""
        self._tmux("send-keys", *keys)

    def screen(self) -> list[str]:
        """The visible screen, one string per row, trailing spaces removed."""
        return [row.rstrip() for row in self._tmux("capture-pane", "-p").split("\n")]

    def wait_until(self, ready: Callable[[list[str]], bool], what: str) -> list[str]:
        """Poll the screen until ``ready(screen)``; fail after the time limit."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            screen = self.screen()
            if ready(screen):
                return screen
            if time.monotonic() > deadline:
                shown = "\n".join(screen)
                raise AssertionError(f"no {what} within {TIMEOUT} s; the screen:\n{shown}")
            # real-time: tmux has no "screen changed" event to wait on, so look again
            # shortly; each look is the check, the pause only spaces them out.
            time.sleep(_POLL)

    def wait_for_row(self, row: str) -> list[str]:
        """Wait until some row of the screen is exactly ``row``."""
        return self.wait_until(lambda screen: row in screen, repr(row))

    def exit_status(self) -> int:
        """Wait for the program to exit; its status (as the shell around it saw it)."""
        screen = self.wait_until(
            lambda screen: any(_EXIT.fullmatch(row) for row in screen), "exit status"
        )
        (status,) = (int(m[1]) for row in screen if (m := _EXIT.fullmatch(row)))
        return status

    def kill(self) -> None:
        """Stop this test's tmux server (and the program, if it still runs)."""
        subprocess.run(
            ["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=TIMEOUT
        )


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"
