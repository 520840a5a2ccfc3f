"""SIGINT and SIGTERM while a grid runs: stop dispatching, finish or cancel running cells, then exit.

Machinery for :mod:`experiments.grid`. The first Ctrl-C (SIGINT) stops dispatching and lets running
cells finish, so their work is kept; a second Ctrl-C, or a SIGTERM (a scheduler's "stop now"), cancels
the running cells (they are not stored; a rerun computes them). Stored cells are never touched: every
file is renamed into place complete, and a cell counts only once its ``runs`` file is there.
"""

from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Cancelled(BaseException):
    """Raised in the main thread to cancel what runs there now (a ``BaseException``, like
    ``KeyboardInterrupt``, so that a cell's ``except Exception`` does not store it as a failure)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Interruption:
    """Catches SIGINT/SIGTERM for the duration of a ``with`` block and records what was asked.

    Attributes
    ----------
    signum : int or None
        The first signal received (it sets the exit status, ``128 + signum``).
    stop : bool
        Dispatch no more cells.
    cancel : bool
        Cancel the running cells too.
    graceful : bool
        Whether a first SIGINT lets running cells finish (set while cells run); otherwise every signal
        cancels.
    raise_on_cancel : bool
        Raise :class:`Cancelled` from the handler on cancel (for work running in this thread); the
        worker pool instead polls :attr:`cancel`.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.stop = self.cancel = False
        self.graceful = False
        self.raise_on_cancel = True
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Interruption:
        if threading.current_thread() is not threading.main_thread():
            return self  # Python delivers signals to the main thread only: nothing to catch here
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by ``signum``: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + int(self.signum or signal.SIGINT)

    def _handle(self, signum: int, frame) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        self.stop = True
        if signum == signal.SIGINT and first and self.graceful:
            # os.write, not print: the handler may interrupt a write to stderr (the progress bar)
            os.write(2, b"\ninterrupted: no new cells; running cells finish (Ctrl-C again cancels them)\n")
            return
        self.cancel = True
        if self.raise_on_cancel:
            raise Cancelled(self.signum)
