"""Running a study's cells on a backend: in this process, in the grid's worker pool, or on dask.

Machinery for :mod:`experiments.grid`. :func:`run_cells` returns an :class:`Outcome` rather than
raising, so the runner can always say what is stored: it stops dispatching on a signal or when a cell
cannot be written (disk full), records a cell whose worker died as ``failed``, and goes on otherwise.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from experiments._ensemble import execute_group, groups_of
from experiments._pool import Lost, WorkerPool
from experiments._signals import Cancelled, Interruption
from experiments._worker import (
    apply_allocator_settings,
    execute_cell,
    gpu_environment,
    store_lost_cell,
    visible_gpus,
    worker_environment,
)
from experiments.cell import Cell, run_id
from experiments.errors import UsageError
from experiments.spec import StudySpec, from_dict
from experiments.store import StudyPaths, is_finished


@dataclass(frozen=True)
class Backend:
    """Where cells run: ``n_jobs`` of the grid's worker processes (``processes``; ``loky`` is its former
    name) or dask workers (``dask``)."""

    name: str = "processes"
    n_jobs: int = 1
    scheduler: str | None = None
    progress: bool = False


@dataclass
class Outcome:
    """What a run of cells did.

    Attributes
    ----------
    results : list of dict
        One summary per cell that ended (see :func:`experiments._worker.execute_cell`).
    lost : int
        Cells whose worker process died (stored as ``failed``).
    unstored : str
        Why a cell could not be written (disk full, permissions); empty when every write succeeded.
    cancelled : bool
        Running cells were cancelled by a signal.
    """

    results: list[dict] = field(default_factory=list)
    lost: int = 0
    unstored: str = ""
    cancelled: bool = False


def run_cells(
    spec: StudySpec,
    todo: list[Cell],
    paths: StudyPaths,
    backend: Backend,
    provenance: dict,
    interruption: Interruption,
    levels_only: Mapping[Cell, tuple[str, ...]] | None = None,
) -> Outcome:
    """Compute ``todo`` and store each cell as it ends; see the module docstring.

    ``levels_only`` maps cells stored ``ok`` to the compression levels still to compute of them
    (:attr:`experiments._resume.Plan.levels_only`); every other cell is computed whole.
    """
    from tqdm import tqdm

    os.environ.update(worker_environment())  # inherited by every worker started from here on
    outcome = Outcome()
    args = (spec.to_dict(), str(paths.root), provenance, dict(levels_only or {}))
    show = backend.progress and sys.stderr.isatty()
    bar = tqdm(total=len(todo), unit="cell", disable=not show, dynamic_ncols=True)
    counts: Counter = Counter()

    def record(result: dict) -> None:
        outcome.results.append(result)
        counts[result["status"]] += 1
        if result["status"] == "unstored" and not outcome.unstored:
            outcome.unstored = result["error"]
        bar.update(1)
        bar.set_postfix({k: v for k, v in counts.items() if k != "ok"} or {"failures": 0})

    jobs = Jobs(spec, todo, args)
    interruption.graceful = True
    try:
        if backend.name == "dask":
            _run_on_dask(jobs, backend, record, interruption, outcome)
        elif backend.n_jobs == 1:
            apply_allocator_settings()  # this process started before its environment was set
            for job in jobs.items:
                if interruption.stop or outcome.unstored:
                    break
                for result in jobs.run(job):
                    record(result)
        else:
            _run_in_pool(jobs, backend.n_jobs, record, interruption, outcome)
    except Cancelled:
        outcome.cancelled = True
    finally:
        interruption.graceful = False
        interruption.raise_on_cancel = True
        bar.close()
    return outcome


class Jobs:
    """What the workers run: one cell per job, or with ``train.ensemble`` one group of cells (the seeds
    of a cell, :mod:`experiments._ensemble`). A job's result is a list of cell summaries either way."""

    def __init__(self, spec: StudySpec, todo: list[Cell], args: tuple) -> None:
        self.spec_dict, self.root, self.provenance, self.levels_only = args
        self.ensemble = spec.train.ensemble
        self.items = groups_of(todo, self.levels_only) if self.ensemble else list(todo)
        self.task = execute_group if self.ensemble else execute_cell

    def cells(self, job) -> tuple[Cell, ...]:
        return job if self.ensemble else (job,)

    def args_of(self, job) -> tuple:
        levels = self.levels_only.get(self.cells(job)[0])
        return (self.spec_dict, job, self.root, self.provenance, levels)

    def results(self, result) -> list[dict]:
        return result if self.ensemble else [result]

    def run(self, job) -> list[dict]:
        """Run ``job`` in this process."""
        return self.results(self.task(*self.args_of(job)))

    def lost(self, job, exitcode: int | None) -> list[dict]:
        """Store the cells of a job whose worker died as ``failed`` (a group's cells stored before it
        died are kept); their summaries."""
        out = []
        for cell in self.cells(job):
            levels = self.levels_only.get(cell)
            summary = None
            if self.ensemble and levels is None:
                summary = _stored_summary(self.spec_dict, cell, self.root)
            if summary is None:
                summary = store_lost_cell(self.spec_dict, cell, self.root, self.provenance, exitcode, levels)
            out.append(summary)
        return out


