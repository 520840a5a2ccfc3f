"""Per-example statistics: the runs' decisions on the shared test set and the two-level (seeds x test
examples) interval of a threshold metric.

Every run is scored on the same fixed test set, so a threshold metric has two sources of error: which
seeds were drawn, and which test examples. Seeds and examples are *crossed* (every run sees every
example), so the mean over seeds of a metric is the grand mean of a seeds x examples array and its
variance has three parts (Owen 2007, "The pigeonhole bootstrap"):

    Var = sigma_seed^2 / n + sigma_example^2 / N + sigma_interaction^2 / (n N),

estimated without bias from the two-way ANOVA mean squares of that array, ``(MS_seed + MS_example -
MS_residual) / (n N)``. :func:`hierarchical_interval` studentises with it: the interval is the estimate
+- ``t_df`` standard errors, ``df`` by Satterthwaite from :data:`SATTERTHWAITE_FROM` seeds on. When seeds
dominate, this is the t interval over seeds with ``n - 1`` degrees of freedom; when test examples
dominate, a normal interval. Below 5 seeds the estimated df is itself too noisy (the interval covered
92.7 % at 3 seeds when seeds dominate), so the seed term's ``n - 1`` degrees of freedom are used for
the whole variance: conservative (95.5-100 % at 3-4 seeds, up to 1.9 times wider when examples dominate).

Why not the two-level percentile bootstrap used before issue 15: resampling seeds and then examples
under-covers at few seeds (the plug-in seed variance shrinks by (n-1)/n and normal quantiles replace
t ones: 89 % at 3 seeds when seeds dominate) and counts the interaction twice, over-covering (98-100 %)
when examples dominate. ``python -m analysis.validate`` measures both.

Ratio metrics (recall, precision, ...) enter through their linearisation: run ``r``'s value on example
``x`` is ``theta_r + (num_rx - theta_r den_rx) / mean(den_r)``, whose mean over examples is exactly the
run's metric ``theta_r`` (the delta method applied per run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.design import ok_runs
from analysis.stats.intervals import DEGENERATE_TOL, MIN_SEEDS, NO_VARIATION, TOO_FEW

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
    "se",
    "df",
    "seed_share",
    "method",
]
CROSSED_METHOD = "crossed t"
SATTERTHWAITE_FROM = 5  # seeds from which the Satterthwaite df is used; below, the seed term's n - 1


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


def crossed_mean_interval(values: np.ndarray, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Interval of the grand mean of seeds x examples arrays from the crossed two-way ANOVA.

    Parameters
    ----------
    values : ndarray
        ``(n_seeds, n_examples)``, or a stack ``(..., n_seeds, n_examples)`` of such arrays (each one
        gets its own interval); a seed's row is its runs' (linearised) values on the shared examples.
    alpha : float
        1 - confidence level.

    Returns
    -------
    dict of ndarray
        ``estimate`` (grand mean), ``se``, ``df`` (Satterthwaite from :data:`SATTERTHWAITE_FROM` seeds,
        ``n - 1`` below), ``low``, ``high`` and ``seed_share``
        (share of the variance from the seed term). The variance is ``(MS_seed + MS_example -
        MS_residual) / (n N)`` with each component's estimate floored at 0 (a negative variance
        component is taken as 0, which makes the interval slightly conservative); bounds are NaN below
        :data:`~analysis.stats.intervals.MIN_SEEDS` seeds or when nothing varies.

    Examples
    --------
    >>> z = np.array([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0]])
    >>> {k: round(float(v), 4) for k, v in crossed_mean_interval(z).items()}["se"]
    0.1443
    """
    z = np.asarray(values, dtype=float)
    n, big_n = z.shape[-2:]
    grand = z.mean(axis=(-2, -1))
    rows, cols = z.mean(axis=-1), z.mean(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        ms_seed = big_n * ((rows - grand[..., None]) ** 2).sum(-1) / (n - 1)
        ms_example = n * ((cols - grand[..., None]) ** 2).sum(-1) / (big_n - 1)
        resid = z - rows[..., None] - cols[..., None, :] + grand[..., None, None]
        ms_resid = (resid**2).sum(axis=(-2, -1)) / ((n - 1) * (big_n - 1))
    # variance of the grand mean times n N, as c_seed MS_seed + c_example MS_example + c_resid MS_resid
    c_seed = (ms_seed > ms_resid).astype(float)
    c_example = (ms_example > ms_resid).astype(float)
    c_resid = 1.0 - c_seed - c_example
    total = c_seed * ms_seed + c_example * ms_example + c_resid * ms_resid
    var = total / (n * big_n)
    with np.errstate(invalid="ignore", divide="ignore"):
        df_den = (
            (c_seed * ms_seed) ** 2 / (n - 1)
            + (c_example * ms_example) ** 2 / (big_n - 1)
            + (c_resid * ms_resid) ** 2 / ((n - 1) * (big_n - 1))
        )
        df = total**2 / df_den if n >= SATTERTHWAITE_FROM else np.full(np.shape(total), n - 1.0)
        seed_share = c_seed * (ms_seed - ms_resid) / total
    se = np.sqrt(var)
    usable = (n >= MIN_SEEDS) & (se > DEGENERATE_TOL * np.maximum(1.0, np.abs(grand)))
    half = stats.t.ppf(1 - alpha / 2, np.where(usable, df, 1.0)) * se
    return {
        "estimate": grand,
        "se": np.where(usable, se, np.nan),
        "df": np.where(usable, df, np.nan),
        "low": np.where(usable, grand - half, np.nan),
        "high": np.where(usable, grand + half, np.nan),
        "seed_share": np.where(usable, seed_share, np.nan),
    }


def linearised_values(predicted: np.ndarray, labels: np.ndarray, metric: str) -> np.ndarray:
    """Each run's linearised metric on each example, ``(runs, examples)``: its row mean is the metric.

    For a ratio ``theta_r = sum_x num_rx / sum_x den_rx`` the value on example ``x`` is ``theta_r +
    (num_rx - theta_r den_rx) / mean_x(den_rx)``; balanced accuracy averages recall's and specificity's.
    A run whose metric is undefined (a zero denominator) has NaN values.
    """
    parts = ["recall", "specificity"] if metric == "balanced_accuracy" else [metric]
    out = np.zeros(predicted.shape)
    for part in parts:
        num_f, den_f = _RATIO_METRICS[part]
        num, den = num_f(predicted, labels).astype(float), den_f(predicted, labels).astype(float)
        mean_den = den.mean(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            theta = num.sum(1, keepdims=True) / den.sum(1, keepdims=True)
            out += (theta + (num - theta * den) / mean_den) / len(parts)
    return out


def hierarchical_interval(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    metric: str = "accuracy",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Mean over seeds of a threshold metric with an interval for both seeds and test examples.

    Per variant and fraction, the runs' linearised values (:func:`linearised_values`, averaged over the
    runs of a seed) form a seeds x examples array whose grand mean is the mean over seeds of the runs'
    metric; :func:`crossed_mean_interval` gives its studentised interval. The estimand is the metric
    expected over seeds *and* over test sets drawn like this one.

    Returns
    -------
    DataFrame
        Columns ``variant, data_fraction, metric, estimate, low, high, n_seeds, n_examples, se, df,
        seed_share, method``; ``method`` is ``"crossed t"``, ``"not enough seeds"`` (fewer than 3 seeds
        with a defined metric) or ``"no variation"`` (every run right on the same examples), the last
        two with NaN bounds.

    Raises
    ------
    ValueError
        If ``metric`` cannot be computed from decisions (the message lists the valid ones).
    """
    valid = [*_RATIO_METRICS, "balanced_accuracy"]
    if metric not in valid:
        raise ValueError(f"metric {metric!r} cannot be computed from predictions; choose from {valid}")
    if metric != "accuracy" and is_multiclass(predictions):
        raise ValueError(f"metric {metric!r} needs a binary task; a multi-class study has accuracy only")
    meta, labels, predicted = prediction_matrix(predictions, runs)
    values = linearised_values(predicted, labels, metric)
    rows = []
    for (variant, fraction), group in meta.groupby(["variant", "data_fraction"], sort=True):
        per_run = pd.DataFrame(values[group.index.to_numpy()]).assign(seed=group["seed"].to_numpy())
        per_seed = per_run.dropna().groupby("seed", sort=True).mean().to_numpy()  # (seeds, examples)
        n = per_seed.shape[0]
        out = crossed_mean_interval(per_seed, alpha) if n else {"estimate": np.nan}
        figures = {
            k: float(out.get(k, np.nan)) for k in ("estimate", "low", "high", "se", "df", "seed_share")
        }
        method = (
            TOO_FEW if n < MIN_SEEDS else (CROSSED_METHOD if np.isfinite(figures["se"]) else NO_VARIATION)
        )
        rows.append(
            {
                "variant": variant,
                "data_fraction": float(fraction),
                "metric": metric,
                **figures,
                "n_seeds": int(n),
                "n_examples": int(labels.size),
                "method": method,
            }
        )
    return pd.DataFrame(rows, columns=HIERARCHICAL_COLUMNS)
