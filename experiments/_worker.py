"""What runs inside a worker process: per-worker set-up, the data cache and the cell task.

Machinery for :mod:`experiments.grid`; kept apart so the worker side imports nothing from the CLI. The
same :func:`execute_cell` runs in-process (``--n-jobs 1``), in the grid's worker pool
(:mod:`experiments._pool`) and on dask workers.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from functools import lru_cache

import torch

from downscalexr.data.base import ImageSplits
from downscalexr.data.registry import load_dataset, seed_dependent
from experiments._compression import failed_levels, stored_levels_only, write_runs
from experiments.cell import Cell, data_options, run_cell, run_id
from experiments.spec import StudySpec, from_dict
from experiments.store import StudyPaths

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


# cuBLAS picks its reduction order per workspace; a fixed workspace makes GEMMs repeatable
# (NVIDIA's documented requirement for torch.use_deterministic_algorithms on CUDA >= 10.2)
CUBLAS_ENV = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def visible_gpus() -> list[str]:
    """The GPUs this process may hand to workers: the entries of ``CUDA_VISIBLE_DEVICES`` when it is
    set, else indices ``0 .. torch.cuda.device_count() - 1``."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_environment(slot: int, device: str, gpus: list[str]) -> dict[str, str]:
    """The environment of worker ``slot``: with ``device == "cuda"`` it sees one GPU, round-robin over
    ``gpus`` (so ``n_jobs`` workers share them evenly); with ``cuda:N`` every worker sees what this
    process sees (N indexes that list); nothing for the CPU."""
    if not device.startswith("cuda"):
        return {}
    env = {k: os.environ.get(k, v) for k, v in CUBLAS_ENV.items()}
    if device == "cuda" and gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


def configure_device(device: str) -> None:
    """Make this process's training on ``device`` as repeatable as the hardware allows.

    For a CUDA device: deterministic algorithms where torch has them (a warning, not an error, where
    it has none), cuDNN autotuning off (it picks kernels by timing) and cuDNN's deterministic kernels.
    Nothing changes for the CPU, whose kernels are already deterministic for a fixed thread count.
    """
    if not device.startswith("cuda"):
        return
    for key, value in CUBLAS_ENV.items():
        os.environ.setdefault(key, value)  # read when cuBLAS starts, i.e. at the first GEMM
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


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


class WorkerLostError(RuntimeError):
    """The worker process running a cell died (killed by a signal, e.g. by the out-of-memory killer)."""


def execute_cell(
    spec_dict: dict, cell: Cell, root: str, provenance: dict, levels_only: tuple[str, ...] | None = None
) -> dict:
    """Run one cell in this process and store it; return a short summary for the progress display.

    Returns ``{"run_id", "status", "seconds", "cell", "error"}``. The runner decides which cells to
    compute (it holds the study directory's lock), so a stored cell handed in here is recomputed. When
    its files cannot be written (disk full, no permission) the status is ``"unstored"`` and ``error``
    says why: nothing of the cell is left half-written, and the runner stops.

    ``levels_only`` names compression levels of a cell stored ``ok``: the cell is retrained, checked
    against its stored rows, and only those levels are stored (see :mod:`experiments._compression`);
    the status is then ``failed`` when a level failed.
    """
    torch.set_num_threads(1)
    spec = from_dict(StudySpec, spec_dict)
    configure_device(spec.train.device)
    rid = run_id(spec, cell)
    t0 = time.perf_counter()
    try:
        data = data_for(spec, cell)
    except Exception as exc:  # a seed whose data cannot be made fails its cells, not the grid
        data = _Unavailable(exc)
    tables = run_cell(spec, cell, data, provenance | {"threads": torch.get_num_threads()}, levels_only)
    return store_cell(root, tables, rid, cell, time.perf_counter() - t0, levels_only)


def store_cell(
    root: str, tables: dict, rid: str, cell: Cell, seconds: float, levels_only: tuple[str, ...] | None
) -> dict:
    """Store one computed cell (or, with ``levels_only``, only its levels); return its summary."""
    if levels_only is not None:
        tables = stored_levels_only(StudyPaths(root), tables, rid, levels_only)
    summary = {"run_id": rid, "seconds": seconds, "cell": cell}
    try:
        write_runs(StudyPaths(root), tables)
    except OSError as exc:
        return summary | {"status": "unstored", "error": f"cannot write results: {describe_os_error(exc)}"}
    runs = tables["runs"]
    if levels_only is not None:  # only level rows were stored: ok unless one of them failed
        runs = runs[runs["status"] == "failed"]
        if runs.empty:
            return summary | {"status": "ok", "error": ""}
    row = runs.iloc[0]
    return summary | {
        "status": str(row["status"]),
        "error": str(row["error"]) if row["status"] != "ok" else "",
    }


def store_lost_cell(
    spec_dict: dict,
    cell: Cell,
    root: str,
    provenance: dict,
    exitcode: int | None,
    levels_only: tuple[str, ...] | None = None,
) -> dict:
    """Store a cell whose worker process died as ``failed``, with why; return its summary.

    Runs in the runner's process: the cell's run is not repeated (it may be what killed the worker),
    and a plain rerun retries it like any failed cell. For a ``levels_only`` job (see
    :func:`execute_cell`) the stored cell is kept and only those levels are stored as failed.
    """
    spec = from_dict(StudySpec, spec_dict)
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() else str(-exitcode)
        how = f"was killed by signal {-exitcode} ({name}"
        how += ", e.g. by the out-of-memory killer)" if -exitcode == signal.SIGKILL else ")"
    else:
        how = f"exited with code {exitcode}"
    error = WorkerLostError(f"the worker process running this cell {how}; a rerun retries the cell")
    tables = run_cell(spec, cell, _Unavailable(error), provenance, levels=())
    if levels_only is not None:
        tables = failed_levels(tables, run_id(spec, cell), levels_only, str(error))
    write_runs(StudyPaths(root), tables)
    rid = run_id(spec, cell)
    return {"run_id": rid, "status": "failed", "seconds": 0.0, "cell": cell, "error": str(error)}


def describe_os_error(exc: OSError) -> str:
    """``strerror: filename`` of an :class:`OSError`, in one line."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{text}: {exc.filename}" if exc.filename else text
