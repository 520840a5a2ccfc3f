"""Column names and dtypes of the results tables: the contract between runner and analysis.

This module holds names and dtypes only (no file I/O), so that both ``experiments`` (which writes the
tables) and ``analysis`` (which reads them and must not import ``experiments``) share one definition.

Tables
------
runs         one row per cell (training run), and one per compression level of its trained model
epochs       one row per cell x epoch
predictions  one row per cell x test example (x class for multi-class tasks)
latency      one row per cell x batch size x memory format x repeat
kernels      one row per cell x weight of the model's first convolution (empty for models without one)
saliency     one row per cell x explained test image (empty unless the study enables ``saliency``)
saliency_maps  one row per cell x explained test image x cell of the map's coarse grid (idem)

A compression level applied to a cell's trained model is a run of its own (one ``runs`` row, its own
``predictions`` and ``latency`` rows) whose ``parent_run_id`` names the cell's uncompressed run.

Columns added after the first studies were stored (the inductive-bias factors and measurements) have
defaults in :data:`LATE_DEFAULTS`; :func:`conform` fills them in when an older file lacks them.
"""

from __future__ import annotations

import pandas as pd

# Threshold metrics stored at both operating points of a binary task: ``<metric>_fixed`` at the fixed
# threshold 0.5 and ``<metric>_chosen`` at ``threshold_chosen``, chosen on the validation split by the
# study's ``evaluation.threshold_rule``. The unsuffixed columns are at ``threshold``: the one of the
# two the study reports (``operating_point``). Multi-class tasks decide by argmax: all NaN.
THRESHOLD_METRICS = (
    "accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "tp", "fp", "tn", "fn",
    "fpr", "fnr", "predicted_positive_rate", "criterion_c", "dprime",
)  # fmt: skip
OPERATING_POINTS = ("fixed", "chosen")
OPERATING_POINT_COLUMNS = tuple(f"{m}_{point}" for point in OPERATING_POINTS for m in THRESHOLD_METRICS)

# dtype strings are pandas dtypes; "string" columns may hold missing values.
RUNS: dict[str, str] = {
    "run_id": "string",
    # design
    "study": "string",
    "dataset": "string",
    "model": "string",
    "variant": "string",
    "seed": "int64",
    "data_fraction": "float64",
    "n_train": "int64",
    "image_size": "int64",
    "epochs_run": "int64",
    "batch_size": "int64",
    "lr": "float64",
    "optimizer": "string",
    "transform": "string",
    # inductive-bias factors: fixed pixel permutation, train/test location shift (NaN = none), and the
    # first convolution's initialisation ("random", "edge_frozen" or "edge_trainable")
    "permute": "boolean",
    "location_shift": "float64",
    "init": "string",
    # compression (issue 17): the level applied to the trained model ("none": the model as trained) and
    # the run_id of the trained parent it was applied to (a "none" row is its own parent), so every
    # compressed row pairs with its parent on the same seed, data and weights
    "compression": "string",
    "parent_run_id": "string",
    # training augmentation policy (downscalexr.augment: "none", "flip", "flip_rotate", ...), a factor
    "augment": "string",
    # model facts
    "params": "int64",
    "flops": "float64",
    "model_bytes": "int64",
    # outcome
    "status": "string",
    "error": "string",
    "train_seconds": "float64",
    # test metrics (threshold metrics at `threshold`)
    "accuracy": "float64",
    "balanced_accuracy": "float64",
    "precision": "float64",
    "recall": "float64",
    "specificity": "float64",
    "f1": "float64",
    "auroc": "float64",
    "auprc": "float64",
    "tp": "float64",
    "fp": "float64",
    "tn": "float64",
    "fn": "float64",
    "fpr": "float64",
    "fnr": "float64",
    "predicted_positive_rate": "float64",
    "prevalence": "float64",
    "criterion_c": "float64",
    "dprime": "float64",
    "ece": "float64",
    "brier": "float64",
    "log_loss": "float64",
    "threshold": "float64",
    # operating points: which one the columns above use ("fixed" or "chosen"), how the chosen threshold
    # was found ("youden" or "prevalence"), the chosen threshold, and the metrics at both points
    "operating_point": "string",
    "threshold_rule": "string",
    "threshold_chosen": "float64",
    **dict.fromkeys(OPERATING_POINT_COLUMNS, "float64"),
    # generalization
    "train_accuracy": "float64",
    "val_accuracy": "float64",
    "val_auroc": "float64",
    "best_epoch": "int64",
    # optimisation: steps taken, and the step of the restored (best) validation
    "steps_run": "int64",
    "best_step": "int64",
    # shift consistency (Zhang 2019): P(same predicted class) under two random shifts; NaN when not measured
    "shift_consistency_circular": "float64",
    "shift_consistency_pad": "float64",
    # compression facts (filled in studies with compression levels; see downscalexr.compress): zero
    # fraction of the weights in the level's scope, of conv and of linear weights; non-zero parameters;
    # the serialized state dict's bytes and gzip bytes (what the model costs to store, packed int8 weights
    # included); the int8 path and engine; fine-tuning steps; seconds the level took; per-layer details
    # (JSON: layer sparsity, channels before/after, quantized and fp32 layers)
    "sparsity": "float64",
    "sparsity_conv": "float64",
    "sparsity_head": "float64",
    "nonzero_params": "int64",
    "state_dict_bytes": "int64",
    "state_dict_gzip_bytes": "int64",
    "quant_path": "string",
    "quant_engine": "string",
    "finetune_steps": "int64",
    "compression_seconds": "float64",
    "compression_detail": "string",
    # provenance
    "package_version": "string",
    "git_commit": "string",
    "torch_version": "string",
    "threads": "int64",
    "cpu": "string",
    "host_id": "string",
    "started_at": "string",
    "finished_at": "string",
    # where the model was trained (latency is always measured on the CPU)
    "device": "string",
    "device_name": "string",
}

