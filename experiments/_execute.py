"""Running cells in worker processes: per-worker set-up, the data cache and the task function.

Machinery for :mod:`experiments.grid`; kept apart so the worker side imports nothing from the CLI.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache

import torch

from downscalexr.data.base import ImageSplits
from downscalexr.data.registry import load_dataset, seed_dependent
from experiments.cell import Cell, run_cell, run_id
from experiments.spec import StudySpec, from_dict
from experiments.store import StudyPaths, cell_lock, is_finished, write_cell

# glibc reads these at process start: they must be in the environment before a worker is spawned.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "1000000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000000"}
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def worker_environment() -> dict[str, str]:
    """Variables every worker process needs, keeping any allocator value the user already set."""
    env = {k: os.environ.get(k, v) for k, v in ALLOCATOR_ENV.items()}
    return env | THREAD_ENV


@lru_cache(maxsize=2)
def _cached_data(spec_key: str, dataset: str, options_key: str, seed: int, test_seed: int) -> ImageSplits:
    import json

    return load_dataset(dataset, seed=seed, test_seed=test_seed, **json.loads(options_key))


def data_for(spec: StudySpec, seed: int) -> ImageSplits:
    """The data of one seed, generated once per worker process and reused by its following cells."""
    import json

    data_seed = seed if seed_dependent(spec.dataset) else -1
    options = json.dumps(spec.data, sort_keys=True)
    return _cached_data(spec.name, spec.dataset, options, max(data_seed, 0), spec.test_seed)


def execute_cell(spec_dict: dict, cell: Cell, root: str, force: bool, provenance: dict) -> dict:
    """Run one cell in this process and store it; return a short summary for the progress display.

    Returns ``{"run_id", "status", "seconds", "skipped"}``; ``skipped`` is set when another runner
    holds the cell or it was already finished.
    """
    torch.set_num_threads(1)
    spec = from_dict(StudySpec, spec_dict)
    paths = StudyPaths(root)
    rid = run_id(spec, cell)
    t0 = time.perf_counter()
    with cell_lock(paths, rid) as mine:
        if not mine or (not force and is_finished(paths, rid)):
            return {"run_id": rid, "status": "skipped", "seconds": 0.0, "skipped": True, "cell": cell}
        data = data_for(spec, cell.seed)
        tables = run_cell(spec, cell, data, provenance | {"threads": torch.get_num_threads()})
        write_cell(paths, tables)
    row = tables["runs"].iloc[0]
    return {
        "run_id": rid,
        "status": str(row["status"]),
        "seconds": time.perf_counter() - t0,
        "skipped": False,
        "cell": cell,
        "error": str(row["error"]) if row["status"] != "ok" else "",
    }
