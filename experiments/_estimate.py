"""Time estimate of a study's remaining cells, for ``python -m experiments.grid --dry-run``.

Machinery for :mod:`experiments.grid`: from the wall time of finished cells when the study has any,
else from each model family's forward FLOPs.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd

from experiments.cell import Cell, build_model, cells_of, data_options
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
    (early stopping can only shorten it). Evaluation and consistency add ~0.3 s per cell. The models
    are built for the data's real input shape and class count (:func:`data_shape`), so RGB and
    multi-class studies are costed with their own first convolution and head.
    """
    from downscalexr.models import forward_flops

    t = spec.train
    shape, classes, n_train = data_shape(spec)
    outputs = 1 if classes == 2 else classes
    flops: dict[tuple[str, str], float] = {}
    total = 0.0
    for cell in todo:
        key = (cell.model, cell.variant)
        if key not in flops:
            try:
                model = build_model(spec, dataclasses.replace(cell, init="random"), shape, outputs)
                flops[key] = forward_flops(model, shape)
            except (ValueError, TypeError, RuntimeError):  # e.g. real data of unknown size
                flops[key] = 80e6 * (shape[-1] / 64) ** 2  # the default LeNet at 64 px
        images = t.steps * t.batch_size or max(
            n_train * cell.data_fraction * t.epochs, t.min_steps * t.batch_size
        )
        total += 3 * flops[key] * images / 50e9 + 0.3
    return total


def data_shape(spec: StudySpec) -> tuple[tuple[int, int, int], int, int]:
    """``(C, H, W)`` of an image, the number of classes and the training pool's size, without the data.

    A synthetic data set is generated with four validation and test images (its training pool as the
    study has it: under a second), which gives its exact shape, classes and size whatever its options;
    CIFAR-10 has a known shape. Other real data (folders, ``.npz``) are not read for an estimate: one
    channel, two classes, ``data.size`` (default 64) pixels.
    """
    from downscalexr.data.cifar import CLASS_NAMES, PIXELS
    from downscalexr.data.registry import load_dataset, seed_dependent

    data = spec.data
    if seed_dependent(spec.dataset):
        options = data_options(spec, cells_of(spec)[0]) | {"n_val": 4, "n_test": 4}
        probe = load_dataset(spec.dataset, seed=0, test_seed=spec.test_seed, **options)
        return probe.input_shape, probe.num_classes, len(probe.y_train)
    if spec.dataset == "cifar10":
        side = math.isqrt(PIXELS // 3)
        val = data.get("val_size", 0.1)
        n_train = 50_000 - (int(val) if val >= 1 else round(50_000 * val))
        return (3, side, side), len(CLASS_NAMES), n_train
    size = int(data.get("size", data.get("image_size", 64)))
    return (1, size, size), 2, int(data.get("n_train", 2000))
