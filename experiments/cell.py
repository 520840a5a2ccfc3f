"""One cell of a study = one training run: ``run_cell(spec, cell, data) -> rows of the results tables``.

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
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import torch

import downscalexr
from downscalexr import schema
from downscalexr.augment import make_augmenter
from downscalexr.consistency import shift_consistency, shift_pairs
from downscalexr.data.base import ImageSplits, standardized
from downscalexr.data.splits import nested_fractions
from downscalexr.data.synthetic import apply_permutation, pixel_permutation
from downscalexr.latency import cpu_model, measure_latency
from downscalexr.metrics import multiclass_metrics
from downscalexr.models import count_params, create_model, forward_flops, model_bytes
from downscalexr.models.edge_init import apply_init, first_conv
from downscalexr.operating_point import score_operating_points
from downscalexr.train import device_name, evaluate, fit, predict_scores
from experiments._compression import compress_trained, compressed_levels, concat_tables
from experiments._saliency import saliency_tables
from experiments.spec import AXES, NO_DOWNSAMPLING, NO_VARIANT, StudySpec, non_default

TABLE_NAMES = ("runs", "epochs", "predictions", "latency", "kernels", "saliency", "saliency_maps")


@dataclass(frozen=True)
class Cell:
    """The design coordinates of one run.

    ``variant`` is :data:`~experiments.spec.NO_VARIANT` (``"none"``) for a model without downsampling
    (the MLP). ``permute``, ``location_shift`` (``None``: no shift), ``init`` and ``augment`` are the
    levels of the study's factors (see :class:`~experiments.spec.FactorSpec`).
    """

    study: str
    dataset: str
    model: str
    variant: str
    seed: int
    data_fraction: float
    transform: str = "none"
    permute: bool = False
    location_shift: float | None = None
    init: str = "random"
    augment: str = "none"


def cells_of(spec: StudySpec) -> list[Cell]:
    """Every cell of ``spec``: models x variants x seeds x fractions x factor levels x transforms.

    Factor levels that do not apply to a model are collapsed: a model without a convolution (the
    MLP) only gets ``init="random"``, and its one variant is ``"none"``. Augmentation policies apply
    to every model.

    Cells are ordered by data fraction (largest, i.e. longest, first), then seed, then the
    data-changing factors. So a seed's runs are spread over the whole grid instead of running back to
    back: the machine's speed drifts over minutes, and cells timed in one stretch share it, which made
    a seed's latency timings correlated (intra-seed correlation 0.14-0.28 of run medians with seed-major
    order) and the seed-level bootstrap wider. Variants of one seed and fraction stay adjacent, so
    their comparison is still made at nearly the same moment. Each worker caches every seed's data
    (:func:`experiments._worker.data_for`), so the order costs no extra loading.
    """
    levels = spec.factor_levels()
    cells = []
    for fraction in sorted(spec.fractions, reverse=True):
        for seed in spec.seeds:
            for permute in levels["permute"]:
                for shift in levels["location_shift"]:
                    for m in spec.model_specs:
                        inits = ("random",) if m.name in NO_DOWNSAMPLING else levels["init"]
                        where = (spec.name, spec.dataset, m.name)
                        cells += [
                            Cell(*where, v, seed, fraction, t, permute, shift, init, aug)
                            for v in m.variants
                            for init in inits
                            for aug in levels["augment"]
                            for t in spec.transforms
                        ]
    return cells


def run_id(spec: StudySpec, cell: Cell) -> str:
    """A stable 16-hex-digit hash of everything that determines the run's outcome.

    Hashed are the cell's fields and the specification's fields that fix how a cell runs (not the
    axes that enumerate cells), plus the options of the cell's model family, each only where it
    differs from its dataclass default (:func:`~experiments.spec.non_default`). Adding a field with
    a default, a model family, a variant or a factor level therefore leaves existing ids unchanged.
    """
    fixed = {k: v for k, v in non_default(spec).items() if k not in AXES}
    options = spec.model_spec(cell.model).options
    if options:
        fixed["model_options"] = options
    payload = json.dumps({"cell": non_default(cell), "spec": fixed}, sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


def data_options(spec: StudySpec, cell: Cell) -> dict:
    """Options to load the cell's data with: ``spec.data`` with the cell's factor levels applied.

    A permuted cell uses ``data.permutation_seed`` when given, else the study's ``test_seed``, so
    every permuted cell of a study sees the same permutation.
    """
    options = {k: v for k, v in spec.data.items() if k not in ("location_shift", "permute")}
    if cell.location_shift is not None:
        options["location_shift"] = cell.location_shift
    if cell.permute:
        options |= {"permute": True, "permutation_seed": spec.data.get("permutation_seed", spec.test_seed)}
    return options


def build_model(spec: StudySpec, cell: Cell, input_shape: tuple[int, int, int], num_outputs: int):
    """The cell's model, initialised from its seed and its ``init`` level.

    A model without downsampling (variant ``none``) is built against the operator named by its
    ``downsample`` option, else the study's reference variant (the MLP matches that CNN's count).
    """
    options = dict(spec.model_spec(cell.model).options)
    downsample = options.pop("downsample", spec.reference) if cell.variant == NO_VARIANT else cell.variant
    channels, size, _ = input_shape
    shape = {"in_channels": channels, "input_size": size, "num_outputs": num_outputs}
    model = create_model(cell.model, downsample=downsample, seed=cell.seed, **shape | options)
    return apply_init(model, cell.init)


def run_cell(
    spec: StudySpec,
    cell: Cell,
    data: ImageSplits,
    provenance: dict | None = None,
    levels: tuple[str, ...] | None = None,
) -> dict[str, pd.DataFrame]:
    """Train and evaluate one cell; return one DataFrame per table of :data:`TABLE_NAMES`.

    ``kernels`` holds the trained first convolution's weights of an ``ok`` cell (one row per weight);
    it is empty for a model without a convolution and for a failed or diverged cell. ``saliency`` and
    ``saliency_maps`` are empty unless the study enables ``saliency`` (:mod:`experiments._saliency`).
    The tables also hold the rows of the compression ``levels`` of the trained model (default: the
    study's, see :mod:`experiments._compression`), the cell's own rows first.
    """
    return run_cell_with_model(spec, cell, data, provenance, levels)[0]


def run_cell_with_model(
    spec: StudySpec,
    cell: Cell,
    data: ImageSplits,
    provenance: dict | None = None,
    levels: tuple[str, ...] | None = None,
) -> tuple[dict[str, pd.DataFrame], torch.nn.Module | None]:
    """:func:`run_cell`, also returning the trained model (None when the cell failed before it was built)."""
    model = None
    rid, row, tables, levels = start_cell(spec, cell, provenance, levels)
    try:
        trainee = prepare_cell(spec, cell, data, row)
        augment = augmenter_of(cell)
        data, index = trainee.data, trainee.index
        result = fit(trainee.model, data, spec.train, cell.seed, train_index=index, augment=augment)
        row, tables, model = measure_cell(spec, trainee, rid, row, result, levels)
    except Exception as exc:  # a failed cell is a result to store, not a reason to stop the grid
        row |= failed_fields(exc)
    return finish_cell(row, tables), model


def augmenter_of(cell: Cell):
    """The cell's training-batch augmentation (seeded by the cell), or None."""
    return None if cell.augment == "none" else make_augmenter(cell.augment, cell.seed)


def start_cell(
    spec: StudySpec, cell: Cell, provenance: dict | None, levels: tuple[str, ...] | None
) -> tuple[str, dict, dict[str, pd.DataFrame], tuple[str, ...]]:
    """The cell's ``run_id``, its ``runs`` row before training, empty tables and its compression levels."""
    row: dict = {c: math.nan for c in schema.METRIC_COLUMNS} | {"threshold": math.nan}
    rid = run_id(spec, cell)
    row |= _design_row(spec, cell, rid) | _provenance(provenance) | {"started_at": _now()}
    tables = {name: schema.empty(name) for name in TABLE_NAMES[1:]}
    levels = compressed_levels(spec) if levels is None else tuple(levels)
    return rid, row, tables, levels


def failed_fields(exc: BaseException) -> dict:
    """The ``runs`` fields of a cell that raised ``exc``."""
    return {"status": "failed", "error": _short_traceback(exc)}


def finish_cell(row: dict, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The cell's tables, conformed to the schema, its compression levels' rows after its own."""
    compressed = tables.pop("compressed", None)
    row["finished_at"] = _now()
    runs = pd.DataFrame([row])
    for col in schema.RUNS:
        if col not in runs:
            runs[col] = (
                pd.NA if schema.RUNS[col] == "string" else (-1 if schema.RUNS[col] == "int64" else math.nan)
            )
    out = {"runs": schema.conform("runs", runs)} | {k: schema.conform(k, v) for k, v in tables.items()}
    return out if compressed is None else concat_tables([out, compressed])


@dataclass
class Trainee:
    """A cell ready to train: its standardised data, training rows and initialised model."""

    cell: Cell
    data: ImageSplits
    index: np.ndarray
    model: torch.nn.Module


def prepare_cell(spec: StudySpec, cell: Cell, data: ImageSplits, row: dict) -> Trainee:
    """The cell's training subset, data standardised on it and initialised model; fills ``row``'s
    size fields (``n_train``, ``params``, ``flops``, ...)."""
    binary = data.num_classes == 2
    index = nested_fractions(data.y_train, spec.fractions, cell.seed)[cell.data_fraction]
    data = standardized(data, index)
    model = build_model(spec, cell, data.input_shape, 1 if binary else data.num_classes)
    row |= {
        "n_train": len(index),
        "image_size": data.input_shape[1],
        "params": count_params(model),
        "flops": forward_flops(model, data.input_shape),
        "model_bytes": model_bytes(model),
        "device_name": device_name(spec.train.device),
    }
    return Trainee(cell, data, index, model)


def measure_cell(spec: StudySpec, trainee: Trainee, rid: str, row: dict, result, levels=()):
    """The rows of a trained cell: ``(runs row, other tables, model)`` from its :class:`FitResult`."""
    cell, data, index = trainee.cell, trainee.data, trainee.index
    binary = data.num_classes == 2
    epochs = pd.DataFrame(result.history, columns=[c for c in schema.EPOCHS if c != "run_id"])
    epochs.insert(0, "run_id", rid)
    row |= {
        "status": result.status,
        "error": result.error,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "steps_run": result.steps_run,
        "best_step": result.best_step,
        "train_seconds": result.train_seconds,
    }
    tables = {name: schema.empty(name) for name in TABLE_NAMES[1:]} | {"epochs": epochs}
    if result.status != "ok" or result.best_epoch < 0:
        return row, tables, result.model

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
        row |= _operating_points(spec, model, data, labels, scores)
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
    preds["source"] = example_sources(data, preds["example_id"].to_numpy())
    tables["predictions"] = preds
    tables["kernels"] = kernel_rows(model, rid)
    tables |= saliency_tables(spec.saliency, spec.test_seed, model, data, rid)
    if spec.consistency.enabled:
        row |= _consistency(spec, cell, model, data.x_test)
    if spec.latency.enabled:
        tables["latency"] = _latency_rows(spec, model, data.input_shape, rid)
    if levels:  # rows of the compression levels of this trained model (experiments._compression)
        facts, tables["compressed"] = compress_trained(spec, model, data, index, row, levels)
        row |= facts
    return row, tables, model


def example_sources(data: ImageSplits, example_ids: np.ndarray) -> pd.Series:
    """Where each test example came from (``info["ids"]["test"]`` of a real data set: a batch file and
    index, an npz row, an image path), so an error can be traced to its image; missing for synthetic
    data, which has no ids (its ``example_id`` and the study's ``test_seed`` identify the image)."""
    ids = data.info.get("ids", {}).get("test") if isinstance(data.info.get("ids"), dict) else None
    if ids is None or len(ids) != len(data.y_test):
        return pd.Series(pd.NA, index=range(len(example_ids)), dtype="string")
    return pd.Series(np.asarray(ids, dtype=object)[example_ids], dtype="string")


def _operating_points(spec: StudySpec, model, data: ImageSplits, labels, scores) -> dict:
    """Test metrics at 0.5 and at the threshold chosen on the validation split (never on test)."""
    val_scores = predict_scores(model, data.x_val, spec.train.eval_batch_size).double().numpy()
    ev = spec.evaluation
    return score_operating_points(
        data.y_val.numpy(), val_scores, labels, scores, rule=ev.threshold_rule, report=ev.operating_point
    )


def kernel_rows(model: torch.nn.Module, rid: str) -> pd.DataFrame:
    """The first convolution's weights as tidy ``kernels`` rows (out x in x rows x cols of them)."""
    found = first_conv(model)
    if found is None:
        return schema.empty("kernels")
    name, conv = found
    w = conv.weight.detach().contiguous().double().numpy()  # (out, in, kh, kw)
    out_c, in_c, row, col = (a.reshape(-1) for a in np.indices(w.shape))
    return pd.DataFrame(
        {"run_id": rid, "layer": name, "out_channel": out_c, "in_channel": in_c, "row": row, "col": col,
         "value": w.reshape(-1)}
    )  # fmt: skip


class _PermutedInput(torch.nn.Module):
    """``model`` behind the study's pixel permutation: takes unpermuted images, permutes, predicts."""

    def __init__(self, model: torch.nn.Module, perm: torch.Tensor) -> None:
        super().__init__()
        self.model, self.perm = model, perm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(apply_permutation(x, self.perm))


def _consistency(spec: StudySpec, cell: Cell, model, x_test: torch.Tensor) -> dict:
    """Shift consistency of ``model`` on the first test images.

    For a permuted cell a shift of the permuted image is not a spatial shift, so the scene is shifted
    instead: the test image is un-permuted, shifted, and permuted again before the model sees it. The
    number is then comparable with the unpermuted cells' (same images, same shift pairs).
    """
    cons = spec.consistency
    x = x_test[: cons.n_images]
    if cell.permute:
        perm, inverse = pixel_permutation(x.shape[-1], data_options(spec, cell)["permutation_seed"])
        x, model = apply_permutation(x, inverse), _PermutedInput(model, perm)
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
        reference=lat.reference,
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
        "permute": cell.permute,
        "location_shift": math.nan if cell.location_shift is None else cell.location_shift,
        "init": cell.init,
        "compression": "none",
        "parent_run_id": rid,
        "augment": cell.augment,
        "batch_size": t.batch_size,
        "lr": t.lr,
        "optimizer": t.optimizer,
        "device": t.device,
        "epochs_run": 0,
        "best_epoch": -1,
        "steps_run": 0,
        "best_step": -1,
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
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def wall_clock() -> float:
    """Seconds since the epoch (the one impure input of a cell, kept in one place)."""
    return time.time()
