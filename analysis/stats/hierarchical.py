"""Per-example statistics: the runs' decisions on the shared test set and the hierarchical bootstrap.

Every run is scored on the same fixed test set, so a threshold metric has two sources of error: which
seeds were drawn, and which test examples. :func:`hierarchical_bootstrap` resamples both.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.intervals import percentile_interval, resample_indices
from downscalexr.seeding import numpy_rng

# metric -> (numerator, denominator) as functions of predicted (R x N, 0/1) and label (N,) arrays
_RATIO_METRICS = {
    "accuracy": (lambda p, y: p == y, lambda p, y: np.ones_like(p)),
    "recall": (lambda p, y: p * y, lambda p, y: np.broadcast_to(y, p.shape)),
    "specificity": (lambda p, y: (1 - p) * (1 - y), lambda p, y: np.broadcast_to(1 - y, p.shape)),
    "fpr": (lambda p, y: p * (1 - y), lambda p, y: np.broadcast_to(1 - y, p.shape)),
    "fnr": (lambda p, y: (1 - p) * y, lambda p, y: np.broadcast_to(y, p.shape)),
    "precision": (lambda p, y: p * y, lambda p, y: p),
    "predicted_positive_rate": (lambda p, y: p, lambda p, y: np.ones_like(p)),
}
HIERARCHICAL_COLUMNS = [
    "variant",
    "data_fraction",
    "metric",
    "estimate",
    "low",
    "high",
    "n_seeds",
    "n_examples",
]


def is_multiclass(predictions: pd.DataFrame) -> bool:
    """True when ``predictions`` holds one row per example and class (more than one ``class_index``)."""
    return "class_index" in predictions and predictions["class_index"].nunique() > 1


def prediction_matrix(
    predictions: pd.DataFrame, runs: pd.DataFrame, threshold: float | None = None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Decisions of every ok run on the shared test set.

    Binary tasks (one row per example, ``class_index`` 1): the 0/1 decision ``score >= threshold``;
    ``threshold`` None uses each run's ``threshold`` column (0.5 where missing). Multi-class tasks (one
    row per example and class): the class of highest probability, so ``predicted == labels`` is still
    "correct" (only accuracy-type metrics make sense then; see :func:`is_multiclass`).

    Returns
    -------
    tuple
        ``(meta, labels, predicted)``: the ok runs that have predictions (one row each, in matrix order),
        the labels ``(n_examples,)`` and the decisions ``(n_runs, n_examples)``.

    Raises
    ------
    ValueError
        If no ok run has predictions, or runs were scored on different test examples.
    """
    ok = ok_runs(runs)
    predictions = predictions[predictions["run_id"].isin(ok["run_id"])]
    multiclass = is_multiclass(predictions)
    binary = predictions if multiclass else predictions[predictions["class_index"] == 1]
    if binary.empty:
        raise ValueError("no predictions of ok runs: cannot bootstrap test examples")
    if multiclass:  # keep the row of each (run, example) whose class has the highest probability
        best = binary.sort_values("score", ascending=False, kind="stable").drop_duplicates(
            ["run_id", "example_id"]
        )
        binary = best.assign(score=best["class_index"].astype(float))
        threshold = -np.inf  # the "decision" is the class itself
    scores = binary.pivot_table(index="run_id", columns="example_id", values="score", aggfunc="first")
    if scores.isna().any().any():
        raise ValueError(
            "runs were scored on different test examples; the test set must be shared by all runs"
        )
    labels = binary.groupby("example_id")["label"].first().reindex(scores.columns).to_numpy(dtype=float)
    meta = ok.set_index("run_id").loc[scores.index].reset_index()
    if threshold is None:
        threshold = meta["threshold"].fillna(0.5).to_numpy(dtype=float) if "threshold" in meta else 0.5
    if multiclass:
        return meta, labels, scores.to_numpy(dtype=float)
    predicted = (scores.to_numpy(dtype=float) >= np.reshape(threshold, (-1, 1))).astype(float)
    return meta, labels, predicted


def _group_replicates(
    predicted: np.ndarray, labels: np.ndarray, parts: list[str], seed_counts: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray]:
    """Point estimate and bootstrap replicates of one group's metric (mean of ``parts``' ratios).

    ``predicted`` is the group's runs x examples; ``seed_counts`` (B, R) how often each run's seed was
    drawn in each replicate; ``weights`` (B, N) the example multiplicities of each replicate.
    """
    point, boot = 0.0, np.zeros(len(weights))
    for part in parts:
        num_f, den_f = _RATIO_METRICS[part]
        num, den = num_f(predicted, labels).astype(float), den_f(predicted, labels).astype(float)  # (R, N)
        with np.errstate(invalid="ignore", divide="ignore"):
            point += np.nanmean(num.sum(1) / den.sum(1)) / len(parts)
            per_run = (num @ weights.T) / (den @ weights.T)  # (R, B)
        k = seed_counts.T  # (R, B) times each run's seed was drawn
        k = np.where(np.isnan(per_run), 0, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot += np.nansum(k * np.nan_to_num(per_run), 0) / k.sum(0) / len(parts)
    return point, boot


def hierarchical_bootstrap(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    metric: str = "accuracy",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Two-level percentile bootstrap of a threshold metric: seeds, then test examples.

    Each replicate draws seeds with replacement and one resample of the test examples. The example
    resample is shared by every run of the replicate, because every run is scored on the same test set
    (its sampling error is common to all seeds and does not average out over them). The estimate is the
    mean over seeds of each run's metric; a replicate's metric of a run is the ratio of weighted counts.

    Returns
    -------
    DataFrame
        Columns ``variant, data_fraction, metric, estimate, low, high, n_seeds, n_examples``.

    Raises
    ------
    ValueError
        If ``metric`` cannot be computed from decisions (the message lists the valid ones).
    """
    valid = [*_RATIO_METRICS, "balanced_accuracy"]
    if metric not in valid:
        raise ValueError(f"metric {metric!r} cannot be bootstrapped from predictions; choose from {valid}")
    if metric != "accuracy" and is_multiclass(predictions):
        raise ValueError(f"metric {metric!r} needs a binary task; a multi-class study bootstraps accuracy")
    meta, labels, predicted = prediction_matrix(predictions, runs)
    parts = ["recall", "specificity"] if metric == "balanced_accuracy" else [metric]
    rng = numpy_rng(seed, "hierarchical_bootstrap", metric)
    seeds_all = np.sort(meta["seed"].unique())
    seed_idx = resample_indices(seeds_all.size, n_boot, rng)
    seed_counts = (seed_idx[:, :, None] == np.arange(seeds_all.size)).sum(1)  # (B, S)
    example_idx = resample_indices(labels.size, n_boot, rng)
    weights = np.zeros((n_boot, labels.size))
    np.add.at(weights, (np.arange(n_boot)[:, None], example_idx), 1.0)  # (B, N) multiplicities
    rows = []
    for (variant, fraction), group in meta.groupby(["variant", "data_fraction"], sort=True):
        pos = group.index.to_numpy()
        s_pos = np.searchsorted(seeds_all, group["seed"].to_numpy())
        point, boot = _group_replicates(predicted[pos], labels, parts, seed_counts[:, s_pos], weights)
        low, high = percentile_interval(boot, alpha)
        rows.append(
            {
                "variant": variant,
                "data_fraction": float(fraction),
                "metric": metric,
                "estimate": point,
                "low": float(low),
                "high": float(high),
                "n_seeds": int(group["seed"].nunique()),
                "n_examples": int(labels.size),
            }
        )
    return pd.DataFrame(rows, columns=HIERARCHICAL_COLUMNS)