EPOCHS: dict[str, str] = {
    "run_id": "string",
    "epoch": "int64",  # counts validations: epochs, or eval_every periods of a step budget
    "step": "int64",  # optimiser steps taken when this validation ran
    "train_loss": "float64",
    "train_accuracy": "float64",
    "val_loss": "float64",
    "val_accuracy": "float64",
    "val_auroc": "float64",
    "seconds": "float64",
}

PREDICTIONS: dict[str, str] = {
    "run_id": "string",
    "example_id": "int64",
    "label": "int64",
    # probability of the positive class (binary) or of class `class_index` (multi-class)
    "class_index": "int64",
    "score": "float64",
    # where the test example came from, for real data: "<batch file>[<index>]" (CIFAR-10),
    # "test_images[17]" (npz) or the image file's path below the data folder; missing for synthetic
    # data, whose example_id (row of the test split, fixed by test_seed) identifies it
    "source": "string",
}

LATENCY: dict[str, str] = {
    "run_id": "string",
    "batch_size": "int64",
    "threads": "int64",
    "memory_format": "string",
    "repeat": "int64",
    "seconds": "float64",
    # the fixed reference workload timed just before this pass (downscalexr.latency.reference_workload):
    # how fast the machine was at that moment; NaN when it was not timed
    "reference_seconds": "float64",
}

KERNELS: dict[str, str] = {
    "run_id": "string",
    "layer": "string",  # module name of the first convolution, e.g. "conv1"
    "out_channel": "int64",
    "in_channel": "int64",
    "row": "int64",
    "col": "int64",
    "value": "float64",
}

