"""Compression levels of a cell's trained model, stored as runs of their own (issue 17).

A study's ``factors.compression`` names levels of :mod:`downscalexr.compress`. They are not cells: each
level is applied to the trained model of every cell, after the cell's own measurements, so a compressed
model pairs exactly with its parent (same seed, same data, same weights before compression). A level is
a run of its own: one ``runs`` row (its ``run_id`` hashes the parent's id and the level;
``parent_run_id`` is the cell's run id, ``compression`` the level), its test ``predictions`` and its
``latency`` rows, measured as the cell's are (same batch sizes, threads and reference workload);
``epochs`` and ``kernels`` stay empty. ``_ft`` levels fine-tune on the cell's training subset, never on
validation or test images; ``int8_static`` calibrates on it. A level that cannot apply to the model's
operators is a row with status ``unsupported`` and the reason in ``error``; a level that raises is
``failed``. Neither touches the parent's row.

**Resume.** A rerun skips stored levels and retries failed ones, as for cells. A level missing from a
cell whose parent is stored ``ok`` (added to the study file later, or an interrupted write) is computed
by *retraining the cell deterministically*: training is a pure function of the specification, the cell
and its data, so the retrained model is the stored parent. This is checked, not assumed: the retrained
model's test scores must reproduce the stored parent's (within :data:`REPRODUCE_TOLERANCE`), else the
missing levels are stored as ``failed`` with the difference, and ``--force`` recomputes the cell with
its levels. Only the missing levels' rows are written; the parent's stored rows are left as they are.
(Storing each parent's weights instead would cost a file per cell in every study, for a rare rerun.)
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import torch

from downscalexr import schema
from downscalexr.compress import apply_compression
from downscalexr.metrics import multiclass_metrics
from downscalexr.models import model_bytes
from downscalexr.train import evaluate, predict_scores
from experiments.spec import StudySpec
from experiments.store import StudyPaths, write_cell

NONE = "none"
TABLES = ("runs", "epochs", "predictions", "latency", "kernels")
# The largest difference in a test probability between a retrained parent and the stored one that still
# counts as the same model: float32 scores, stored as float64, from the same deterministic training.
REPRODUCE_TOLERANCE = 1e-6
# Columns a level's row takes from its parent: the design, how the parent was trained, provenance.
INHERITED = (
    "study", "dataset", "model", "variant", "seed", "data_fraction", "n_train", "image_size", "epochs_run",
    "batch_size", "lr", "optimizer", "transform", "permute", "location_shift", "init", "best_epoch",
    "steps_run", "best_step", "package_version", "git_commit", "torch_version", "threads", "cpu", "host_id",
)  # fmt: skip
# Facts of downscalexr.compress kept in the runs columns of the same name.
FACT_COLUMNS = (
    "sparsity", "sparsity_conv", "sparsity_head", "nonzero_params", "state_dict_bytes",
    "state_dict_gzip_bytes", "quant_path", "quant_engine", "finetune_steps",
)  # fmt: skip
# Facts too detailed for a column of their own: kept as JSON in ``compression_detail``.
DETAIL_KEYS = (
    "description", "method", "scope", "target_sparsity", "layer_sparsity", "channels", "quantized_layers",
    "fp32_layers", "finetune_last_loss",
)  # fmt: skip


def compressed_levels(spec: StudySpec) -> tuple[str, ...]:
    """The study's compression levels other than ``none``, in the order of the study file."""
    return tuple(level for level in spec.factors.compression if level != NONE)


def level_run_id(parent_run_id: str, level: str) -> str:
    """The run id of compression ``level`` of the run ``parent_run_id`` (16 hex digits, stable).

    Examples
    --------
    >>> level_run_id("0123456789abcdef", "int8_static") == level_run_id("0123456789abcdef", "int8_static")
    True
    """
    payload = json.dumps({"parent": parent_run_id, "compression": level}, sort_keys=True)
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


