"""A scripted terminal for driving run_server / run_client in tests."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import trio

from trio_udpchat import Event

E = TypeVar("E", bound=Event)


class FakeTerminal:
    """Lines typed by the test come out of :meth:`read_line`; shown events are kept."""

    def __init__(self, *, interactive: bool = False) -> None:
        #: False: like a pipe, the run loop waits for room before taking a line.
        self.interactive = interactive
        self._typed_in, self._typed_out = trio.open_memory_channel[str | None](math.inf)
        self.events: list[Event] = []
        self._changed = trio.Event()

    def enter(self, *lines: str) -> None:
        """Queue lines as if the user typed them."""
        for line in lines:
            self._typed_in.send_nowait(line)

    def eof(self) -> None:
        """The user pressed CTRL+D."""
        self._typed_in.send_nowait(None)

    async def read_line(self) -> str | None:
        """The next typed line, or ``None`` at EOF."""
        return await self._typed_out.receive()

    def show(self, event: Event) -> None:
        """Record ``event`` and wake whoever waits for one."""
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, kind: type[E]) -> list[E]:
        """The events of ``kind`` shown so far."""
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type[E], where: Callable[[E], bool] = lambda e: True) -> E:
        """Wait until an event of ``kind`` matching ``where`` has been shown; return it."""
        checked = 0
        while True:
            for event in self.events[checked:]:
                if isinstance(event, kind) and where(event):
                    return event
            checked = len(self.events)
            await self._changed.wait()
