"""Seed-batched cells (``train.ensemble: true``): the seeds of one cell trained as one vmapped ensemble.

A *group* is the cells of a study that differ only in their seed (one model x variant x fraction x factor
levels); :func:`groups_of` forms them from the cells still to run, in the grid's order. One job trains a
group with :func:`downscalexr.ensemble.fit_ensemble` and stores every member as the single-cell path
stores a cell: the same tables, one ``runs`` row per cell, written cell by cell. Each member's numbers
equal the single-cell path's up to floating-point rounding, which is why ``train.ensemble`` enters the
``run_id``; a member's rounding may also depend on the group it was trained in (a resumed grid trains the
missing seeds of a cell as a smaller group).

Meant for a GPU (``--device cuda``): on a CPU the grouped convolutions are slower than single ones (see
:mod:`downscalexr.ensemble`).
"""

from __future__ import annotations

import dataclasses
import time

import pandas as pd
import torch

from downscalexr.data.base import ImageSplits
from downscalexr.ensemble import fit_ensemble
from experiments.cell import (
    Cell,
    augmenter_of,
    failed_fields,
    finish_cell,
    measure_cell,
    prepare_cell,
    run_id,
    start_cell,
)
from experiments.spec import StudySpec, from_dict


def groups_of(cells: list[Cell], levels_only: dict | None = None) -> list[tuple[Cell, ...]]:
    """The cells grouped by everything but their seed (and by pending compression levels), in the
    order of each group's first cell."""
    levels_only = levels_only or {}
    groups: dict = {}
    for cell in cells:
        key = (dataclasses.replace(cell, seed=0), levels_only.get(cell))
        groups.setdefault(key, []).append(cell)
    return [tuple(group) for group in groups.values()]


def run_group(
    spec: StudySpec,
    cells: tuple[Cell, ...],
    datas: list[ImageSplits],
    provenance: dict | None = None,
    levels: tuple[str, ...] | None = None,
) -> list[dict[str, pd.DataFrame]]:
    """Train the cells of one group together; one dict of tables per cell, as :func:`run_cell` gives.

    A cell whose data or model cannot be prepared is stored ``failed`` and the others train without it;
    an error of the ensemble itself fails every cell of the group with that error.
    """
    started = [start_cell(spec, cell, provenance, levels) for cell in cells]
    trainees = {}
    for i, (cell, data) in enumerate(zip(cells, datas, strict=True)):
        try:
            trainees[i] = prepare_cell(spec, cell, data, started[i][1])
        except Exception as exc:  # this cell fails; the group trains on without it
            started[i][1].update(failed_fields(exc))
    rows = {i: started[i][1] for i in range(len(cells))}
    tables = {i: started[i][2] for i in range(len(cells))}
    if trainees:
        order = list(trainees)
        try:
            results = fit_ensemble(
                [trainees[i].model for i in order],
                [trainees[i].data for i in order],
                spec.train,
                [cells[i].seed for i in order],
                train_indices=[trainees[i].index for i in order],
                augments=[augmenter_of(cells[i]) for i in order],
            )
        except Exception as exc:
            for i in order:
                rows[i].update(failed_fields(exc))
            results = []
        for i, result in zip(order, results, strict=False):
            rid, row, _, cell_levels = started[i]
            try:
                rows[i], tables[i], _ = measure_cell(spec, trainees[i], rid, row, result, cell_levels)
            except Exception as exc:
                rows[i].update(failed_fields(exc))
    return [finish_cell(rows[i], tables[i]) for i in range(len(cells))]


def execute_group(
    spec_dict: dict, cells: tuple[Cell, ...], root: str, provenance: dict, levels_only=None
) -> list[dict]:
    """Run one group in this process and store its cells one by one; one summary per cell, as
    :func:`experiments._worker.execute_cell` gives (the group's time split evenly). Storing stops at
    the first cell that cannot be written (``unstored``): the runner then stops."""
    from experiments._worker import _Unavailable, configure_device, data_for, store_cell

    torch.set_num_threads(1)
    spec = from_dict(StudySpec, spec_dict)
    configure_device(spec.train.device)
    t0 = time.perf_counter()
    datas = []
    for cell in cells:
        try:
            datas.append(data_for(spec, cell))
        except Exception as exc:  # a seed whose data cannot be made fails its cell, not the group
            datas.append(_Unavailable(exc))
    provenance = provenance | {"threads": torch.get_num_threads()}
    all_tables = run_group(spec, cells, datas, provenance, levels_only)
    seconds = (time.perf_counter() - t0) / len(cells)
    summaries = []
    for cell, tables in zip(cells, all_tables, strict=True):
        summaries.append(store_cell(root, tables, run_id(spec, cell), cell, seconds, levels_only))
        if summaries[-1]["status"] == "unstored":
            break
    return summaries
