"""The study's design as the statistics see it: which runs count, the factor levels and the arms.

Every statistic analyses successful runs only (:func:`ok_runs`). Studies with inductive-bias factors
(``permute``, ``location_shift``, ``init``) and an MLP baseline are read through :func:`design_frame`,
which normalises the factor columns and names each run's *arm* (the MLP, or the CNN variant); the
standard report sections see only the CNN runs at the base level of every factor (:func:`base_runs`).
``compression`` is a factor too: its base level ``none`` is the model as trained, so compressed runs
(rows derived from a trained model, with its ``run_id`` as ``parent_run_id``) never enter a standard
section, the inductive-bias hypotheses or calibration; the "Compression" section reads them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from downscalexr.schema import THRESHOLD_METRICS

MLP_MODEL = "mlp"
# the factors of the inductive-bias controls (augmentation and compression are not among them)
INDUCTIVE_FACTORS = ("permute", "location_shift", "init")
NO_COMPRESSION = "none"
BASE_LEVELS: dict[str, object] = {
    "permute": False,
    "location_shift": 0.0,
    "init": "random",
    "compression": NO_COMPRESSION,
    "augment": "none",
}
POINT_NAMES = {"fixed": "the fixed threshold 0.5", "chosen": "the validation-chosen threshold"}
CONSISTENCY_MODES = {"circular": "shift_consistency_circular", "pad": "shift_consistency_pad"}


def ok_runs(runs: pd.DataFrame, metrics: Sequence[str] = ()) -> pd.DataFrame:
    """Rows of ``runs`` with ``status == "ok"``; raise if a requested metric column is missing.

    Failed and diverged runs are left out of every statistic (the report counts them separately).

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table (a table without ``status`` counts every row as ok).
    metrics : sequence of str
        Columns the caller will analyse; each must be a numeric column of ``runs``.

    Returns
    -------
    DataFrame
        The ok rows (a view-like selection; callers copy before adding columns).

    Raises
    ------
    ValueError
        If a metric is not a numeric column of ``runs`` (the message lists the valid ones) or no run is ok.

    Examples
    --------
    >>> runs = pd.DataFrame({"status": ["ok", "failed"], "accuracy": [0.9, 0.1]})
    >>> ok_runs(runs, ["accuracy"])["accuracy"].tolist()
    [0.9]
    """
    numeric = [c for c in runs.columns if pd.api.types.is_numeric_dtype(runs[c])]
    unknown = [m for m in metrics if m not in numeric]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from numeric columns {numeric}")
    out = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    if out.empty:
        raise ValueError("no runs with status 'ok': nothing to analyse")
    return out


def design_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with normalised factor columns and an ``arm`` column naming the model (and variant).

    ``permute`` missing -> False, ``location_shift`` NaN -> 0.0 (no shift), ``init`` missing -> random,
    ``augment`` missing -> none, ``compression`` missing -> none (a study stored before these
    factors), ``parent_run_id`` missing -> the run's own id. ``arm`` is ``"mlp"`` for MLP runs and
    the variant for CNN runs (``model:variant`` when the study has several CNN models); ``is_mlp``
    marks the MLP runs. Every status is kept.
    """
    out = runs.copy()
    out["permute"] = out["permute"].astype("boolean").fillna(False).astype(bool)
    out["location_shift"] = out["location_shift"].astype(float).fillna(0.0)
    out["init"] = out["init"].astype("string").fillna("random").astype(str)
    level = out["compression"] if "compression" in out else pd.Series(NO_COMPRESSION, index=out.index)
    out["compression"] = level.astype("string").fillna(NO_COMPRESSION).astype(str)
    if "run_id" in out:
        parent = out["parent_run_id"] if "parent_run_id" in out else pd.Series(pd.NA, index=out.index)
        out["parent_run_id"] = parent.astype("string").fillna(out["run_id"].astype("string")).astype(str)
    augment = out["augment"] if "augment" in out else pd.Series("none", index=out.index)
    out["augment"] = augment.astype("string").fillna("none").astype(str)
    model = out["model"].astype(str)
    mlp = model == MLP_MODEL
    several = model[~mlp].nunique() > 1
    cnn_arm = (model + ":" + out["variant"].astype(str)) if several else out["variant"].astype(str)
    out["arm"] = np.where(mlp, MLP_MODEL, cnn_arm)
    out["is_mlp"] = mlp.to_numpy()
    return out


