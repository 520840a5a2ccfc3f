"""Intervals over seeds: t and BCa summaries, paired contrasts, and the hierarchical bootstrap.

Every bootstrap here is vectorised: a ``(n_boot, n_seeds)`` matrix of resampled seed positions is drawn
once and applied to every estimate at the same time, so contrasts of all variants are resampled
*jointly* (a replicate picks the same seeds for every variant, keeping the pairing of the design).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from downscalexr.seeding import numpy_rng

MIN_BCA_SEEDS = 10  # below this many seeds a bootstrap of seeds has too few distinct resamples


def ok_runs(runs: pd.DataFrame, metrics: Sequence[str] = ()) -> pd.DataFrame:
    """Rows of ``runs`` with ``status == "ok"``; raise if a requested metric column is missing.

    Raises
    ------
    ValueError
        If a metric is not a numeric column of ``runs`` (the message lists the valid ones) or no run is ok.
    """
    numeric = [c for c in runs.columns if pd.api.types.is_numeric_dtype(runs[c])]
    unknown = [m for m in metrics if m not in numeric]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from numeric columns {numeric}")
    out = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    if out.empty:
        raise ValueError("no runs with status 'ok': nothing to analyse")
    return out


def holm(p_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries are left NaN and not counted in the family.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def t_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and Student-t interval of a 1-D sample; bounds are NaN with fewer than two values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    mean = float(x.mean()) if x.size else np.nan
    if x.size < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(1 - alpha / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return mean, float(mean - half), float(mean + half)


def resample_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(n_boot, n)`` matrix of positions drawn with replacement."""
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a 95 % interval, got {n_boot}")
    return rng.integers(0, n, size=(n_boot, n))


