"""One cell of a study = one training run: ``run_cell(spec, cell, data) -> rows of the four tables``.

Pure apart from the clock: the same spec, cell and data give the same weights and metrics. Any
exception inside the run becomes a ``failed`` row carrying the error text; a NaN loss a ``diverged``
one. Nothing here touches files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import socket
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import torch

import downscalexr
from downscalexr import schema
from downscalexr.consistency import shift_consistency, shift_pairs
from downscalexr.data.base import ImageSplits, standardized
from downscalexr.data.splits import nested_fractions
from downscalexr.latency import cpu_model, measure_latency
from downscalexr.metrics import binary_metrics, multiclass_metrics
from downscalexr.models import count_params, create_model, forward_flops, model_bytes
from downscalexr.train import evaluate, fit, predict_scores
from experiments.spec import StudySpec


@dataclass(frozen=True, order=True)
class Cell:
    """The design coordinates of one run."""

    study: str
    dataset: str
    model: str
    variant: str
    seed: int
    data_fraction: float
    transform: str = "none"


def cells_of(spec: StudySpec) -> list[Cell]:
    """Every cell of ``spec``, ordered by seed so one worker can reuse a seed's data."""
    return [
        Cell(spec.name, spec.dataset, spec.model, variant, seed, fraction, transform)
        for seed in spec.seeds
        for fraction in sorted(spec.fractions, reverse=True)
        for variant in spec.variants
        for transform in spec.transforms
    ]


