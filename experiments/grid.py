"""Run every cell of a study (model x variant x seed x data fraction x factor levels) and store the
results as Parquet.

    python -m experiments.grid --seeds 10            # the default study, all cores
    python -m experiments.grid --study smoke --n-jobs 1 --dry-run

Resumable: finished cells are skipped; ``--force`` recomputes them. Exit code 0 when every cell of the
study is ``ok``, 1 when some failed or diverged (the rest are stored), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import yaml

from downscalexr.data.registry import dataset_options, list_datasets, load_dataset
from downscalexr.latency import cpu_model, reference_description
from downscalexr.layers import list_downsample
from downscalexr.models import list_models
from downscalexr.provenance import git_commit
from experiments._estimate import estimate_seconds
from experiments._execute import apply_allocator_settings, execute_cell, worker_environment
from experiments.cell import Cell, cells_of, data_options, run_id
from experiments.spec import (
    NO_VARIANT,
    SpecError,
    StudySpec,
    design_differences,
    from_dict,
    list_studies,
    load_spec,
)
from experiments.store import StoreError, StudyPaths, finished_run_ids, read_study, write_atomic, write_json

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


class UsageError(ValueError):
    """A bad command-line argument: reported in one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.grid",
        description="Train every variant x seed x data fraction of a study and store the results as "
        "Parquet tables (runs, epochs, predictions, latency, kernels) under results/<study>/. Finished cells "
        "are skipped on rerun; exit code 0 = all cells ok, 1 = some failed or diverged, 2 = bad arguments.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--study", default="default", help=f"built-in study ({', '.join(list_studies())}) or a YAML path"
    )
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds", type=int, default=None, help="run seeds 0..N-1 (default: the study's seeds)"
    )
    seeds.add_argument("--seed-list", default=None, help="comma-separated seeds, e.g. 0,3,7")
    parser.add_argument(
        "--variants", nargs="+", default=None, help="downsampling operators (default: the study's)"
    )
    parser.add_argument(
        "--fractions", nargs="+", type=float, default=None, help="training-data fractions in (0, 1]"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override the study's maximum epochs")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="real-data studies: skip unreadable images (recorded in data.json) instead of stopping",
    )
    parser.add_argument(
        "--data", default=None, help="path to the data for real-data studies (folder or .npz)"
    )
    parser.add_argument(
        "--n-jobs", type=int, default=None, help="worker processes (default: all cores); 1 runs in-process"
    )
    parser.add_argument("--backend", choices=("loky", "dask"), default="loky", help="joblib backend")
    parser.add_argument(
        "--scheduler", default=None, help="dask scheduler address tcp://host:port (default: a local cluster)"
    )
    parser.add_argument("--out", default=None, help="study directory (default: results/<study>)")
    parser.add_argument("--force", action="store_true", help="recompute cells that are already stored")
    parser.add_argument(
        "--dry-run", action="store_true", help="list the cells, how many are done, and a time estimate"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    return parser


def resolve_spec(args: argparse.Namespace) -> StudySpec:
    """Load the study and apply command-line overrides, validating names against the registries."""
    overrides: dict = {}
    if args.seeds is not None:
        if args.seeds <= 0:
            raise UsageError(f"--seeds must be a positive number of seeds, got {args.seeds}")
        overrides["seeds"] = list(range(args.seeds))
    if args.seed_list is not None:
        try:
            overrides["seeds"] = [int(s) for s in args.seed_list.split(",") if s.strip()]
        except ValueError:
            raise UsageError(
                f"--seed-list must be comma-separated integers, got {args.seed_list!r}"
            ) from None
    if args.variants:
        overrides["variants"] = args.variants
    if args.fractions:
        overrides["fractions"] = args.fractions
    try:
        spec = load_spec(args.study, **overrides)
        if args.epochs is not None or args.data is not None or args.skip_bad:
            raw = spec.to_dict()
            if args.epochs is not None:
                raw["train"]["epochs"] = args.epochs
            if args.data is not None:
                raw["data"]["path"] = args.data
            if args.skip_bad:
                raw["data"]["skip_bad"] = True
            spec = load_spec_from(raw)
    except SpecError as exc:
        raise UsageError(str(exc)) from None
    _check_names(spec)
    return spec


def load_spec_from(raw: dict) -> StudySpec:
    return from_dict(StudySpec, raw)


def _check_names(spec: StudySpec) -> None:
    variants = [v for m in spec.model_specs for v in m.variants if v != NO_VARIANT]
    bad = list(dict.fromkeys(v for v in [*spec.variants, *variants] if v not in list_downsample()))
    if bad:
        raise UsageError(f"unknown variant(s) {', '.join(bad)}; choose from {', '.join(list_downsample())}")
    for m in spec.model_specs:
        if m.name not in list_models():
            raise UsageError(f"unknown model {m.name!r}; choose from {', '.join(list_models())}")
    if spec.dataset not in list_datasets():
        raise UsageError(f"unknown data set {spec.dataset!r}; choose from {', '.join(list_datasets())}")
    unknown = sorted(set(spec.data) - set(dataset_options(spec.dataset)))
    if unknown:
        raise UsageError(
            f"data set {spec.dataset!r}: unknown option(s) {', '.join(unknown)}; "
            f"valid: {', '.join(dataset_options(spec.dataset))}"
        )
    if spec.reference not in spec.variants:
        raise UsageError(
            f"reference variant {spec.reference!r} is not among the variants {list(spec.variants)}"
        )


def environment(argv: list[str], n_jobs: int, backend: str) -> dict:
    """What a reader needs to reproduce the numbers: versions, threads, CPU, commit, command."""
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
        "command": ["python", "-m", "experiments.grid", *argv],
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def check_same_design(paths: StudyPaths, spec: StudySpec) -> None:
    """Refuse to mix results of a different specification into one study directory.

    Also refuses a directory written before run ids hashed only non-default fields (its spec.yaml has
    no ``factors``): none of its cells would match this version's ids, so a rerun would store every
    cell a second time beside the old ones.
    """
    if not paths.spec.exists():
        return
    raw = yaml.safe_load(paths.spec.read_text()) or {}
    if "factors" not in raw:
        raise UsageError(
            f"{paths.root} was written by an older version whose run ids this one does not reproduce; "
            "choose another --out or remove that directory (its tables remain readable)"
        )
    try:
        differ = design_differences(from_dict(StudySpec, raw, where=str(paths.spec)), spec)
    except SpecError:  # written by a version whose keys this one does not know
        new = spec.to_dict()
        differ = sorted(k for k in set(raw) | set(new) if raw.get(k) != new.get(k))
    if differ:
        raise UsageError(
            f"{paths.root} holds results of a different specification (differs in: {', '.join(differ)}); "
            "choose another --out or remove that directory"
        )


def run(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    spec = resolve_spec(args)
    n_jobs = args.n_jobs if args.n_jobs is not None else (os.cpu_count() or 1)
    if n_jobs < 1:
        raise UsageError(f"--n-jobs must be >= 1, got {n_jobs}")
    paths = StudyPaths(args.out or Path("results") / spec.name)
    cells = cells_of(spec)
    ids = {c: run_id(spec, c) for c in cells}
    done = finished_run_ids(paths) if paths.table_dir("runs").is_dir() else set()
    todo = [c for c in cells if args.force or ids[c] not in done]

    if args.dry_run:
        eta = estimate_seconds(spec, paths, todo, n_jobs)
        for cell in cells:
            mark = "done" if ids[cell] in done and not args.force else "todo"
            where = f"seed={cell.seed:<3} fraction={cell.data_fraction:<5}"
            print(f"{mark}  {ids[cell]}  {cell.variant:<12} {where} {cell.model}{_factor_text(cell)}")
        done_n = len(cells) - len(todo)
        print(
            f"{len(cells)} cells, {done_n} done, {len(todo)} to run; "
            f"estimated {_duration(eta)} with {n_jobs} job(s)"
        )
        return 0

    try:
        paths.prepare()
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    check_same_design(paths, spec)
    _warn_unprobed(paths, spec, [ids[c] for c in cells if ids[c] in done and not args.force])
    data_info = _preflight(spec)
    write_json(paths.root / "data.json", data_info)
    write_atomic(paths.spec, yaml.safe_dump(spec.to_dict(), sort_keys=False))
    env = environment(argv, n_jobs, args.backend)
    _record_environment(paths, env)
    provenance = {"git_commit": env["git_commit"]}

    t0 = time.perf_counter()
    results = _execute(spec, todo, paths, args, n_jobs, provenance)
    elapsed = time.perf_counter() - t0
    final = read_study(paths.root)["runs"]
    mine = final[final["run_id"].isin(set(ids.values()))]
    if not args.quiet:
        _summary(mine, results, elapsed, len(cells))
    all_ok = len(mine) == len(cells) and bool((mine["status"] == "ok").all())
    return 0 if all_ok else 1


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
            old += path.exists() and "reference_seconds" not in pq.read_schema(path).names
    if old:
        print(
            f"warning: {old} of the {len(kept)} finished cells kept from an earlier run were timed without "
            "the latency reference workload (an older version), so the report cannot speed-adjust their "
            "latency; add --force to time every cell the same way",
            file=sys.stderr,
        )


def _factor_text(cell: Cell) -> str:
    """The cell's non-default factor levels, e.g. `` permute location_shift=0.5 init=edge_frozen``."""
    parts = ["permute"] if cell.permute else []
    if cell.location_shift is not None:
        parts.append(f"location_shift={cell.location_shift:g}")
    if cell.init != "random":
        parts.append(f"init={cell.init}")
    return "".join(f" {p}" for p in parts)


def _preflight(spec: StudySpec) -> dict:
    """Load the first seed's data in this process, so a bad path or option stops the grid at once.

    Returns the data set's provenance (how validation was made, skipped files, duplicates, counts)
    for ``data.json``; per-example id lists are left out.
    """
    try:
        options = data_options(spec, cells_of(spec)[0])
        data = load_dataset(spec.dataset, seed=spec.seeds[0], test_seed=spec.test_seed, **options)
    except (ValueError, OSError, TypeError) as exc:
        raise UsageError(f"cannot load data set {spec.dataset!r}: {str(exc).splitlines()[0]}") from None
    info = {k: v for k, v in data.info.items() if k != "ids"}
    counts = {
        split: {name: int((y == i).sum()) for i, name in enumerate(data.class_names)}
        for split, y in (("train", data.y_train), ("val", data.y_val), ("test", data.y_test))
    }
    return {
        "dataset": spec.dataset,
        "input_shape": list(data.input_shape),
        "class_counts": counts,
        "info": info,
    }


def _record_environment(paths: StudyPaths, env: dict) -> None:
    history = []
    if paths.environment.exists():
        with contextlib.suppress(ValueError, OSError):
            history = json.loads(paths.environment.read_text()).get("invocations", [])
    write_json(
        paths.environment,
        env
        | {
            "invocations": [
                *history,
                {k: env[k] for k in ("command", "started_at", "n_jobs", "backend", "git_commit")},
            ]
        },
    )


def _execute(
    spec: StudySpec, todo: list[Cell], paths: StudyPaths, args, n_jobs: int, provenance: dict
) -> list[dict]:
    from joblib import Parallel, delayed
    from tqdm import tqdm

    os.environ.update(worker_environment())
    spec_dict = spec.to_dict()
    show = not args.quiet and sys.stderr.isatty()
    bar = tqdm(total=len(todo), unit="cell", disable=not show, dynamic_ncols=True)
    tasks = (delayed(execute_cell)(spec_dict, cell, str(paths.root), args.force, provenance) for cell in todo)
    results: list[dict] = []
    counts: Counter = Counter()

    def consume(stream) -> None:
        for result in stream:
            results.append(result)
            counts[result["status"]] += 1
            bar.update(1)
            bar.set_postfix({k: v for k, v in counts.items() if k != "ok"} or {"failures": 0})

    try:
        if args.backend == "dask":
            with _dask_backend(args.scheduler, n_jobs):
                consume(Parallel(n_jobs=-1, return_as="generator_unordered")(tasks))
        elif n_jobs == 1:
            apply_allocator_settings()  # this process started before its environment was set
            consume(execute_cell(spec_dict, cell, str(paths.root), args.force, provenance) for cell in todo)
        else:
            consume(Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")(tasks))
        # Cells another runner held: wait for each, so this runner's exit code and summary describe
        # the finished study rather than a cell still in flight elsewhere (rare; run in-process).
        held = [r for r in results if r.get("locked")]
        if held:
            results[:] = [r for r in results if not r.get("locked")]
            for r in held:
                results.append(
                    execute_cell(spec_dict, r["cell"], str(paths.root), args.force, provenance, wait=True)
                )
    finally:
        bar.close()
    return results


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


def _summary(runs, results: list[dict], elapsed: float, n_cells: int) -> None:
    ran = [r for r in results if not r["skipped"]]
    print(f"\n{len(ran)} cell(s) run in {_duration(elapsed)}; study holds {len(runs)}/{n_cells} cells")
    if len(runs):
        by = ["model", "variant"] if runs["model"].nunique() > 1 else ["variant"]
        table = runs.groupby([*by, "status"]).size().unstack(fill_value=0)
        acc = runs[runs["status"] == "ok"].groupby(by)["accuracy"].mean().rename("mean accuracy")
        secs = runs.groupby(by)["train_seconds"].median().rename("median train s")
        print(table.join(acc).join(secs).round(4).to_string())
    for r in ran:
        if r["status"] != "ok":
            lines = (r.get("error") or "").strip().splitlines()
            cell = r["cell"]
            last = lines[-1] if lines else ""
            where = f"{cell.variant} seed={cell.seed} fraction={cell.data_fraction}{_factor_text(cell)}"
            print(f"  {r['status']}: {where} [{cell.model}]: {last}")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except UsageError as exc:
        print(f"experiments.grid: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