# Grad-CAM outcomes (downscalexr.saliency) of the study's fixed test images: the same example_ids in
# every cell (chosen by saliency_subset from test_seed alone), so they pair across seeds and variants.
SALIENCY: dict[str, str] = {
    "run_id": "string",
    "example_id": "int64",  # row of the test split, as in `predictions`
    "label": "int64",  # true class (binary: 1 = positive)
    "target": "int64",  # class the map explains: the label, or the prediction (study's saliency.target)
    "predicted": "int64",  # argmax class (binary: probability >= 0.5)
    "target_probability": "float64",  # probability of `target` on the intact image
    "layer": "string",  # module whose output Grad-CAM explains, e.g. "down2" (LeNet), "stage3" (ResNet)
    # share of the map's mass inside the ground-truth mask, in [0, 1]; NaN without masks (real data),
    # for an empty mask (a negative detection image) or a map without mass
    "localisation": "float64",
    # share of the image inside the mask: the localisation a uniform map would score (chance level)
    "mask_fraction": "float64",
    # area under the deletion curve (most salient pixels removed first), in [0, 1]; lower = more faithful
    "deletion_area": "float64",
}

# Each explained image's Grad-CAM map at low resolution, for mean maps per variant with seed bands.
SALIENCY_MAPS: dict[str, str] = {
    "run_id": "string",
    "example_id": "int64",
    "row": "int64",  # grid cell, 0 .. saliency.grid - 1 from the top
    "col": "int64",  # grid cell, 0 .. saliency.grid - 1 from the left
    "cam": "float64",  # mean of the map (divided by its maximum, so in [0, 1]) over the grid cell
    "mask": "float64",  # share of the grid cell inside the ground-truth mask; NaN without masks
}

TABLES: dict[str, dict[str, str]] = {
    "runs": RUNS,
    "epochs": EPOCHS,
    "predictions": PREDICTIONS,
    "latency": LATENCY,
    "kernels": KERNELS,
    "saliency": SALIENCY,
    "saliency_maps": SALIENCY_MAPS,
}

# Value of a column that a file written before the column existed is read with.
LATE_DEFAULTS: dict[str, dict[str, object]] = {
    "runs": {
        "permute": False,
        "location_shift": float("nan"),
        "init": "random",
        "shift_consistency_circular": float("nan"),
        "shift_consistency_pad": float("nan"),
        "operating_point": "fixed",  # before operating points, every binary run was scored at 0.5
        "threshold_rule": pd.NA,
        "threshold_chosen": float("nan"),
        **dict.fromkeys(OPERATING_POINT_COLUMNS, float("nan")),
        "steps_run": -1,
        "best_step": -1,
        "compression": "none",  # before compression levels, every run was the model as trained
        "parent_run_id": pd.NA,  # read as the run's own id (analysis.design.design_frame)
        "sparsity": float("nan"),
        "sparsity_conv": float("nan"),
        "sparsity_head": float("nan"),
        "nonzero_params": -1,
        "state_dict_bytes": -1,
        "state_dict_gzip_bytes": -1,
        "quant_path": pd.NA,
        "quant_engine": pd.NA,
        "finetune_steps": -1,
        "compression_seconds": float("nan"),
        "compression_detail": pd.NA,
        "device": "cpu",  # before train.device every run trained on the CPU
        "device_name": pd.NA,
        "augment": "none",  # before the augment factor, no study augmented
    },
    "epochs": {"step": -1},
    "predictions": {"source": pd.NA},
    "latency": {"reference_seconds": float("nan")},
}
INIT_CHOICES = ("random", "edge_frozen", "edge_trainable")

# "unsupported": a compression level that cannot apply to the model's operators (the reason in ``error``);
# like "failed" and "diverged" it never enters a statistic, but it is a result, not an error of the grid
STATUSES = ("ok", "diverged", "failed", "unsupported")
# test-set metrics written by downscalexr.metrics.binary_metrics, in schema order
METRIC_COLUMNS = tuple(RUNS)[list(RUNS).index("accuracy") : list(RUNS).index("threshold")]


class SchemaError(ValueError):
    """A results table does not match the schema; the message names the table and the problem."""