def pending_levels(
    spec: StudySpec, parent_run_id: str, stored_status: Mapping[str, str], retry_failed: bool
) -> tuple[str, ...]:
    """Levels of a stored parent still to compute: not stored, or stored ``failed`` when retrying."""
    out = []
    for level in compressed_levels(spec):
        status = stored_status.get(level_run_id(parent_run_id, level))
        if status is None or (retry_failed and status == "failed"):
            out.append(level)
    return tuple(out)


def compress_trained(
    spec: StudySpec,
    model: torch.nn.Module,
    data,
    index: np.ndarray,
    parent_row: dict,
    levels: Sequence[str],
) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Apply every level to the cell's trained ``model``; return the parent's size facts and the levels' rows.

    Parameters
    ----------
    spec : StudySpec
    model : torch.nn.Module
        The cell's trained model (not modified).
    data : ImageSplits
        The cell's standardised data; ``index`` selects its training subset.
    index : ndarray
        Positions of the cell's training subset in ``data.x_train`` (fine-tuning, calibration).
    parent_row : dict
        The cell's ``runs`` row (design, training facts, provenance, ``run_id``).
    levels : sequence of str
        Level names other than ``none``.

    Returns
    -------
    (dict, dict of DataFrame)
        The ``none`` level's facts for the parent's row (sizes, non-zero parameters), and the rows of
        every level in the five tables (conformed to the schema).
    """
    base = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    idx = torch.as_tensor(index, dtype=torch.long)
    train = (data.x_train[idx], data.y_train[idx])
    parent_facts = _fact_columns(apply_compression(NONE, base, seed=int(parent_row["seed"]),
                                                   input_shape=data.input_shape)[1])  # fmt: skip
    parts = [_one_level(spec, base, data, train, parent_row, level) for level in levels]
    return parent_facts, concat_tables(parts)


def _one_level(spec: StudySpec, base, data, train, parent_row: dict, level: str) -> dict[str, pd.DataFrame]:
    """One level's rows; any exception becomes a ``failed`` row (the parent and other levels go on)."""
    lid = level_run_id(parent_row["run_id"], level)
    row = _level_row(parent_row, level, lid)
    tables = {name: schema.empty(name) for name in TABLES[1:]}
    start = time.perf_counter()
    try:
        compressed, facts = apply_compression(
            level, base, seed=int(parent_row["seed"]), input_shape=data.input_shape,
            train_data=train, calib_data=train[0],
        )  # fmt: skip
        row |= _fact_columns(facts) | {"status": facts["status"], "error": facts["reason"] or ""}
        if compressed is not None:
            row, tables = _score(spec, compressed, data, train, row, tables, facts)
    except Exception as exc:  # a level that breaks is a result to store, not a reason to lose the cell
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__)
        row |= {"status": "failed", "error": "".join(frames[-3:]).strip()[-2000:]}
    row["compression_seconds"] = time.perf_counter() - start
    row["finished_at"] = _now()
    return {"runs": _runs_frame([row])} | {k: schema.conform(k, v) for k, v in tables.items()}


def _score(spec: StudySpec, compressed, data, train, row: dict, tables: dict, facts: dict):
    """Test predictions, metrics at both operating points, train/validation accuracy and latency."""
    from experiments import cell as cell_module  # cell imports this module: import on use

    binary = data.num_classes == 2
    scores = predict_scores(compressed, data.x_test).double().numpy()
    labels = data.y_test.numpy()
    if binary:
        row |= cell_module._operating_points(spec, compressed, data, labels, scores)
    else:
        row |= multiclass_metrics(labels, scores)
    val = evaluate(compressed, data.x_val, data.y_val, data.num_classes)
    row |= {
        "train_accuracy": evaluate(compressed, *train, data.num_classes)["accuracy"],
        "val_accuracy": val["accuracy"],
        "val_auroc": val["auroc"],
        "params": int(facts["params"]),
        "flops": float(facts["flops"]),
        # parameters + buffers in memory: meaningless for packed int8 weights (see state_dict_bytes)
        "model_bytes": -1 if facts["quant_path"] else model_bytes(compressed),
    }
    tables["predictions"] = _prediction_rows(row["run_id"], labels, scores)
    if spec.latency.enabled:
        tables["latency"] = cell_module._latency_rows(spec, compressed, data.input_shape, row["run_id"])
    return row, tables


