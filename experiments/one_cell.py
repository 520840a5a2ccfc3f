"""The grid from Python: train one cell and get its model and rows back, or run a whole grid.

For notebooks and scripts; the same code as ``python -m experiments.grid`` runs underneath, so a cell
trained here has the ``run_id`` and the rows the grid would store for it.

Examples
--------
>>> result = train_cell("smoke", "train.epochs=1", variant="maxpool", seed=0, fraction=0.5)
>>> result.status, result.cell.variant, type(result.model).__name__
('ok', 'maxpool', 'LeNet')
>>> sorted(result.tables)
['epochs', 'kernels', 'latency', 'predictions', 'runs']
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from downscalexr.data.registry import load_dataset
from downscalexr.overrides import OverrideError, apply_overrides, parse_override
from downscalexr.provenance import git_commit
from experiments._arguments import check_names
from experiments._preflight import check_models
from experiments.cell import Cell, cells_of, data_options, run_cell_with_model, run_id
from experiments.spec import NO_VARIANT, SpecError, StudySpec, from_dict, load_spec


@dataclass(frozen=True)
class CellResult:
    """One trained cell.

    Attributes
    ----------
    spec : StudySpec
        The resolved study (overrides applied).
    cell : Cell
        The cell's design coordinates.
    run_id : str
        The identifier the grid stores the cell under.
    model : torch.nn.Module
        The trained model (the best validation state), in evaluation mode.
    tables : dict of str to DataFrame
        The cell's rows of ``runs``, ``epochs``, ``predictions``, ``latency`` and ``kernels``.
    """

    spec: StudySpec
    cell: Cell
    run_id: str
    model: torch.nn.Module
    tables: dict[str, pd.DataFrame]

    @property
    def runs(self) -> pd.Series:
        """The cell's one ``runs`` row (design, outcome, test metrics, provenance)."""
        return self.tables["runs"].iloc[0]

    @property
    def status(self) -> str:
        """``ok`` or ``diverged`` (a failed cell raises instead)."""
        return str(self.runs["status"])


def _resolve(study: str | Path | StudySpec, sets: tuple[str, ...], changes: dict) -> StudySpec:
    if not isinstance(study, StudySpec):
        return load_spec(study, *sets, **changes)
    try:
        edits = [parse_override(text) for text in sets] + [((k,), v) for k, v in changes.items()]
        return from_dict(StudySpec, apply_overrides(study.to_dict(), edits), where=f"study {study.name}")
    except OverrideError as exc:
        raise SpecError(str(exc)) from None


def train_cell(
    study: str | Path | StudySpec = "smoke",
    *sets: str,
    model: str | None = None,
    variant: str | None = None,
    seed: int | None = None,
    fraction: float | None = None,
    **overrides,
) -> CellResult:
    """Train one cell of a study in this process and return its model and rows.

    It runs with one torch thread, as each grid worker does, so its rows equal the grid's for the cell.

    Parameters
    ----------
    study : str, Path or StudySpec
        A built-in study name, a YAML file, or a loaded study.
    *sets : str
        ``"key.path=value"`` overrides, as the grid's ``--set`` takes them.
    model, variant, seed, fraction
        The cell; each defaults to the study's first level. A variant, seed or fraction the study does
        not list is used all the same (the cell is what a grid with that level would run).
    **overrides
        Top-level study keys, deep-merged as in :func:`experiments.spec.load_spec`.

    Returns
    -------
    CellResult

    Raises
    ------
    SpecError, ValueError
        A bad study, override or name (the message lists the valid choices), data that cannot be
        loaded, or a model that does not fit them.
    RuntimeError
        The cell failed (the message holds the error the grid would store).
    """
    changes = dict(overrides)
    for key, level in (("variants", variant), ("seeds", seed), ("fractions", fraction)):
        if level is not None and not (key == "variants" and level == NO_VARIANT):
            if key in changes:
                raise SpecError(f"give either {key}= or {key[:-1]}=, not both")
            changes[key] = [level]
    spec = _resolve(study, sets, changes)
    check_names(spec)
    if spec.train.ensemble:
        raise SpecError(
            "train_cell trains one cell, and a cell of a study with train.ensemble: true is trained with "
            "its other seeds (its numbers depend on that at the rounding level); rerun the grid, or pass "
            "train.ensemble=false"
        )
    cells = [
        c
        for c in cells_of(spec)
        if (model is None or c.model == model) and (variant is None or c.variant == variant)
    ]
    if not cells:
        families = {m.name: list(m.variants) for m in spec.model_specs}
        raise SpecError(
            f"study {spec.name!r} has no cell of model {model} and variant {variant}; it has {families}"
        )
    cell = cells[0]
    data = load_dataset(spec.dataset, seed=cell.seed, test_seed=spec.test_seed, **data_options(spec, cell))
    check_models(spec, data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a grid worker, so the numbers are the grid's to the last bit
    try:
        tables, trained = run_cell_with_model(spec, cell, data, {"git_commit": git_commit() or "unknown"})
    finally:
        torch.set_num_threads(threads)
    row = tables["runs"].iloc[0]
    if row["status"] == "failed":
        raise RuntimeError(f"cell {run_id(spec, cell)} failed: {row['error']}")
    return CellResult(spec, cell, run_id(spec, cell), trained.eval(), tables)


def run_grid(*args: str | os.PathLike) -> int:
    """Run ``python -m experiments.grid ARGS`` in this process; return its exit code (0: every cell ok).

    The grid runs its cells in worker processes (or here with ``--n-jobs 1``); the torch thread count
    and environment variables it changes for its workers are restored afterwards.

    Examples
    --------
    ``run_grid("--study", "smoke", "--out", "results/smoke", "--n-jobs", "1", "--quiet")``
    """
    from experiments.grid import main

    threads, environment = torch.get_num_threads(), dict(os.environ)
    try:
        return main([os.fspath(a) for a in args])
    finally:
        torch.set_num_threads(threads)
        with contextlib.suppress(Exception):
            os.environ.clear()
            os.environ.update(environment)