def empty(table: str) -> pd.DataFrame:
    """An empty DataFrame with the columns and dtypes of ``table``."""
    columns = _columns(table)
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def conform(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the schema's columns, in order, cast to the schema's dtypes.

    Extra columns are kept after the schema's own (later issues add per-run measurements); a
    missing column raises :class:`SchemaError`.
    """
    columns = _columns(table)
    late = {c: v for c, v in LATE_DEFAULTS.get(table, {}).items() if c not in frame.columns}
    if late:
        frame = frame.assign(**late)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"table {table!r} lacks columns {missing}")
    extra = [c for c in frame.columns if c not in columns]
    out = frame.loc[:, list(columns) + extra].copy()
    for name, dtype in columns.items():
        if str(out[name].dtype) == dtype:
            continue
        try:
            out[name] = out[name].astype(dtype)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"table {table!r}, column {name!r}: cannot be read as {dtype}: {exc}") from exc
    return out


def validate(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Check a table read back from disk and return it conformed; raise :class:`SchemaError` if malformed."""
    out = conform(table, frame)
    if out["run_id"].isna().any():
        raise SchemaError(f"table {table!r} has rows without run_id")
    if table == "runs":
        bad = sorted(set(out["status"].dropna()) - set(STATUSES))
        if bad:
            raise SchemaError(f"table 'runs' has unknown status values {bad}; expected {list(STATUSES)}")
        if out["run_id"].duplicated().any():
            dup = out.loc[out["run_id"].duplicated(), "run_id"].iloc[0]
            raise SchemaError(f"table 'runs' has duplicate run_id {dup!r}")
    return out


def _columns(table: str) -> dict[str, str]:
    try:
        return TABLES[table]
    except KeyError:
        raise SchemaError(f"unknown table {table!r}; choose from {', '.join(TABLES)}") from None


# ---------------------------------------------------------------- descriptions (docs/results.md)
# What every table and column holds, in words, for people who analyse the tables in their own tools.
# docs/results.md is generated from these (`python docs/generate_results.py`); a test fails when a
# column has no description here or the committed page is not the generator's output.
TABLE_DESCRIPTIONS: dict[str, str] = {
    "runs": "One row per cell (one training run): its design, model facts, outcome, test metrics, "
    "generalization, shift consistency and provenance.",
    "epochs": "One row per cell x epoch: the training curve.",
    "predictions": "One row per cell x test example (x class for multi-class tasks): the model's "
    "probability, for per-example comparisons (McNemar, bootstrap over examples, calibration).",
    "latency": "One row per cell x batch size x memory format x repeat: one timed forward pass on CPU.",
    "kernels": "One row per cell x weight of the model's first convolution (no rows for models without "
    "one), for kernel figures.",
    "saliency": "One row per cell x explained test image (studies with `saliency.enabled`; the same "
    "images in every cell, chosen from `test_seed`): Grad-CAM localisation and deletion-curve area.",
    "saliency_maps": "One row per cell x explained test image x grid cell: the Grad-CAM map and the "
    "ground-truth mask averaged onto a `saliency.grid` x `saliency.grid` partition, for mean maps.",
}
COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "runs": {
        "run_id": "Hash of the cell's settings that differ from their defaults (the key joining every "
        "table; equal settings give an equal run_id).",
        "study": "Name of the study (its YAML file's `name`).",
        "dataset": "Data set name, as registered (e.g. `detection`, `edges`, `folder`, `npz`).",
        "model": "Model family (e.g. `lenet`, `resnet`, `mlp`).",
        "variant": "Downsampling operator (e.g. `avgpool`, `maxpool`, `strided`); `none` for models "
        "without one (the MLP).",
        "seed": "Seed of the cell: fixes the training subset, batch order, initial weights and "
        "augmentation; shared across variants and fractions, so comparisons are paired by seed.",
        "data_fraction": "Fraction of the training pool used (nested: for one seed a smaller fraction's "
        "subset lies inside a larger one's).",
        "n_train": "Training images actually used (0 when the cell failed before choosing them).",
        "image_size": "Side of the (square) input images in pixels.",
        "epochs_run": "Validation periods trained: epochs, or `eval_every`-step periods of a step budget "
        "(fewer than configured when early stopping or divergence ended training).",
        "batch_size": "Training batch size.",
        "lr": "Learning rate.",
        "optimizer": "Optimiser (`adam` or `sgd`).",
        "transform": "Deployment transform of the cell (`none` only, for now; training augmentation is "
        "`augment`).",
        "permute": "Whether every image's pixels were shuffled by one fixed permutation per study.",
        "location_shift": "Edges data only: training edges lie in the first `location_shift` of the image, "
        "test edges in the rest; missing (NaN) = no shift.",
        "init": "First convolution's initialisation: `random`, `edge_frozen` or `edge_trainable` "
        "(oriented edge detectors, frozen or trained).",
        "params": "Number of model parameters.",
        "flops": "Forward FLOPs per image (a multiply-add counts 2; convolutions and matrix products only).",
        "model_bytes": "Bytes held by parameters and buffers.",
        "status": "`ok`, `diverged` (non-finite training loss) or `failed` (an exception; see `error`).",
        "error": "Why the cell did not finish `ok` (message or traceback tail); empty otherwise.",
        "train_seconds": "Wall-clock training time in seconds (validation passes included).",
        "accuracy": "Test accuracy (binary: at `threshold`; multi-class: argmax).",
        "balanced_accuracy": "Mean of the per-class recalls on the test set.",
        "precision": "Test precision of the positive (abnormal) class; multi-class: macro mean.",
        "recall": "Test recall (sensitivity) of the positive class; multi-class: macro mean.",
        "specificity": "Test specificity (true-negative rate); multi-class: macro mean.",
        "f1": "Test F1 of the positive class; multi-class: mean of per-class F1.",
        "auroc": "Area under the test ROC curve; multi-class: macro one-vs-rest.",
        "auprc": "Area under the test precision-recall curve; multi-class: macro one-vs-rest.",
        "tp": "True positives on the test set (multi-class: macro mean of one-vs-rest counts).",
        "fp": "False positives on the test set (multi-class: macro mean).",
        "tn": "True negatives on the test set (multi-class: macro mean).",
        "fn": "False negatives on the test set (multi-class: macro mean).",
        "fpr": "False-positive rate, fp / (fp + tn).",
        "fnr": "False-negative rate, fn / (fn + tp).",
        "predicted_positive_rate": "Fraction of test examples called positive; compare with `prevalence` "
        "for over-calling.",
        "prevalence": "Fraction of positive test examples.",
        "criterion_c": "Signal-detection criterion c (log-linear corrected); c < 0 means over-calling "
        "the positive class.",
        "dprime": "Signal-detection sensitivity d' (log-linear corrected).",
        "ece": "Expected calibration error (15 equal-width bins; multi-class: top-label confidence).",
        "brier": "Brier score of the test probabilities.",
        "log_loss": "Mean negative log-likelihood on the test set (probabilities clipped to "
        "[1e-7, 1 - 1e-7]).",
        "threshold": "Decision threshold of the unsuffixed threshold metrics above: 0.5 or "
        "`threshold_chosen`, as `operating_point` says; NaN for multi-class (argmax).",
        "operating_point": "Which operating point the unsuffixed threshold metrics use: `fixed` (0.5) or "
        "`chosen` (`threshold_chosen`).",
        "threshold_rule": "How `threshold_chosen` was chosen on the validation split: `youden` (maximum "
        "sensitivity + specificity - 1) or `prevalence` (as many positive calls as validation positives).",
        "threshold_chosen": "Threshold chosen on the validation split by `threshold_rule` (never on test); "
        "NaN for multi-class.",
        "train_accuracy": "Accuracy of the final (restored best) model on the cell's training subset.",
        "val_accuracy": "Validation accuracy at `best_epoch`.",
        "val_auroc": "Validation AUROC at `best_epoch`.",
        "best_epoch": "Validation period (from 0) whose weights were kept, chosen on validation by the "
        "study's monitor; -1 when none was.",
        "steps_run": "Optimiser steps taken.",
        "best_step": "Optimiser steps taken when the kept (best) validation ran; -1 when none was.",
        "shift_consistency_circular": "P(same predicted class) for a test image under two random "
        "circular shifts (Zhang 2019); NaN when not measured.",
        "shift_consistency_pad": "As `shift_consistency_circular`, with zero-padded shifts.",
        "package_version": "DownScaleXR version that wrote the row.",
        "git_commit": "Git commit of the code that wrote the row (`unknown` outside a git checkout).",
        "torch_version": "PyTorch version.",
        "threads": "Torch threads of the training process.",
        "cpu": "CPU model name.",
        "host_id": "Short hash of the host name (identifies a machine without naming it).",
        "device": "Where the model was trained and validated: `cpu`, `cuda` or `cuda:N` (`train.device`). "
        "Test scores and latency are always computed on the CPU.",
        "device_name": "The training device's model name (the GPU's, or the CPU's).",
        "started_at": "When the cell started (ISO 8601, UTC).",
        "finished_at": "When the cell finished (ISO 8601, UTC).",
    },
    "epochs": {
        "run_id": "The cell (see `runs.run_id`).",
        "epoch": "Validation period, from 0: an epoch, or `eval_every` optimiser steps under a step budget.",
        "step": "Optimiser steps taken when this validation ran.",
        "train_loss": "Mean training loss over the period's examples.",
        "train_accuracy": "Training accuracy over the period (while the weights changed).",
        "val_loss": "Validation loss after the period.",
        "val_accuracy": "Validation accuracy after the period.",
        "val_auroc": "Validation AUROC after the period (macro one-vs-rest for multi-class).",
        "seconds": "Wall-clock seconds of the period, validation included.",
    },
    "predictions": {
        "run_id": "The cell (see `runs.run_id`).",
        "example_id": "Index of the example in the study's fixed test set (equal across cells).",
        "label": "True class of the example (binary: 1 = positive, the abnormal class).",
        "class_index": "Class whose probability `score` is (binary: always 1, the positive class).",
        "score": "Model probability of class `class_index` for the example.",
    },
    "latency": {
        "run_id": "The cell (see `runs.run_id`).",
        "batch_size": "Images per timed forward pass.",
        "threads": "Torch threads during the measurement.",
        "memory_format": "`contiguous` (NCHW) or `channels_last` (NHWC) model and input.",
        "repeat": "Index of the timed pass, from 0 (warm-up passes are not stored).",
        "seconds": "Time of one forward pass of the batch (wall clock, or the thread's CPU time when the "
        "study's `latency.clock` is `thread_cpu`).",
        "reference_seconds": "Time of a fixed reference workload run just before this pass (how fast the "
        "machine was at that moment, for speed adjustment); NaN when not timed.",
    },
    "kernels": {
        "run_id": "The cell (see `runs.run_id`).",
        "layer": "Module name of the first convolution, e.g. `conv1`.",
        "out_channel": "Output channel of the weight.",
        "in_channel": "Input channel of the weight.",
        "row": "Row of the weight in the kernel.",
        "col": "Column of the weight in the kernel.",
        "value": "The trained weight.",
    },
}
# the threshold metrics at both operating points (see OPERATING_POINT_COLUMNS)
COLUMN_DESCRIPTIONS["runs"] |= {
    f"{metric}_{point}": f"`{metric}` at the "
    + ("fixed threshold 0.5." if point == "fixed" else "validation-chosen threshold `threshold_chosen`.")
    for point in OPERATING_POINTS
    for metric in THRESHOLD_METRICS
}
# ---------------------------------------------------------------- descriptions of the compression columns
# For docs/results.md: merged into COLUMN_DESCRIPTIONS at the end of this module, as
# ``for table, columns in COMPRESSION_DESCRIPTIONS.items(): COLUMN_DESCRIPTIONS[table] |= columns``
# (``status`` and ``error`` replace the descriptions written before the ``unsupported`` status).
COMPRESSION_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "runs": {
        "compression": "Compression level applied to the cell's trained model (`none`: the model as "
        "trained; the levels are listed in docs/compression.md). Every level is a run of its own.",
        "parent_run_id": "`run_id` of the uncompressed run the level was applied to (same seed, data and "
        "weights before compression); a `none` run is its own parent.",
        "sparsity": "Fraction of zero weights in the level's pruning scope (all weights, or convolutions "
        "only for conv-scoped levels); NaN for runs without compression facts.",
        "sparsity_conv": "Fraction of zero weights over the convolution layers.",
        "sparsity_head": "Fraction of zero weights over the linear (head) layers.",
        "nonzero_params": "Parameters that are not zero after compression; -1 when not measured.",
        "state_dict_bytes": "Bytes of the serialized state dict (`torch.save`), packed int8 weights "
        "included: what the model costs to store; -1 when not measured.",
        "state_dict_gzip_bytes": "Bytes of the serialized state dict after gzip (where unstructured zeros "
        "show); -1 when not measured.",
        "quant_path": "Quantization API that ran (e.g. the eager `torch.ao.quantization` path); empty "
        "for levels that do not quantize.",
        "quant_engine": "Quantized engine (`torch.backends.quantized.engine`, e.g. `x86`); empty for "
        "levels that do not quantize.",
        "finetune_steps": "Optimiser steps of fine-tuning on the cell's training subset after pruning "
        "(`_ft` levels); 0 for levels without, -1 when not recorded.",
        "compression_seconds": "Wall-clock seconds the level took (fine-tuning and calibration included).",
        "compression_detail": "JSON with per-layer details: sparsity per layer, channels before and after "
        "channel pruning, quantized and fp32 layers.",
        "status": "`ok`, `diverged` (non-finite training loss), `failed` (an exception; see `error`) or "
        "`unsupported` (a compression level that cannot apply to the model's operators; see `error`).",
        "error": "Why the run did not finish `ok` (message or traceback tail; for `unsupported`, which "
        "operator lacks a kernel or cannot be pruned); empty otherwise.",
    },
}
for _table, _described in COMPRESSION_DESCRIPTIONS.items():
    COLUMN_DESCRIPTIONS[_table] |= _described
