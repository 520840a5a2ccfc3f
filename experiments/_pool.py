"""Worker processes for the grid that know which cell each one runs.

Machinery for :mod:`experiments.grid`. A general process pool (joblib's loky, ``concurrent.futures``)
cannot say which task a dead worker was running: when one worker dies the whole pool breaks and every
task in flight fails. Here each worker has its own pipe and runs one item at a time, so

- a worker that dies (the out-of-memory killer's SIGKILL) is reported as :class:`Lost` with its item
  and exit code, a fresh worker takes its place, and the other items go on;
- :meth:`WorkerPool.stop` dispatches nothing more and lets running items finish; :meth:`WorkerPool.cancel`
  kills the workers now (their items are simply not stored);
- workers die with the runner: on Linux the kernel sends them SIGKILL when their parent dies
  (``PR_SET_PDEATHSIG``), and a watcher thread does the same elsewhere, so no worker outlives a
  SIGKILL-ed runner and keeps writing cells. Workers run in sessions of their own and ignore SIGINT
  and SIGTERM, so a terminal's Ctrl-C (sent to the runner's process group) reaches the runner only:
  it decides whether running cells finish or are cancelled.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Done:
    """An item a worker finished, with what the task returned."""

    item: Any
    result: Any


@dataclass(frozen=True)
class Lost:
    """An item whose worker process died while running it; ``exitcode`` is ``-signal`` when killed."""

    item: Any
    exitcode: int | None


class WorkerError(RuntimeError):
    """The task raised in a worker (a bug, not a failed cell: cells turn their errors into rows)."""


class _Worker:
    """One process with its own pipe; ``item`` is what it runs now (None when idle).

    Started as ``python -m experiments._pool`` in a session of its own, so that a terminal's Ctrl-C
    (sent to the runner's process group) never reaches it: the runner decides what its cells do.
    """

    def __init__(self, task: Callable, slot: int = 0, env: dict[str, str] | None = None) -> None:
        here, there = multiprocessing.Pipe(duplex=True)
        root = str(Path(__file__).resolve().parent.parent)  # import the runner's own code
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        target = f"{task.__module__}:{task.__qualname__}"
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "experiments._pool", str(there.fileno()), str(os.getpid()), target],
                pass_fds=(there.fileno(),),
                env=os.environ | (env or {}) | {"PYTHONPATH": path},
                start_new_session=True,
            )
        finally:
            there.close()
        self.conn = here
        self.slot = slot
        self.item: Any = None

    @property
    def exitcode(self) -> int | None:
        """``-signal`` when killed, like :attr:`multiprocessing.Process.exitcode`."""
        return self.process.poll()


class WorkerPool:
    """``n_workers`` processes running ``task(*args_of(item))``, one item each at a time.

    Parameters
    ----------
    n_workers : int
        Processes to run at once (started when first needed, replaced when one dies).
    task : callable
        A module-level function (it is pickled by reference into the workers).
    args_of : callable
        Maps an item to the task's positional arguments.
    env_of : callable, optional
        Maps a worker's slot (0 .. ``n_workers - 1``; a replacement takes the slot of the worker it
        replaces) to extra environment variables for its process, e.g. the GPU it may see.
    """

    def __init__(
        self,
        n_workers: int,
        task: Callable,
        args_of: Callable[[Any], tuple],
        env_of: Callable[[int], dict[str, str]] | None = None,
    ) -> None:
        self.n_workers = n_workers
        self._task, self._args_of = task, args_of
        self._env_of = env_of or (lambda slot: {})
        self._workers: list[_Worker] = []
        self._stopping = self._cancelled = False

    def stop(self) -> None:
        """Dispatch nothing more; items already running finish."""
        self._stopping = True

    def cancel(self) -> None:
        """Kill the workers at the next check (within ~0.1 s); their items are dropped."""
        self._cancelled = True

    @property
    def busy(self) -> int:
        """How many items are running now."""
        return sum(w.item is not None for w in self._workers)

    def run(self, items: Iterable, check: Callable[[], None] = lambda: None) -> Iterator[Done | Lost]:
        """Run every item; yield a :class:`Done` or :class:`Lost` per item as they end.

        ``check`` is called about every 0.1 s in this (the main) thread; it may call :meth:`stop` or
        :meth:`cancel`. Every worker is gone when the iteration ends, however it ends.
        """
        pending = deque(items)
        try:
            while True:
                check()
                if self._cancelled:
                    return
                if self._stopping:
                    pending.clear()
                self._dispatch(pending)
                busy = [w for w in self._workers if w.item is not None]
                if not busy:
                    return
                ready = set(wait([w.conn for w in busy], timeout=0.1))  # a result, or EOF when it died
                for worker in busy:
                    if worker.conn in ready:
                        yield from self._collect(worker)
        finally:
            self.close()

    def _dispatch(self, pending: deque) -> None:
        for worker in [w for w in self._workers if w.item is None and w.exitcode is not None]:
            self._workers.remove(worker)  # died while idle: nothing of ours was running in it
        while pending:
            idle = next((w for w in self._workers if w.item is None), None)
            if idle is None and len(self._workers) < self.n_workers:
                taken = {w.slot for w in self._workers}
                slot = min(set(range(self.n_workers)) - taken)
                idle = _Worker(self._task, slot, self._env_of(slot))
                self._workers.append(idle)
            if idle is None:
                return
            item = pending.popleft()
            idle.item = item
            with contextlib.suppress(OSError):  # a dead worker shows up as Lost at the next wait
                idle.conn.send(self._args_of(item))

    def _collect(self, worker: _Worker) -> Iterator[Done | Lost]:
        message = None
        with contextlib.suppress(EOFError, OSError):
            if worker.conn.poll():
                message = worker.conn.recv()
        item = worker.item
        if message is None:  # the pipe closed: the process died mid-item
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=5)
            self._workers.remove(worker)
            worker.conn.close()
            yield Lost(item, worker.exitcode)
            return
        worker.item = None
        kind, payload = message
        if kind == "error":
            raise WorkerError(f"a worker raised while running {item!r}:\n{payload}")
        yield Done(item, payload)

    def close(self) -> None:
        """Let idle workers exit, kill busy (or stuck) ones, and reap every process."""
        for worker in self._workers:
            if worker.item is None:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
            else:
                worker.process.kill()
        deadline = time.monotonic() + 5
        for worker in self._workers:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            worker.conn.close()
        self._workers.clear()


def _serve(conn, parent_pid: int, task: Callable) -> None:
    """A worker's life: run items from ``conn`` until told to stop, dying with the parent."""
    for signum in _SIGNALS:  # the runner alone decides (a signal sent to its pid could be forwarded)
        signal.signal(signum, signal.SIG_IGN)
    _die_with_parent(parent_pid)  # again, for a caller other than _main (idempotent)
    while True:
        try:
            args = conn.recv()
        except (EOFError, OSError):
            return
        if args is None:
            return
        try:
            reply = ("done", task(*args))
        except Exception:
            reply = ("error", traceback.format_exc())
        conn.send(reply)


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies; a watcher thread where it cannot."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)
    if not any(t.name == "watch-parent" for t in threading.enumerate()):
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="watch-parent").start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)


def _main(argv: list[str]) -> None:
    """``python -m experiments._pool FD PARENT_PID module:function``: serve items on pipe ``FD``."""
    fd, parent_pid, target = int(argv[0]), int(argv[1]), argv[2]
    _die_with_parent(parent_pid)  # before the task's imports (torch: seconds), not after them
    module, _, name = target.partition(":")
    task = getattr(importlib.import_module(module), name)
    _serve(Connection(fd), parent_pid, task)
    # Every result is stored (atomic writes) and sent by now. Skipping the interpreter's teardown (~0.6 s
    # with torch loaded) lets the runner, which waits for its workers to exit, finish that much sooner.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    _main(sys.argv[1:])