def base_levels(runs: pd.DataFrame) -> dict[str, object]:
    """Per factor, the level the standard report sections use: the default if present, else the lowest."""
    d = design_frame(runs)
    d = d[d["status"] == "ok"] if "status" in d else d
    out = {}
    for factor, default in BASE_LEVELS.items():
        levels = sorted(set(d[factor]))
        out[factor] = default if default in levels or not levels else levels[0]
    return out


def at_base_levels(runs: pd.DataFrame) -> pd.DataFrame:
    """Design rows (every model, with ``arm``) at the base level of permute, shift, init and augment."""
    d = design_frame(runs)
    keep = np.ones(len(d), dtype=bool)
    for factor, level in base_levels(runs).items():
        keep &= (d[factor] == level).to_numpy()
    return d[keep]


def primary_model(runs: pd.DataFrame) -> str | None:
    """The CNN model the standard report sections analyse when a study trains several.

    The model with the most runs (any status, so a failed run never changes the choice); ties go to
    the first name in sorted order (``lenet`` before ``lenet_gap`` and ``resnet8``). Pooling two
    architectures per variant would average effects that differ by model (the dilution question),
    so the standard sections take one model and the multi-model sections (inductive bias, dilution)
    compare them. ``None`` without CNN runs.

    Examples
    --------
    >>> runs = pd.DataFrame({"model": ["resnet8", "lenet", "mlp", "mlp"], "status": ["ok"] * 4})
    >>> primary_model(runs)
    'lenet'
    """
    model = runs["model"].astype(str)
    cnn = model[model != MLP_MODEL]
    if cnn.empty:
        return None
    counts = cnn.value_counts()
    return min(counts.index[counts == counts.max()])


def base_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs of the primary CNN model at the base level of every factor (what the standard sections analyse).

    A study with one CNN model whose factors do not vary (the default study) gets every row back
    unchanged; with several CNN models only :func:`primary_model`'s runs are kept.
    """
    d = design_frame(runs)
    levels = base_levels(runs)
    keep = ~d["is_mlp"] & (d["model"].astype(str) == primary_model(runs))
    for factor, level in levels.items():
        keep &= d[factor] == level
    return runs[keep.to_numpy()]


def has_inductive_design(runs: pd.DataFrame, kernels: pd.DataFrame | None = None) -> bool:
    """Whether the study has anything the "Inductive bias" section can analyse.

    True when it has MLP runs, two levels of permute / location shift / init, a measured shift
    consistency, or first-layer kernels.
    """
    d = design_frame(runs[runs["status"] == "ok"])
    d = d[d["compression"] == NO_COMPRESSION]
    varied = any(d[f].nunique() > 1 for f in INDUCTIVE_FACTORS)
    measured = any(d[c].notna().any() for c in CONSISTENCY_MODES.values() if c in d)
    return bool(d["is_mlp"].any() or varied or measured or (kernels is not None and not kernels.empty))


def reported_point(runs: pd.DataFrame) -> str:
    """The operating point of the unsuffixed threshold metrics: ``"chosen"`` or ``"fixed"`` (0.5).

    Runs written before operating points existed (no ``operating_point`` value) are at 0.5.
    """
    points = runs["operating_point"].dropna().astype(str) if "operating_point" in runs else pd.Series([])
    return "chosen" if (points == "chosen").any() else "fixed"


def at_operating_point(runs: pd.DataFrame, point: str) -> pd.DataFrame | None:
    """The runs with every threshold metric (accuracy, FPR, FNR, ...) taken at ``point``.

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table.
    point : {"fixed", "chosen"}
        ``fixed``: the threshold 0.5; ``chosen``: the threshold chosen on the validation split.

    Returns
    -------
    DataFrame or None
        A copy whose unsuffixed threshold columns hold the ``<metric>_<point>`` values; the runs
        unchanged when they are already at ``point``; ``None`` when the study did not store that point
        (runs written before operating points only have 0.5; multi-class runs decide by argmax).

    Examples
    --------
    >>> runs = pd.DataFrame({"operating_point": ["chosen"], "fpr": [0.1], "fpr_fixed": [0.4]})
    >>> at_operating_point(runs, "fixed")["fpr"].tolist()
    [0.4]
    """
    if point not in POINT_NAMES:
        raise ValueError(f"unknown operating point {point!r}; choose from {', '.join(POINT_NAMES)}")
    if reported_point(runs) == point:
        return runs
    stored = [m for m in THRESHOLD_METRICS if f"{m}_{point}" in runs and runs[f"{m}_{point}"].notna().any()]
    if not stored:
        return None
    return runs.assign(**{m: runs[f"{m}_{point}"] for m in stored}, operating_point=point)