def _prediction_rows(rid: str, labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Test predictions in the layout of :func:`experiments.cell.run_cell` (binary: P(positive))."""
    n = len(labels)
    if scores.ndim == 1:
        frame = pd.DataFrame({"example_id": np.arange(n), "label": labels, "class_index": 1, "score": scores})
    else:
        k = scores.shape[1]
        frame = pd.DataFrame(
            {"example_id": np.repeat(np.arange(n), k), "label": np.repeat(labels, k),
             "class_index": np.tile(np.arange(k), n), "score": scores.reshape(-1)}
        )  # fmt: skip
    frame.insert(0, "run_id", rid)
    return frame


def _level_row(parent_row: dict, level: str, lid: str) -> dict:
    """A level's ``runs`` row before it is measured: the parent's design, nothing measured yet."""
    row = {c: math.nan for c in schema.METRIC_COLUMNS} | {"threshold": math.nan}
    row |= {c: parent_row[c] for c in INHERITED if c in parent_row}
    return row | {
        "run_id": lid,
        "compression": level,
        "parent_run_id": parent_row["run_id"],
        "status": "failed",
        "error": "",
        "started_at": _now(),
    }


def _fact_columns(facts: dict) -> dict:
    """The ``runs`` columns of a level's facts (``compression_detail``: the per-layer facts as JSON)."""
    out = {c: facts.get(c) for c in FACT_COLUMNS}
    for c in ("nonzero_params", "state_dict_bytes", "state_dict_gzip_bytes", "finetune_steps"):
        out[c] = -1 if out[c] is None else int(out[c])
    for c in ("sparsity", "sparsity_conv", "sparsity_head"):
        out[c] = math.nan if out[c] is None else float(out[c])
    detail = {k: facts.get(k) for k in DETAIL_KEYS if _given(facts.get(k))}
    out["compression_detail"] = json.dumps(detail, sort_keys=True, default=_plain, allow_nan=False)
    return out


def _given(value) -> bool:
    """Whether a fact has a value (not None, not NaN): JSON has no NaN."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _plain(value):
    """JSON form of the numpy / torch scalars and tuples a facts dict may hold."""
    if isinstance(value, (np.generic, torch.Tensor)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _runs_frame(rows: list[dict]) -> pd.DataFrame:
    """``runs`` rows with every schema column (missing ones at their empty value), conformed."""
    runs = pd.DataFrame(rows)
    for col, dtype in schema.RUNS.items():
        if col not in runs:
            runs[col] = pd.NA if dtype in ("string", "boolean") else (-1 if dtype == "int64" else math.nan)
    return schema.conform("runs", runs)


def concat_tables(parts: Sequence[Mapping[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """The rows of several runs, table by table (parts in order; empty parts keep the dtypes)."""
    out = {}
    for name in TABLES:
        frames = [p[name] for p in parts if name in p and len(p[name])]
        out[name] = pd.concat(frames, ignore_index=True) if frames else schema.empty(name)
    return out


def write_runs(paths: StudyPaths, tables: Mapping[str, pd.DataFrame]) -> None:
    """Store each run of ``tables`` (a cell and its levels) with :func:`experiments.store.write_cell`.

    Runs are written in the order of ``tables["runs"]``, the parent first: a cell interrupted between
    its own write and its levels' is stored with levels pending, which a rerun computes.
    """
    for rid in tables["runs"]["run_id"]:
        write_cell(paths, {name: frame[frame["run_id"] == rid] for name, frame in tables.items()})


def stored_levels_only(
    paths: StudyPaths, tables: Mapping[str, pd.DataFrame], parent_run_id: str, levels: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """The level rows of a retrained cell, if it reproduces its stored parent; else the levels failed.

    ``tables`` is :func:`experiments.cell.run_cell`'s output for the cell retrained with ``levels``.
    The parent's rows are dropped (the stored ones stay); see the module docstring.
    """
    runs = tables["runs"]
    parent = runs[runs["run_id"] == parent_run_id].iloc[0]
    if parent["status"] != "ok":
        why = f"retraining the parent failed: {parent['error']}"
        return failed_levels(tables, parent_run_id, levels, why)
    try:
        stored = pd.read_parquet(paths.cell_file("predictions", parent_run_id))
    except (OSError, ValueError) as exc:
        why = f"cannot read the stored parent's predictions: {exc}"
        return failed_levels(tables, parent_run_id, levels, why)
    fresh = tables["predictions"][tables["predictions"]["run_id"] == parent_run_id]
    keys = ["example_id", "class_index"]
    both = stored.merge(fresh, on=keys, suffixes=("_stored", "_fresh"), how="outer")
    gap = (both["score_stored"] - both["score_fresh"]).abs().max()
    if len(both) != len(stored) or not gap <= REPRODUCE_TOLERANCE:  # NaN (a missing example) fails too
        return failed_levels(
            tables, parent_run_id, levels,
            f"the retrained parent does not reproduce the stored parent's test scores (largest difference "
            f"{gap:.3g} > {REPRODUCE_TOLERANCE:g}: another machine or library version?); rerun with "
            "--force to recompute the cell with its levels",
        )  # fmt: skip
    return {k: frame[frame["run_id"] != parent_run_id].reset_index(drop=True) for k, frame in tables.items()}


def failed_levels(
    tables: Mapping[str, pd.DataFrame], parent_run_id: str, levels: Sequence[str], error: str
) -> dict[str, pd.DataFrame]:
    """Rows storing ``levels`` of the parent in ``tables`` as ``failed`` with ``error`` (nothing measured)."""
    runs = tables["runs"]
    parent = runs[runs["run_id"] == parent_run_id].iloc[0].to_dict()
    parent["run_id"] = parent_run_id
    rows = []
    for level in levels:
        row = _level_row(parent, level, level_run_id(parent_run_id, level))
        rows.append(row | {"error": error, "finished_at": _now()})
    empty = {name: schema.empty(name) for name in TABLES[1:]}
    return {"runs": _runs_frame(rows)} | empty


def level_counts(runs: pd.DataFrame, spec: StudySpec, parent_ids: Sequence[str]) -> Counter:
    """Status counts of the levels the study expects of its ``ok`` parents (``missing``: not stored)."""
    status = dict(zip(runs["run_id"], runs["status"], strict=True))
    counts: Counter = Counter()
    for pid in parent_ids:
        if status.get(pid) == "ok":
            for level in compressed_levels(spec):
                counts[status.get(level_run_id(pid, level), "missing")] += 1
    return counts


def level_summary(runs: pd.DataFrame, spec: StudySpec, parent_ids: Sequence[str]) -> list[str]:
    """Lines for the end-of-run summary: level rows by status, and why levels were unsupported."""
    counts = level_counts(runs, spec, parent_ids)
    if not counts:
        return []
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines = [f"compression levels ({', '.join(compressed_levels(spec))}): {parts}"]
    levels = runs[runs["parent_run_id"].isin(set(parent_ids)) & (runs["status"] == "unsupported")]
    for (variant, level), group in levels.groupby(["variant", "compression"], sort=True):
        lines.append(f"  unsupported: {level} on {variant} ({len(group)} runs): {group['error'].iloc[0]}")
    return lines


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
