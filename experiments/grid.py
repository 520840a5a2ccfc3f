"""Run every cell of a study (model x variant x seed x data fraction x factor levels) and store the
results as Parquet.

    python -m experiments.grid --seeds 10            # the default study, all cores
    python -m experiments.grid --study smoke --n-jobs 1 --dry-run
    python -m experiments.grid --study smoke --set train.lr=1e-3 --variants blurpool,aps

Overrides (``--set key.path=value``) are deep-merged into the study and checked like the file; every
name, the data and every model are checked before the first cell (:mod:`experiments._preflight`).

Resumable: stored cells are skipped, ``failed`` ones retried; ``--force`` recomputes every cell. One
runner at a time per study directory (a lock). Exit codes: see :mod:`experiments.errors`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import signal
import socket
import sys
import time
import warnings
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import yaml

from downscalexr.latency import cpu_model, reference_description
from downscalexr.provenance import git_commit
from downscalexr.train import device_name
from experiments._arguments import build_parser, resolve_spec
from experiments._compression import level_counts, level_summary
from experiments._dispatch import Backend, Outcome, run_cells
from experiments._estimate import estimate_seconds
from experiments._preflight import check_device, check_study
from experiments._resume import Plan, check_same_design, plan_cells
from experiments._signals import Cancelled, Interruption
from experiments._summary import print_dry_run, print_summary
from experiments._worker import describe_os_error, worker_environment
from experiments.cell import cells_of, run_id
from experiments.errors import (
    EXIT_CELLS_NOT_OK,
    EXIT_ENVIRONMENT,
    EXIT_OK,
    EXIT_USAGE,
    EnvironmentFailure,
    UsageError,
)
from experiments.spec import StudySpec
from experiments.store import (
    StudyLockedError,
    StudyPaths,
    move_aside,
    read_study,
    remove_leftover_temporaries,
    set_aside,
    stored_runs,
    study_lock,
    write_atomic,
    write_common_metadata,
    write_json,
)
from experiments.upgrade import outdated_files

PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "statsmodels",
    "joblib",
    "downscalexr",
)
# errors of --out itself (a path through a file, a name too long): bad usage, not the machine's fault
_USAGE_ERRNOS = (errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.EISDIR)


def environment(argv: list[str], n_jobs: int, backend: str, device: str = "cpu") -> dict:
    """What a reader needs to reproduce the numbers: versions, threads, CPU, training device, commit,
    command."""
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
        "git_commit": git_commit(),
        "worker_threads": 1,
        "worker_environment": worker_environment(),
        "latency_reference_workload": reference_description(),
        "n_jobs": n_jobs,
        "backend": backend,
        "device": device,
        "device_name": device_name(device),
        "cuda": _cuda_description(),
        "command": ["python", "-m", "experiments.grid", *argv],
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _cuda_description() -> dict:
    """What this process sees of CUDA: torch's build, the visible GPUs and their names."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return {
        "torch_cuda": torch.version.cuda,
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device_count": count,
        "names": [torch.cuda.get_device_name(i) for i in range(count)],
    }


