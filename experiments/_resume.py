"""Which cells a run computes, and whether a study directory's stored cells fit the specification.

Machinery for :mod:`experiments.grid`. A rerun computes the cells that are not stored, and retries the
``failed`` ones (a crash, a lost worker, data that could not be read: worth another try) but not the
``diverged`` ones (a result of the training protocol); ``--force`` recomputes every cell.

A study file may be corrected after some cells failed: a change is accepted when every stored cell it
affects (whose run id it changes) is ``failed``. Those superseded cells are moved to ``quarantine/``
so that the directory never holds one design cell twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from experiments._compression import NONE, level_run_id, pending_levels
from experiments.cell import Cell, cells_of, run_id
from experiments.errors import UsageError
from experiments.spec import SpecError, StudySpec, design_differences, from_dict, read_yaml
from experiments.store import StudyPaths


@dataclass(frozen=True)
class Plan:
    """The cells of a study and what a run does with each.

    Attributes
    ----------
    cells : tuple of Cell
        Every cell of the specification, in run order.
    ids : dict
        Each cell's run id.
    stored : dict
        Stored status (``ok``, ``failed``, ``diverged``) by run id, for cells stored now.
    todo : tuple of Cell
        The cells this run computes.
    levels_only : dict
        Cells of ``todo`` stored ``ok`` of which only compression levels are computed: the levels by
        cell (see :mod:`experiments._compression`).
    """

    cells: tuple[Cell, ...]
    ids: dict[Cell, str]
    stored: dict[str, str]
    todo: tuple[Cell, ...]
    levels_only: Mapping[Cell, tuple[str, ...]] = field(default_factory=dict)

    @property
    def retried(self) -> int:
        """How many of the cells to compute are stored as ``failed`` (retried)."""
        return sum(self.stored.get(self.ids[c]) == "failed" for c in self.todo)

    def mark(self, cell: Cell) -> str:
        """``todo`` (not stored), ``retry`` (stored as failed, computed again), ``redo`` (``--force``),
        ``levels`` (stored ``ok``, compression levels to compute), or the stored status of a kept cell
        (``ok``, ``diverged``, ``failed``)."""
        status = self.stored.get(self.ids[cell])
        if status is None:
            return "todo"
        if cell in self.levels_only:
            return "levels"
        if cell not in self.todo:
            return status
        return "retry" if status == "failed" else "redo"


def plan_cells(spec: StudySpec, stored: pd.DataFrame, force: bool, retry_failed: bool) -> Plan:
    """Decide the cells to compute from the ``runs`` rows of the stored cells (and of their levels).

    A cell stored ``ok`` with compression levels missing (or failed, when retrying) is computed for
    those levels only; a cell computed whole gets all its levels.
    """
    cells = tuple(cells_of(spec))
    ids = {c: run_id(spec, c) for c in cells}
    status = dict(zip(stored["run_id"], stored["status"], strict=True))

    def needed(cell: Cell) -> bool:
        now = status.get(ids[cell])
        return force or now is None or (retry_failed and now == "failed")

    levels_only = {}
    for cell in cells:
        if not needed(cell) and status.get(ids[cell]) == "ok":
            pending = pending_levels(spec, ids[cell], status, retry_failed)
            if pending:
                levels_only[cell] = pending
    todo = tuple(c for c in cells if needed(c) or c in levels_only)
    mine = set(ids.values())
    return Plan(cells, ids, {k: v for k, v in status.items() if k in mine}, todo, levels_only)


def check_same_design(paths: StudyPaths, spec: StudySpec, stored: pd.DataFrame | None = None) -> list[str]:
    """Refuse to mix results of a different specification into one study directory.

    Returns the run ids of stored ``failed`` cells that ``spec`` supersedes (a study file corrected in
    a key that only affected failed cells), for the caller to set aside. ``stored`` holds the ``runs``
    rows of the stored cells (read from ``paths`` when None).

    Raises
    ------
    UsageError
        A directory written before run ids hashed only non-default fields (its ``spec.yaml`` has no
        ``factors``: none of its cells would match this version's ids), or one whose stored ``ok`` or
        ``diverged`` cells ``spec`` would change.
    """
    if not paths.spec.exists():
        return []
    raw = read_yaml(paths.spec.read_text()) or {}
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
    if not differ:
        return []
    if stored is None:
        from experiments.store import stored_runs

        stored = stored_runs(paths)
    changed = stored[[run_id_under(spec, row) != row["run_id"] for _, row in stored.iterrows()]]
    kept = changed[changed["status"] != "failed"]
    if len(kept):
        counts = ", ".join(f"{n} {s}" for s, n in kept["status"].value_counts().sort_index().items())
        raise UsageError(
            f"{paths.root} holds results of a different specification (differs in: {', '.join(differ)}), "
            f"which would change {len(kept)} stored cell(s) that did not fail ({counts}); "
            "choose another --out or remove that directory"
        )
    return sorted(changed["run_id"])


def run_id_under(spec: StudySpec, row: pd.Series) -> str | None:
    """The run id the stored ``runs`` row's design cell gets under ``spec`` (None: not in ``spec``).

    A compression level's row gets the id of that level of its design cell.
    """
    shift = row["location_shift"]
    cell = Cell(
        str(row["study"]),
        str(row["dataset"]),
        str(row["model"]),
        str(row["variant"]),
        int(row["seed"]),
        float(row["data_fraction"]),
        str(row["transform"]),
        bool(row["permute"]),
        None if shift is None or pd.isna(shift) or math.isnan(float(shift)) else float(shift),
        str(row["init"]),
        str(row["augment"]) if "augment" in row and not pd.isna(row["augment"]) else "none",
    )
    try:
        rid = run_id(spec, cell)
    except SpecError:  # its model family is not in spec
        return None
    level = row.get("compression", NONE)
    return rid if pd.isna(level) or level == NONE else level_run_id(rid, str(level))
