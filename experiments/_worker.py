"""Running cells in worker processes: per-worker set-up, the data cache and the task function.

Machinery for :mod:`experiments.grid`; kept apart so the worker side imports nothing from the CLI.
"""

from __future__ import annotations

import ctypes
import os
import time
from functools import lru_cache

import torch

from downscalexr.data.base import ImageSplits
from downscalexr.data.registry import load_dataset, seed_dependent
from experiments.cell import Cell, data_options, run_cell, run_id
from experiments.spec import StudySpec, from_dict
from experiments.store import StudyPaths, cell_lock, is_finished, write_cell

# glibc reads these at process start: they must be in the environment before a worker is spawned.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "1000000000000", "MALLOC_TRIM_THRESHOLD_": "1000000000000"}
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def worker_environment() -> dict[str, str]:
    """Variables every worker process needs, keeping any allocator value the user already set."""
    env = {k: os.environ.get(k, v) for k, v in ALLOCATOR_ENV.items()}
    return env | THREAD_ENV


# glibc mallopt parameters matching the MALLOC_*_ variables above
_MALLOPT = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_MMAP_THRESHOLD_": -3}


def apply_allocator_settings() -> bool:
    """Give this running process the allocator settings that workers get from their environment.

    glibc reads ``MALLOC_*_`` only at process start, so the in-process path (``--n-jobs 1``) would run
    without them: freed tensor memory is returned to the OS and faulted back in at every step, which
    was measured to add ~20 % to a default-study cell (12 s of system time in 72 s). ``mallopt`` sets
    the same thresholds at run time. Returns False where there is no glibc (then nothing changes).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    env = worker_environment()
    ok = True
    for name, param in _MALLOPT.items():
        value = min(int(float(env[name])), 2**31 - 1)  # mallopt takes a C int
        ok &= mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1
    return ok


class _Unavailable:
    """Stands in for a seed's data that could not be loaded: any use re-raises the loading error.

    :func:`run_cell` turns an exception inside the run into a ``failed`` row with its text, so the
    cell is stored as failed, with the error, while the grid goes on with the other cells.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str):
        raise self.error


# Enough for every seed x data-changing factor level of the built-in studies (the default study's
# data are ~35 MB per seed), so cells may come in any order without reloading.
@lru_cache(maxsize=32)
def _cached_data(spec_key: str, dataset: str, options_key: str, seed: int, test_seed: int) -> ImageSplits:
    import json

    return load_dataset(dataset, seed=seed, test_seed=test_seed, **json.loads(options_key))


def data_for(spec: StudySpec, cell: Cell) -> ImageSplits:
    """The data of one cell, loaded once per worker process and reused by its following cells.

    The cache key holds the seed (for seed-dependent data) and the data options with the cell's
    data-changing factor levels (permutation, location shift); up to 32 keys stay cached, enough for
    the order of :func:`experiments.cell.cells_of` (fraction first, then seed) to reload nothing.
    """
    import json

    data_seed = cell.seed if seed_dependent(spec.dataset) else -1
    options = json.dumps(data_options(spec, cell), sort_keys=True)
    return _cached_data(spec.name, spec.dataset, options, max(data_seed, 0), spec.test_seed)


def _keep_worker_alive() -> None:
    """Stop loky from recycling this worker as 'leaking' when its resident memory grows by 300 MB.

    With MALLOC_TRIM_THRESHOLD_ set high (for speed) glibc keeps freed activations mapped, so the
    resident size grows without a leak; loky's check then restarts the worker after a cell, which
    costs the imports and the seed's data again (seen: several restarts per 150-cell grid).
    """
    try:
        from joblib.externals.loky import process_executor
    except ImportError:  # a joblib without the vendored loky: nothing to adjust
        return
    process_executor._MAX_MEMORY_LEAK_SIZE = max(process_executor._MAX_MEMORY_LEAK_SIZE, 1 << 40)


def execute_cell(
    spec_dict: dict, cell: Cell, root: str, force: bool, provenance: dict, wait: bool = False
) -> dict:
    """Run one cell in this process and store it; return a short summary for the progress display.

    Returns ``{"run_id", "status", "seconds", "skipped", "locked", "cell"}``; ``skipped`` is set when
    the cell was already finished or another runner holds it (then ``locked`` is set too). With
    ``wait``, a held cell is waited for and run only if its holder did not finish it (a killed holder).
    """
    torch.set_num_threads(1)
    _keep_worker_alive()
    spec = from_dict(StudySpec, spec_dict)
    paths = StudyPaths(root)
    rid = run_id(spec, cell)
    t0 = time.perf_counter()
    skip = {"run_id": rid, "status": "skipped", "seconds": 0.0, "skipped": True, "cell": cell}
    with cell_lock(paths, rid, wait=wait) as mine:
        if not mine:
            return skip | {"locked": True}
        # after waiting, the holder was another runner that has just stored the cell: --force included
        if (not force or wait) and is_finished(paths, rid):
            return skip | {"locked": False}
        try:
            data = data_for(spec, cell)
        except Exception as exc:  # a seed whose data cannot be made fails its cells, not the grid
            data = _Unavailable(exc)
        tables = run_cell(spec, cell, data, provenance | {"threads": torch.get_num_threads()})
        write_cell(paths, tables)
    row = tables["runs"].iloc[0]
    return {
        "run_id": rid,
        "status": str(row["status"]),
        "seconds": time.perf_counter() - t0,
        "skipped": False,
        "locked": False,
        "cell": cell,
        "error": str(row["error"]) if row["status"] != "ok" else "",
    }