def run_id(spec: StudySpec, cell: Cell) -> str:
    """A stable 16-hex-digit hash of everything that determines the run's outcome."""
    fixed = spec.to_dict()
    for axis in ("variants", "fractions", "seeds", "transforms", "description", "reference"):
        fixed.pop(axis)
    payload = json.dumps({"cell": asdict(cell), "spec": fixed}, sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


def run_cell(
    spec: StudySpec, cell: Cell, data: ImageSplits, provenance: dict | None = None
) -> dict[str, pd.DataFrame]:
    """Train and evaluate one cell; return ``{"runs", "epochs", "predictions", "latency"}`` DataFrames."""
    rid = run_id(spec, cell)
    started = _now()
    row: dict = {c: math.nan for c in schema.METRIC_COLUMNS} | {"threshold": math.nan}
    row |= _design_row(spec, cell, rid) | _provenance(provenance) | {"started_at": started}
    tables = {name: schema.empty(name) for name in ("epochs", "predictions", "latency")}
    try:
        row, tables = _train_and_measure(spec, cell, data, rid, row)
    except Exception as exc:  # a failed cell is a result to store, not a reason to stop the grid
        row |= {"status": "failed", "error": _short_traceback(exc)}
    row["finished_at"] = _now()
    runs = pd.DataFrame([row])
    for col in schema.RUNS:
        if col not in runs:
            runs[col] = (
                pd.NA if schema.RUNS[col] == "string" else (-1 if schema.RUNS[col] == "int64" else math.nan)
            )
    return {"runs": schema.conform("runs", runs)} | {k: schema.conform(k, v) for k, v in tables.items()}


def _train_and_measure(spec: StudySpec, cell: Cell, data: ImageSplits, rid: str, row: dict):
    binary = data.num_classes == 2
    index = nested_fractions(data.y_train, spec.fractions, cell.seed)[cell.data_fraction]
    data = standardized(data, index)
    channels, size, _ = data.input_shape
    model = create_model(
        spec.model,
        downsample=cell.variant,
        seed=cell.seed,
        **{"in_channels": channels, "input_size": size, "num_outputs": 1 if binary else data.num_classes}
        | spec.model_options,
    )
    row |= {
        "n_train": len(index),
        "image_size": size,
        "params": count_params(model),
        "flops": forward_flops(model, data.input_shape),
        "model_bytes": model_bytes(model),
    }
    result = fit(model, data, spec.train, cell.seed, train_index=index)
    epochs = pd.DataFrame(result.history, columns=[c for c in schema.EPOCHS if c != "run_id"])
    epochs.insert(0, "run_id", rid)
    row |= {
        "status": result.status,
        "error": result.error,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
    }
    tables = {
        "epochs": epochs,
        "predictions": schema.empty("predictions"),
        "latency": schema.empty("latency"),
    }
    if result.status != "ok" or result.best_epoch < 0:
        return row, tables

    model = result.model
    best = result.history[result.best_epoch]
    idx = torch.as_tensor(index, dtype=torch.long)
    train_eval = evaluate(model, data.x_train[idx], data.y_train[idx], data.num_classes)
    row |= {
        "train_accuracy": train_eval["accuracy"],
        "val_accuracy": best["val_accuracy"],
        "val_auroc": best["val_auroc"],
    }
    scores = predict_scores(model, data.x_test).double().numpy()
    labels = data.y_test.numpy()
    if binary:
        row |= binary_metrics(labels, scores)
        preds = pd.DataFrame(
            {"example_id": np.arange(len(labels)), "label": labels, "class_index": 1, "score": scores}
        )
    else:
        row |= multiclass_metrics(labels, scores)
        k = scores.shape[1]
        preds = pd.DataFrame(
            {
                "example_id": np.repeat(np.arange(len(labels)), k),
                "label": np.repeat(labels, k),
                "class_index": np.tile(np.arange(k), len(labels)),
                "score": scores.reshape(-1),
            }
        )
    preds.insert(0, "run_id", rid)
    tables["predictions"] = preds
    if spec.consistency.enabled:
        row |= _consistency(spec, model, data.x_test)
    if spec.latency.enabled:
        tables["latency"] = _latency_rows(spec, model, data.input_shape, rid)
    return row, tables


def _consistency(spec: StudySpec, model, x_test: torch.Tensor) -> dict:
    cons = spec.consistency
    x = x_test[: cons.n_images]
    pairs = shift_pairs(len(x), x.shape[-1], cons.max_fraction, seed=spec.test_seed)
    return {f"shift_consistency_{mode}": shift_consistency(model, x, pairs, mode) for mode in cons.modes}


def _latency_rows(spec: StudySpec, model, input_shape, rid: str) -> pd.DataFrame:
    lat = spec.latency
    load_before = os.getloadavg()[0]
    result = measure_latency(
        model,
        input_shape,
        batch_sizes=lat.batch_sizes,
        threads=lat.threads,
        memory_format=lat.memory_formats,
        warmup=lat.warmup,
        repeats=lat.repeats,
        min_seconds=lat.min_seconds,
        clock=lat.clock,
    )
    rows = pd.DataFrame(result.rows)
    rows.insert(0, "run_id", rid)
    # Other load on the machine inflates timings; keep the evidence beside them.
    rows["load_before"] = load_before
    rows["load_after"] = os.getloadavg()[0]
    rows["clock"] = lat.clock
    return rows


def _design_row(spec: StudySpec, cell: Cell, rid: str) -> dict:
    t = spec.train
    return {
        "run_id": rid,
        "study": cell.study,
        "dataset": cell.dataset,
        "model": cell.model,
        "variant": cell.variant,
        "seed": cell.seed,
        "data_fraction": cell.data_fraction,
        "transform": cell.transform,
        **{k: v for k, v in schema.LATE_DEFAULTS["runs"].items() if not k.startswith("shift_")},
        "batch_size": t.batch_size,
        "lr": t.lr,
        "optimizer": t.optimizer,
        "epochs_run": 0,
        "best_epoch": -1,
        "n_train": 0,
        "image_size": 0,
        "params": 0,
        "model_bytes": 0,
        "flops": math.nan,
        "train_seconds": math.nan,
        "status": "failed",
        "error": "",
        "train_accuracy": math.nan,
        "val_accuracy": math.nan,
        "val_auroc": math.nan,
    }


def _provenance(extra: dict | None) -> dict:
    base = {
        "package_version": downscalexr.__version__,
        "git_commit": "unknown",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_model() or platform.processor() or platform.machine(),
        "host_id": hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest(),
    }
    return base | {k: v for k, v in (extra or {}).items() if k in schema.RUNS}


def _short_traceback(exc: BaseException) -> str:
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
    text = "".join(frames[-3:]).strip()
    return text[-2000:]


def _now() -> str:
    # milliseconds: cells of small studies take well under a second, and the benchmark times them
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def wall_clock() -> float:
    """Seconds since the epoch (the one impure input of a cell, kept in one place)."""
    return time.time()
