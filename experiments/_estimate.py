"""Time estimate of a study's remaining cells, for ``python -m experiments.grid --dry-run``.

Machinery for :mod:`experiments.grid`: from the wall time of finished cells when the study has any,
else from each model family's forward FLOPs.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from experiments.cell import Cell, build_model
from experiments.spec import StudySpec


def estimate_seconds(spec: StudySpec, done: pd.DataFrame, todo: list[Cell], n_jobs: int) -> float:
    """Seconds to run ``todo``: from ``done`` (the ``runs`` rows of stored cells) when it has any, else
    from a FLOP model."""
    if len(done):
        # a cell is more than its training (model build, evaluation, latency timing): use its wall time,
        # and the mean, since the estimate is of a total
        start = pd.to_datetime(done["started_at"], format="ISO8601", utc=True, errors="coerce")
        end = pd.to_datetime(done["finished_at"], format="ISO8601", utc=True, errors="coerce")
        wall = (end - start).dt.total_seconds().mean()
        per_cell = float(wall) if wall > 0 else float(done["train_seconds"].mean()) * 1.15
        return per_cell * len(todo) / max(1, n_jobs)
    return _flop_seconds(spec, todo) / max(1, n_jobs)


def _flop_seconds(spec: StudySpec, todo: list[Cell]) -> float:
    """Training time of ``todo`` from each model's forward FLOPs at ~50 GFLOP/s per core.

    A training step costs about 3x the forward pass; a cell trains on ``max(n_train x fraction x
    epochs, min_steps x batch_size)`` images, or at most ``steps x batch_size`` under a step budget
    (early stopping can only shorten it). Evaluation and consistency add ~0.3 s per cell.
    """
    from downscalexr.models import forward_flops

    data, t = spec.data, spec.train
    size = int(data.get("image_size", data.get("size", 64)))
    outputs = len(data.get("classes", ())) or (3 if spec.dataset == "edges" else 1)
    shape = (1, size, size)
    flops: dict[tuple[str, str], float] = {}
    total = 0.0
    for cell in todo:
        key = (cell.model, cell.variant)
        if key not in flops:
            try:
                model = build_model(spec, dataclasses.replace(cell, init="random"), shape, outputs)
                flops[key] = forward_flops(model, shape)
            except (ValueError, TypeError, RuntimeError):  # e.g. real data of unknown size
                flops[key] = 80e6 * (size / 64) ** 2  # the default LeNet at 64 px
        images = t.steps * t.batch_size or max(
            int(data.get("n_train", 2000)) * cell.data_fraction * t.epochs, t.min_steps * t.batch_size
        )
        total += 3 * flops[key] * images / 50e9 + 0.3
    return total
