"""What the grid runner prints: the dry-run listing and the end-of-run table.

Machinery for :mod:`experiments.grid`; every function writes to stdout only.
"""

from __future__ import annotations

import pandas as pd

from experiments._resume import Plan
from experiments.cell import Cell


def print_dry_run(plan: Plan, eta_seconds: float, n_jobs: int, superseded: int) -> None:
    """One line per cell (what a run would do with it), then the totals and the time estimate."""
    for cell in plan.cells:
        where = f"seed={cell.seed:<3} fraction={cell.data_fraction:<5}"
        mark = plan.mark(cell)
        print(f"{mark:<8} {plan.ids[cell]}  {cell.variant:<12} {where} {cell.model}{factor_text(cell)}")
    done = len(plan.cells) - len(plan.todo)
    retried = f" ({plan.retried} of them failed before, retried)" if plan.retried else ""
    print(
        f"{len(plan.cells)} cells, {done} done, {len(plan.todo)} to run{retried}; "
        f"estimated {duration(eta_seconds)} with {n_jobs} job(s)"
    )
    if superseded:
        print(f"{superseded} failed cell(s) of the earlier study file would be moved to quarantine/")


def print_summary(runs: pd.DataFrame, results: list[dict], elapsed: float, n_cells: int) -> None:
    """The cells run, a status x variant table with mean accuracy, and one line per cell not ``ok``."""
    print(f"\n{len(results)} cell(s) run in {duration(elapsed)}; study holds {len(runs)}/{n_cells} cells")
    if len(runs):
        by = ["model", "variant"] if runs["model"].nunique() > 1 else ["variant"]
        table = runs.groupby([*by, "status"]).size().unstack(fill_value=0)
        acc = runs[runs["status"] == "ok"].groupby(by)["accuracy"].mean().rename("mean accuracy")
        secs = runs.groupby(by)["train_seconds"].median().rename("median train s")
        print(table.join(acc).join(secs).round(4).to_string())
    for r in results:
        if r["status"] != "ok":
            lines = (r.get("error") or "").strip().splitlines()
            cell = r["cell"]
            last = lines[-1] if lines else ""
            where = f"{cell.variant} seed={cell.seed} fraction={cell.data_fraction}{factor_text(cell)}"
            print(f"  {r['status']}: {where} [{cell.model}]: {last}")


def factor_text(cell: Cell) -> str:
    """The cell's non-default factor levels, e.g. `` permute location_shift=0.5 init=edge_frozen``."""
    parts = ["permute"] if cell.permute else []
    if cell.location_shift is not None:
        parts.append(f"location_shift={cell.location_shift:g}")
    if cell.init != "random":
        parts.append(f"init={cell.init}")
    return "".join(f" {p}" for p in parts)


def duration(seconds: float) -> str:
    """``42 s`` or ``3.5 min``."""
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