def _row_quantiles(sorted_rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Linear-interpolated quantile ``q[k]`` of each sorted row ``k`` (rows may end in NaN)."""
    n_valid = (~np.isnan(sorted_rows)).sum(axis=1)
    pos = q * np.maximum(n_valid - 1, 0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(n_valid - 1, 0))
    rows = np.arange(sorted_rows.shape[0])
    frac = pos - lo
    return sorted_rows[rows, lo] * (1 - frac) + sorted_rows[rows, hi] * frac


def bca_means(
    values: np.ndarray, idx: np.ndarray, alpha: float = 0.05, *, expand: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BCa intervals of the mean of each row of ``values`` (estimates x seeds) under resamples ``idx``.

    Parameters
    ----------
    values : ndarray
        Estimates x seeds; missing values (NaN) are left out of every mean.
    idx : ndarray
        ``(n_boot, n_seeds)`` resampled seed positions, shared by all rows (joint resampling).
    alpha : float
        1 - confidence level.
    expand : bool
        Use the expanded quantile ``sqrt(n/(n-1)) t_{n-1}`` instead of the normal one. Plain BCa of a mean
        covers about 90 % at 10 seeds for a nominal 95 %; the expansion brings it to nominal (see
        ``python -m analysis.validate``).

    Returns
    -------
    tuple of ndarray
        ``(mean, low, high)``, one entry per row; bounds are NaN for rows with fewer than two values.
    """
    x = np.atleast_2d(np.asarray(values, dtype=float))
    valid = ~np.isnan(x)
    n = valid.sum(axis=1)
    xz = np.where(valid, x, 0.0)
    theta = xz.sum(1) / np.maximum(n, 1)
    # (K, B): resampled means; a replicate that drew only missing seeds is NaN
    counts = valid[:, idx].sum(axis=2)
    sums = xz[:, idx].sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = sums / counts
    n_b = (~np.isnan(boot)).sum(1)
    below = (boot < theta[:, None]).sum(1) + 0.5 * (boot == theta[:, None]).sum(1)
    prop = np.clip(below / np.maximum(n_b, 1), 1.0 / (n_b + 1), n_b / (n_b + 1.0))
    z0 = special.ndtri(prop)
    # acceleration from the jackknife of the mean
    with np.errstate(invalid="ignore", divide="ignore"):
        jack = (xz.sum(1, keepdims=True) - xz) / (n[:, None] - 1)
    u = np.where(valid, jack.mean(1, where=valid, keepdims=True) - jack, 0.0)
    den = 6.0 * (u**2).sum(1) ** 1.5
    accel = np.divide((u**3).sum(1), den, out=np.zeros_like(theta), where=den > 0)
    if expand:
        # small-sample expansion: the normal quantile is replaced by sqrt(n / (n - 1)) * t_{n-1}, which
        # undoes the plug-in SD's shrinkage and the normal-vs-t tail difference (Hesterberg 2015)
        with np.errstate(invalid="ignore", divide="ignore"):
            z_hi = np.sqrt(n / (n - 1.0)) * stats.t.ppf(1 - alpha / 2, np.maximum(n - 1, 1))
    else:
        z_hi = np.full(theta.shape, special.ndtri(1 - alpha / 2))
    z = np.stack([-z_hi, z_hi], axis=1)
    adj = special.ndtr(z0[:, None] + (z0[:, None] + z) / (1 - accel[:, None] * (z0[:, None] + z)))
    ordered = np.sort(boot, axis=1)  # NaN sort last
    low = _row_quantiles(ordered, adj[:, 0])
    high = _row_quantiles(ordered, adj[:, 1])
    spread = boot.max(1, initial=-np.inf, where=~np.isnan(boot)) - boot.min(
        1, initial=np.inf, where=~np.isnan(boot)
    )
    flat = spread == 0  # every resample equal: the interval is the point
    low, high = np.where(flat, theta, low), np.where(flat, theta, high)
    bad = n < 2
    return theta, np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def seed_summary(
    runs: pd.DataFrame,
    metric: str,
    *,
    by: Sequence[str] = ("variant", "data_fraction"),
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean of ``metric`` over seeds per group with a 95 % interval.

    The interval is a Student-t interval below 10 seeds and a BCa bootstrap over seeds from 10 on.
    Bounds are NaN for a group with a single seed.

    Returns
    -------
    DataFrame
        Columns ``*by, metric, n_seeds, mean, low, high, method``; one row per group.

    Examples
    --------
    >>> runs = pd.DataFrame({"variant": "a", "data_fraction": 1.0, "seed": [0, 1, 2],
    ...                      "accuracy": [0.7, 0.8, 0.9]})
    >>> seed_summary(runs, "accuracy").round(3)[["n_seeds", "mean", "method"]].to_dict("records")
    [{'n_seeds': 3, 'mean': 0.8, 'method': 't'}]
    """
    ok = ok_runs(runs, [metric])
    rows = []
    for key, group in ok.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        x = group[metric].to_numpy(dtype=float)
        x = x[~np.isnan(x)]
        if x.size >= MIN_BCA_SEEDS:
            rng = numpy_rng(seed, "seed_summary", metric, *key)
            mean, low, high = (
                float(v[0]) for v in bca_means(x[None, :], resample_indices(x.size, n_boot, rng), alpha)
            )
            method = "bca"
        else:
            mean, low, high = t_interval(x, alpha)
            method = "t"
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "metric": metric,
                "n_seeds": int(x.size),
                "mean": mean,
                "low": low,
                "high": high,
                "method": method,
            }
        )
    return pd.DataFrame(rows, columns=[*by, "metric", "n_seeds", "mean", "low", "high", "method"])


def _paired_differences(
    ok: pd.DataFrame, metric: str, reference: str
) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Per-seed differences to the reference: (row keys, differences (K x seeds), seed values)."""
    wide = ok.pivot_table(index="seed", columns=["variant", "data_fraction"], values=metric, aggfunc="mean")
    variants = [v for v in sorted(wide.columns.get_level_values(0).unique()) if v != reference]
    fractions = sorted(wide.columns.get_level_values(1).unique())
    keys, diffs = [], []
    for v in variants:
        per_fraction = []
        for f in fractions:
            if (v, f) not in wide.columns or (reference, f) not in wide.columns:
                continue
            d = (wide[(v, f)] - wide[(reference, f)]).to_numpy(dtype=float)
            keys.append({"metric": metric, "variant": v, "reference": reference, "data_fraction": float(f)})
            diffs.append(d)
            per_fraction.append(d)
        if len(per_fraction) > 1:  # pooled over fractions; a seed counts only with every fraction
            keys.append({"metric": metric, "variant": v, "reference": reference, "data_fraction": np.nan})
            diffs.append(np.mean(per_fraction, axis=0))
    return keys, np.array(diffs).reshape(len(keys), len(wide.index)), wide.index.to_numpy()


def paired_contrasts(
    runs: pd.DataFrame,
    metrics: str | Sequence[str],
    *,
    reference: str = "avgpool",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired differences ``variant - reference`` per data fraction and pooled, with intervals and tests.

    Seeds pair the runs: the difference is taken within a seed, and the bootstrap (from 10 seeds on)
    resamples seeds jointly for every metric, variant and fraction. Below 10 seeds the interval is a
    paired t-interval. ``p_value`` is the two-sided paired t-test of the per-seed differences (exact under
    normality, so Holm controls the family-wise error even at few seeds); ``p_holm`` adjusts it across
    every returned row. ``dz`` is the mean difference over its seed SD, and ``prob_superior`` the
    fraction of seeds on which the variant's metric is larger (ties count one half).

    Returns
    -------
    DataFrame
        Columns ``metric, variant, reference, data_fraction, n_seeds, diff, low, high, p_value, p_holm,
        dz, prob_superior, method``; ``data_fraction`` is NaN for the row pooled over fractions.

    Raises
    ------
    ValueError
        If ``reference`` is not a variant of ``runs`` or a metric is not a column.
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    ok = ok_runs(runs, metrics)
    found = sorted(ok["variant"].unique())
    if reference not in found:
        raise ValueError(f"reference {reference!r} is not a variant of the runs; choose from {found}")
    seeds_all = np.sort(ok["seed"].unique())
    idx = resample_indices(seeds_all.size, n_boot, numpy_rng(seed, "paired_contrasts"))
    columns = [
        "metric",
        "variant",
        "reference",
        "data_fraction",
        "n_seeds",
        "diff",
        "low",
        "high",
        "p_value",
        "p_holm",
        "dz",
        "prob_superior",
        "method",
    ]
    rows = []
    for metric in metrics:
        keys, diffs, seed_values = _paired_differences(ok, metric, reference)
        if not keys:
            continue
        aligned = np.full((len(keys), seeds_all.size), np.nan)
        aligned[:, np.searchsorted(seeds_all, seed_values)] = diffs
        _, bca_low, bca_high = bca_means(aligned, idx, alpha)
        for k, key in enumerate(keys):
            d = aligned[k][~np.isnan(aligned[k])]
            mean, low, high = t_interval(d, alpha)
            method = "t"
            if d.size >= MIN_BCA_SEEDS:
                low, high, method = float(bca_low[k]), float(bca_high[k]), "bca"
            sd = d.std(ddof=1) if d.size > 1 else np.nan
            if d.size > 1 and sd > 0:
                p = float(2 * stats.t.sf(abs(mean) / (sd / np.sqrt(d.size)), d.size - 1))
            else:
                p = np.nan if d.size < 2 else float(mean == 0)  # constant differences: 0 or certain
            rows.append(
                {
                    **key,
                    "n_seeds": int(d.size),
                    "diff": mean,
                    "low": low,
                    "high": high,
                    "p_value": p,
                    "dz": float(mean / sd) if d.size > 1 and sd > 0 else np.nan,
                    "prob_superior": float(((d > 0) + 0.5 * (d == 0)).mean()) if d.size else np.nan,
                    "method": method,
                }
            )
    out = pd.DataFrame(rows, columns=columns)
    out["p_holm"] = holm(out["p_value"].to_numpy(dtype=float))
    return out


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


def is_multiclass(predictions: pd.DataFrame) -> bool:
    """True when ``predictions`` holds one row per example and class (more than one ``class_index``)."""
    return "class_index" in predictions and predictions["class_index"].nunique() > 1


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
        p, s_pos = predicted[pos], np.searchsorted(seeds_all, group["seed"].to_numpy())
        point, boot = 0.0, np.zeros(n_boot)
        for part in parts:
            num_f, den_f = _RATIO_METRICS[part]
            num, den = num_f(p, labels).astype(float), den_f(p, labels).astype(float)  # (R, N)
            with np.errstate(invalid="ignore", divide="ignore"):
                point += np.nanmean(num.sum(1) / den.sum(1)) / len(parts)
                per_run = (num @ weights.T) / (den @ weights.T)  # (R, B)
            k = seed_counts[:, s_pos].T  # (R, B) times each run's seed was drawn
            k = np.where(np.isnan(per_run), 0, k)
            with np.errstate(invalid="ignore", divide="ignore"):
                boot += np.nansum(k * np.nan_to_num(per_run), 0) / k.sum(0) / len(parts)
        low, high = np.nanquantile(boot, [alpha / 2, 1 - alpha / 2])
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
    return pd.DataFrame(
        rows,
        columns=["variant", "data_fraction", "metric", "estimate", "low", "high", "n_seeds", "n_examples"],
    )