COLUMN_DESCRIPTIONS["runs"]["augment"] = (
    "Training augmentation policy (`none`, `flip`, `rotate`, `contrast`, `flip_rotate`, "
    "`flip_rotate_contrast`), applied to training batches only, drawn from the cell's seed."
)
COLUMN_DESCRIPTIONS["predictions"]["source"] = (
    "Where a real data set's test example came from (`test_batch[i]` for CIFAR-10, an npz row, an "
    "image path), to trace an error to its image; missing for synthetic data."
)
COLUMN_DESCRIPTIONS["saliency"] = {
    "run_id": "The cell (see `runs.run_id`).",
    "example_id": "Row of the test split (as in `predictions`); the same images in every cell.",
    "label": "True class of the image (binary: 1 = positive).",
    "target": "Class the map explains: the label, or the prediction (the study's `saliency.target`).",
    "predicted": "The model's class for the image (argmax; binary: probability >= 0.5).",
    "target_probability": "Probability of `target` on the intact image.",
    "layer": "Module whose output Grad-CAM explains (`down2` in the LeNet, `stage3` in a ResNet).",
    "localisation": "Share of the map's mass inside the ground-truth mask of the planted signal, in "
    "[0, 1]; NaN without masks (real data), for an empty mask or a map without mass.",
    "mask_fraction": "Share of the image inside the mask: what a uniform map scores (chance level).",
    "deletion_area": "Area under the explained class's probability as the most salient pixels are "
    "removed first, in [0, 1]; lower = more faithful.",
}
COLUMN_DESCRIPTIONS["saliency_maps"] = {
    "run_id": "The cell (see `runs.run_id`).",
    "example_id": "Row of the test split (see `saliency.example_id`).",
    "row": "Grid cell row, from 0 at the top.",
    "col": "Grid cell column, from 0 at the left.",
    "cam": "Mean of the map (divided by its maximum, so in [0, 1]) over the grid cell.",
    "mask": "Share of the grid cell inside the ground-truth mask; NaN without masks.",
}
