"""Grid runner speed: parallel efficiency of 2 workers over 1, and the per-cell overhead of the runner.

    .venv/bin/python tests/benchmarks/bench_grid.py                 # default study, seed 0 (15 cells)
    .venv/bin/python tests/benchmarks/bench_grid.py --seeds 2 --fractions 0.05 1.0

Runs the same reduced study twice, as the user would (``python -m experiments.grid`` in a fresh process,
into a temporary directory): once with ``--n-jobs 1`` and once with ``--n-jobs 2``. Prints

- both wall times and their ratio (issue 3 target: >= 1.9x on the 2-core machine);
- the runner's overhead: the share of worker time spent outside the cells (process start, imports,
  data generation, locking, writing, scheduling, idle tail; target < 5 %), read from each cell's
  ``started_at``/``finished_at`` in the runs table;
- the share of each cell that is not training (model build, evaluation, latency timing), from
  ``train_seconds``;
- the load average and CPU seconds, since on a shared machine other processes take cores away.

Not collected by pytest (no ``test_`` prefix): it takes minutes.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]


def run_grid(study: str, seeds: str, fractions: list[str], out: Path, n_jobs: int) -> dict:
    """Run the grid CLI in a fresh process; return wall time, CPU time and the launch time."""
    cmd = [sys.executable, "-m", "experiments.grid", "--study", study, "--seed-list", seeds]
    cmd += ["--fractions", *fractions] if fractions else []
    cmd += ["--out", str(out), "--n-jobs", str(n_jobs), "--quiet"]
    env = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    launched = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"grid with --n-jobs {n_jobs} exited {proc.returncode}:\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall": wall,
        "cpu": cpu,
        "launched": launched,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def cell_times(out: Path) -> pd.DataFrame:
    """Per cell: wall seconds inside the cell, training seconds, and the start as epoch seconds."""
    runs = pd.read_parquet(out / "runs")
    start = pd.to_datetime(runs["started_at"], format="ISO8601")
    end = pd.to_datetime(runs["finished_at"], format="ISO8601")
    return pd.DataFrame(
        {
            "cell_key": runs["variant"]
            + "/"
            + runs["seed"].astype(str)
            + "/"
            + runs["data_fraction"].astype(str),
            "accuracy": runs["accuracy"],
            "status": runs["status"],
            "cell": (end - start).dt.total_seconds(),
            "train": runs["train_seconds"],
            "start": (start - pd.Timestamp(0, tz="UTC")).dt.total_seconds(),
        }
    )


def summarise(n_jobs: int, timing: dict, cells: pd.DataFrame) -> dict:
    """Overhead figures of one grid run (see the module docstring)."""
    worker_time = n_jobs * timing["wall"]
    startup = cells["start"].min() - timing["launched"]
    return {
        "n_jobs": n_jobs,
        "cells": len(cells),
        "wall_s": timing["wall"],
        "cpu_s": timing["cpu"],
        # cores this run actually got: below n_jobs when other processes share the machine
        "cores_used": timing["cpu"] / timing["wall"],
        "mean_cell_s": cells["cell"].mean(),
        "startup_s": startup,
        # everything a worker does outside run_cell, start-up and idle tail included
        "outside_cells_pct": 100 * (worker_time - cells["cell"].sum()) / worker_time,
        # the same without the one-time process start (amortised over a 150-cell grid)
        "per_cell_overhead_pct": 100
        * (worker_time - n_jobs * startup - cells["cell"].sum())
        / (worker_time - n_jobs * startup),
        "not_training_pct": 100 * ((cells["cell"] - cells["train"]) / cells["cell"]).mean(),
        "load": f"{timing['load_before']:.2f} -> {timing['load_after']:.2f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="default", help="built-in study or YAML path")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (1 seed = 15 default cells)")
    parser.add_argument("--fractions", nargs="+", default=None, help="data fractions (default: the study's)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the two study directories here")
    args = parser.parse_args(argv)
    seeds = ",".join(str(s) for s in range(args.seeds))

    with tempfile.TemporaryDirectory(prefix="bench_grid_") as tmp:
        root = args.keep or Path(tmp)
        rows, cells = [], {}
        print(
            f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cpus: {os.cpu_count()}"
        )
        for n_jobs in (1, 2):
            out = root / f"n_jobs_{n_jobs}"
            timing = run_grid(args.study, seeds, args.fractions, out, n_jobs)
            cells[n_jobs] = cell_times(out)
            rows.append(summarise(n_jobs, timing, cells[n_jobs]))
            print(f"--n-jobs {n_jobs}: {timing['wall']:.1f} s wall", flush=True)

    table = pd.DataFrame(rows).set_index("n_jobs")
    with pd.option_context("display.width", 160, "display.precision", 2):
        print(table.to_string())
    # by design coordinates, not run_id: a spec field added between the two runs changes every run_id
    cols = ["status", "accuracy"]
    same = (
        cells[1]
        .set_index("cell_key")[cols]
        .sort_index()
        .equals(cells[2].set_index("cell_key")[cols].sort_index())
    )
    ratio = table.loc[1, "wall_s"] / table.loc[2, "wall_s"]
    cpu_ratio = table.loc[2, "cpu_s"] / table.loc[1, "cpu_s"]
    print(f"\nspeed-up 2 workers vs 1: {ratio:.2f}x (target >= 1.9x)")
    print(f"CPU seconds 2 workers / 1 worker: {cpu_ratio:.2f} (1.0 = no parallel cost; >1 = contention)")
    print(f"per-cell overhead (1 worker, start-up excluded): {table.loc[1, 'per_cell_overhead_pct']:.1f} %")
    print(f"identical results with 1 and 2 workers: {same}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if table.loc[2, "cores_used"] < 1.8:
        print(
            f"warning: the 2-worker run got {table.loc[2, 'cores_used']:.2f} cores (other load on the "
            "machine), so its wall time and the speed-up understate an idle machine's; "
            "the CPU-seconds ratio shows whether parallel workers did extra work."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
