"""The GPU check issue 19 asks for, as one prepared script for a machine with a CUDA GPU.

    python tests/benchmarks/gpu_check.py --out "$OUT"          # about 10 minutes on one H200 + 16 cores

1. the ``gpu``-marked tests (bit-identical reruns on the GPU, CPU and GPU weights close, the ensemble);
2. the default study on the CPU and with ``--device cuda`` (each timed), and their reports;
3. whether the two reports reach the same verdicts (every table with a ``verdict`` column) and whether
   their accuracy contrasts' intervals overlap;
4. ``bench_ensemble.py`` on the GPU (one seed at a time vs 10 seeds as one ensemble).

Everything it prints also goes to ``OUT/gpu_check.txt``; the reports and results stay under ``OUT``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def step(log, title: str, argv: list[str]) -> float:
    """Run ``argv``, copying its output to ``log``; return the wall seconds (raises on failure)."""
    print(f"\n## {title}\n$ {' '.join(argv)}", file=log, flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    print(done.stdout[-4000:] + done.stderr[-2000:], file=log)
    print(f"exit {done.returncode}, {seconds:.0f} s", file=log, flush=True)
    return seconds


def compare_reports(cpu: Path, gpu: Path) -> list[str]:
    """One line per table of both reports that has a ``verdict`` column or ``low``/``high`` intervals:
    how many verdicts differ and how many intervals do not overlap, row by row."""
    lines = []
    for path in sorted((cpu / "tables").glob("*.csv")):
        other = gpu / "tables" / path.name
        a = pd.read_csv(path)
        if not other.exists() or not ("verdict" in a or {"low", "high"} <= set(a)):
            continue
        b = pd.read_csv(other)
        if len(a) != len(b):
            lines.append(f"{path.name}: {len(a)} vs {len(b)} rows")
            continue
        parts = []
        if "verdict" in a:
            differ = int((a["verdict"].astype(str).to_numpy() != b["verdict"].astype(str).to_numpy()).sum())
            parts.append(f"{differ} of {len(a)} verdicts differ")
        if {"low", "high"} <= set(a):
            overlap = (a["low"] <= b["high"]) & (b["low"] <= a["high"])
            parts.append(f"{int((~overlap & a['low'].notna()).sum())} of {len(a)} intervals do not overlap")
        lines.append(f"{path.name}: " + ", ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for results, reports and the log")
    parser.add_argument("--n-jobs", type=int, default=16, help="grid workers (default 16)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    with open(args.out / "gpu_check.txt", "w") as log:
        step(log, "gpu tests", [py, "-m", "pytest", "-q", "-m", "gpu", "tests"])
        times = {}
        for device in ("cpu", "cuda"):
            results, report = args.out / f"results-{device}", args.out / f"report-{device}"
            grid = [
                py,
                "-m",
                "experiments.grid",
                "--study",
                "default",
                "--seeds",
                "10",
                "--out",
                str(results),
            ]
            times[device] = step(
                log,
                f"default study on {device}",
                grid + ["--device", device, "--n-jobs", str(args.n_jobs), "--quiet"],
            )
            step(
                log,
                f"report of the {device} run",
                [py, "-m", "analysis.report", "--results", str(results), "--out", str(report), "--quiet"],
            )
        print(f"\n## wall time: cpu {times['cpu']:.0f} s, cuda {times['cuda']:.0f} s", file=log)
        print(
            "\n## verdicts, cpu vs cuda",
            *compare_reports(args.out / "report-cpu", args.out / "report-cuda"),
            sep="\n",
            file=log,
        )
        bench = [
            py,
            "tests/benchmarks/bench_ensemble.py",
            "--device",
            "cuda",
            "--seeds",
            "10",
            "--steps",
            "200",
        ]
        step(log, "ensemble vs one seed at a time on the GPU", bench)
    print((args.out / "gpu_check.txt").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