def _stored_summary(spec_dict: dict, cell: Cell, root: str) -> dict | None:
    """The summary of a cell already stored whole, or None."""
    rid = run_id(from_dict(StudySpec, spec_dict), cell)
    paths = StudyPaths(root)
    if not is_finished(paths, rid, quarantine=False):
        return None
    row = pd.read_parquet(paths.cell_file("runs", rid)).iloc[0]
    error = str(row["error"]) if row["status"] != "ok" else ""
    return {"run_id": rid, "status": str(row["status"]), "seconds": 0.0, "cell": cell, "error": error}


def _run_in_pool(jobs: Jobs, n_jobs: int, record, interruption: Interruption, outcome: Outcome) -> None:
    device = jobs.spec_dict.get("train", {}).get("device", "cpu")
    gpus = visible_gpus() if device == "cuda" else []
    pool = WorkerPool(
        n_jobs, jobs.task, jobs.args_of, env_of=lambda slot: gpu_environment(slot, device, gpus)
    )
    interruption.raise_on_cancel = False  # the pool polls the flags and kills its workers itself

    def check() -> None:
        if interruption.cancel:
            pool.cancel()
        elif interruption.stop or outcome.unstored:
            pool.stop()

    for event in pool.run(jobs.items, check):
        if isinstance(event, Lost):
            outcome.lost += len(jobs.cells(event.item))
            for result in jobs.lost(event.item, event.exitcode):
                record(result)
        else:
            for result in jobs.results(event.result):
                record(result)
    outcome.cancelled = interruption.cancel


def _run_on_dask(jobs: Jobs, backend: Backend, record, interruption: Interruption, outcome) -> None:
    from joblib import Parallel, delayed

    def tasks():
        for job in jobs.items:
            if interruption.stop or outcome.unstored:
                return  # joblib then waits for the cells already dispatched
            yield delayed(jobs.task)(*jobs.args_of(job))

    with _dask_backend(backend.scheduler, backend.n_jobs):
        try:
            for result in Parallel(n_jobs=-1, return_as="generator_unordered")(tasks()):
                for summary in jobs.results(result):
                    record(summary)
        except Exception as exc:
            if type(exc).__name__ != "KilledWorker":
                raise
            outcome.lost += 1  # dask retried the cell on other workers, and they died too
            outcome.unstored = f"dask workers died running a cell ({exc})"


@contextlib.contextmanager
def _dask_backend(scheduler: str | None, n_jobs: int):
    try:
        import dask
        import distributed
        from joblib import parallel_config
    except ImportError:
        raise UsageError("--backend dask needs the dask extra: pip install -e '.[dask]'") from None
    env = worker_environment()
    # The nanny sets MALLOC_TRIM_THRESHOLD_=65536 by default, which was measured to halve training speed.
    dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ": dict(
                dask.config.get("distributed.nanny.pre-spawn-environ", {})
            )
            | env
        }
    )
    cluster = None
    if scheduler is None:
        cluster = distributed.LocalCluster(
            n_workers=n_jobs, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
    client = distributed.Client(scheduler or cluster)
    try:
        with parallel_config(backend="dask"):
            yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