def run(argv: list[str] | None = None) -> int:
    """Run the grid CLI; return the exit code (see :mod:`experiments.errors`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    spec = resolve_spec(args)
    n_jobs = args.n_jobs if args.n_jobs is not None else (os.cpu_count() or 1)
    if n_jobs < 1:
        raise UsageError(f"--n-jobs must be >= 1, got {n_jobs}")
    paths = StudyPaths(args.out or Path("results") / spec.name)  # a spec's name has no separators
    if args.dry_run:
        return _dry_run(spec, paths, args, n_jobs)
    check_device(spec.train.device)  # exit 2 before anything is loaded or written
    data_info = check_study(spec)  # before anything is written: a bad option or path exits 2 here
    with Interruption() as interruption:
        try:
            return _run_locked(spec, paths, args, argv, n_jobs, interruption, data_info)
        except Cancelled:
            return _interrupted(spec, paths, interruption)


def _dry_run(spec: StudySpec, paths: StudyPaths, args, n_jobs: int) -> int:
    """Print what a run would do; read only (invalid files are reported, not moved)."""
    stored = stored_runs(paths, quarantine=False)
    superseded = check_same_design(paths, spec, stored)
    stored = stored[~stored["run_id"].isin(superseded)]
    plan = plan_cells(spec, stored, args.force, not args.no_retry_failed)
    parents = stored[stored["compression"] == "none"]  # a compression level's row is no cell
    eta = estimate_seconds(spec, parents, list(plan.todo), n_jobs)
    print_dry_run(plan, eta, n_jobs, len(superseded))
    return EXIT_OK


def _run_locked(
    spec, paths: StudyPaths, args, argv: list[str], n_jobs: int, interruption, data_info: dict
) -> int:
    """Prepare the directory, take its lock, and run the cells this invocation has to compute."""
    try:
        paths.prepare()
    except OSError as exc:
        error = UsageError if exc.errno in _USAGE_ERRNOS else EnvironmentFailure
        raise error(f"cannot write to results directory {paths.root}: {describe_os_error(exc)}") from None
    env = environment(argv, n_jobs, args.backend, spec.train.device)
    holder = {"pid": os.getpid(), "host": socket.gethostname()} | {
        k: env[k] for k in ("started_at", "command")
    }
    with study_lock(paths, holder):
        cleaned = remove_leftover_temporaries(paths)
        write_common_metadata(paths)
        stored = stored_runs(paths)  # also moves damaged files of stored cells to quarantine/
        _note_outdated(paths, args.quiet)
        superseded = check_same_design(paths, spec, stored)
        for rid in superseded:
            set_aside(paths, rid, "failed cell of an earlier version of the study file, superseded")
        plan = plan_cells(
            spec, stored[~stored["run_id"].isin(superseded)], args.force, not args.no_retry_failed
        )
        kept = [rid for c, rid in plan.ids.items() if rid in plan.stored and c not in plan.todo]
        _warn_unprobed(paths, spec, kept)
        write_json(paths.root / "data.json", data_info)
        write_atomic(paths.spec, yaml.safe_dump(spec.to_dict(), sort_keys=False))
        _record_environment(paths, env | {"spec": spec.to_dict()})
        backend = Backend(args.backend, n_jobs, args.scheduler, progress=not args.quiet)
        t0 = time.perf_counter()
        outcome = run_cells(
            spec, list(plan.todo), paths, backend, {"git_commit": env["git_commit"]}, interruption,
            plan.levels_only,
        )  # fmt: skip
        elapsed = time.perf_counter() - t0
        if outcome.cancelled or interruption.signum is not None:
            return _interrupted(spec, paths, interruption)
        return _finish(spec, paths, plan, outcome, elapsed, cleaned, args.quiet)


def _finish(
    spec, paths: StudyPaths, plan: Plan, outcome: Outcome, elapsed: float, cleaned: int, quiet: bool
) -> int:
    """Print the summary and the one-line verdict; return the exit code."""
    runs = read_study(paths.root)["runs"]  # also sets aside any invalid or foreign file of any table
    mine = runs[runs["run_id"].isin(set(plan.ids.values()))]
    parents = list(plan.ids.values())
    levels = level_counts(runs, spec, parents)
    if not quiet:
        print_summary(mine, outcome.results, elapsed, len(plan.cells))
        for line in level_summary(runs, spec, parents):
            print(line)
        if cleaned:
            print(f"removed {cleaned} leftover temporary file(s) of an interrupted run")
    stored = f"{len(mine)} of {len(plan.cells)} cells stored"
    if outcome.unstored:
        raise EnvironmentFailure(f"{outcome.unstored}; {stored}; fix this and rerun to resume")
    if outcome.lost:
        print(
            f"experiments.grid: error: {outcome.lost} cell(s) lost their worker process (killed, e.g. by "
            f"the out-of-memory killer) and are stored as failed; {stored}; a rerun retries them",
            file=sys.stderr,
        )
        return EXIT_ENVIRONMENT
    # an unsupported compression level is a result (the operator has no such kernel), not a failure
    bad_levels = levels["failed"] + levels["missing"]
    if len(mine) == len(plan.cells) and bool((mine["status"] == "ok").all()) and not bad_levels:
        return EXIT_OK
    counts = mine["status"].value_counts()
    extra = f", {bad_levels} compression level(s) failed or missing" if bad_levels else ""
    print(
        f"experiments.grid: {counts.get('failed', 0)} failed and {counts.get('diverged', 0)} diverged "
        f"cell(s){extra}; {stored}; a rerun retries the failed ones",
        file=sys.stderr,
    )
    return EXIT_CELLS_NOT_OK


def _interrupted(spec: StudySpec, paths: StudyPaths, interruption: Interruption) -> int:
    """The one line printed on SIGINT/SIGTERM: how many cells are stored and how to resume."""
    mine = {run_id(spec, c) for c in cells_of(spec)}
    runs_dir = paths.table_dir("runs")
    stored = {p.stem for p in runs_dir.glob("*.parquet")} & mine if runs_dir.is_dir() else set()
    name = signal.Signals(interruption.signum or signal.SIGINT).name
    print(
        f"experiments.grid: interrupted ({name}): {len(stored)} of {len(mine)} cells stored; "
        "rerun the same command to resume",
        file=sys.stderr,
    )
    return interruption.exit_code


def _warn_unprobed(paths: StudyPaths, spec: StudySpec, kept: list[str]) -> None:
    """Warn when finished cells kept from an older version lack the latency reference timings.

    Their batch size x format blocks cannot be speed-adjusted (the report leaves them raw); only
    ``--force`` times them again the same way as new cells.
    """
    if not (spec.latency.enabled and spec.latency.reference):
        return
    import pyarrow.parquet as pq

    old = 0
    for rid in kept:
        path = paths.cell_file("latency", rid)
        with contextlib.suppress(OSError, ValueError):
            if not path.exists():
                continue
            if "reference_seconds" not in pq.read_schema(path).names:  # before the column existed
                old += 1
                continue
            column = pq.read_table(path, columns=["reference_seconds"]).column(0)
            old += len(column) > 0 and column.null_count == len(column)  # upgraded: the column is null
    if old:
        print(
            f"warning: {old} of the {len(kept)} finished cells kept from an earlier run were timed without "
            "the latency reference workload (an older version), so the report cannot speed-adjust their "
            "latency; add --force to time every cell the same way",
            file=sys.stderr,
        )


def _note_outdated(paths: StudyPaths, quiet: bool) -> None:
    """Say when files of an earlier version lack columns, so plain Parquet readers see a partial table."""
    stale = sum(len(files) for files in outdated_files(paths).values())
    if stale and not quiet:
        print(
            f"note: {stale} result file(s) in {paths.root} were written by an earlier version without "
            "columns added since; the report reads them, but pandas, duckdb or polars read each table "
            f"whole only after `python -m experiments.upgrade {paths.root}` (values unchanged)",
            file=sys.stderr,
        )


def _record_environment(paths: StudyPaths, env: dict) -> None:
    """Write ``environment.json``: this machine, with this invocation appended to every earlier one.

    A file that cannot be read is moved to ``quarantine/`` (with a warning), not overwritten, so no
    earlier invocation's record is lost.
    """
    history = []
    if paths.environment.exists():
        try:
            history = json.loads(paths.environment.read_text())["invocations"]
            if not isinstance(history, list):
                raise TypeError("invocations is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            where = move_aside(paths, paths.environment, f"unreadable environment.json: {exc}")
            warnings.warn(
                f"{paths.environment} could not be read ({exc}); {where}", UserWarning, stacklevel=2
            )
            history = []
    keys = ("command", "started_at", "n_jobs", "backend", "git_commit", "spec")
    write_json(
        paths.environment,
        {k: v for k, v in env.items() if k != "spec"}
        | {"invocations": [*history, {k: env[k] for k in keys}]},
    )


def main(argv: list[str] | None = None) -> int:
    """The CLI entry point: run, and turn each kind of error into its one-line message and exit code."""
    try:
        return run(argv)
    except UsageError as exc:
        message, code = str(exc), EXIT_USAGE
    except (EnvironmentFailure, StudyLockedError) as exc:
        message, code = str(exc), EXIT_ENVIRONMENT
    except OSError as exc:  # disk full or no permission writing spec.yaml, environment.json, ...
        message, code = f"cannot write results: {describe_os_error(exc)}; rerun to resume", EXIT_ENVIRONMENT
    except (KeyboardInterrupt, Cancelled):  # before the handlers were installed: nothing was written
        message, code = "interrupted before any cell ran", 128 + signal.SIGINT
    print(f"experiments.grid: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
