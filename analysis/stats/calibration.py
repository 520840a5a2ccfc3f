"""Reliability diagrams: binned confidence against observed frequency, pooled over seeds with bands.

Binary tasks (every prediction row has ``class_index == 1``) bin P(positive) and plot the fraction of
positive labels per bin; multi-class tasks (one row per example x class) bin the top-label confidence
and plot the accuracy of the top label per bin. Bins are ``n_bins`` equal-width intervals of [0, 1]
(the last one closed). A perfectly calibrated model lies on the diagonal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.intervals import percentile_interval, resample_indices
from downscalexr.seeding import numpy_rng

CURVE_COLUMNS = ["bin", "bin_low", "bin_high", "n_runs", "count", "confidence", "frequency", "low", "high"]


def bin_index(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each value in [0, 1] among ``n_bins`` equal-width bins (1.0 falls in the last bin).

    Examples
    --------
    >>> bin_index(np.array([0.0, 0.09, 0.1, 0.55, 1.0]), 10).tolist()
    [0, 0, 1, 5, 9]
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    return np.clip(np.floor(np.asarray(x, dtype=float) * n_bins).astype(int), 0, n_bins - 1)


def is_binary(predictions: pd.DataFrame) -> bool:
    """Whether the predictions are binary (one row per example holding P(positive), class_index 1)."""
    return bool((predictions["class_index"] == 1).all())


def confidence_outcomes(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per run x example: ``confidence`` (the binned score) and ``outcome`` (0/1).

    Binary: confidence = P(positive), outcome = label. Multi-class: confidence = the largest class
    score, outcome = whether that class is the label.
    """
    if predictions.empty:
        return pd.DataFrame(columns=["run_id", "example_id", "confidence", "outcome"])
    if is_binary(predictions):
        out = predictions[["run_id", "example_id", "score", "label"]]
        return out.set_axis(["run_id", "example_id", "confidence", "outcome"], axis=1)
    top = predictions.sort_values(["run_id", "example_id", "score"], ascending=[True, True, False])
    top = top.drop_duplicates(["run_id", "example_id"])
    return pd.DataFrame(
        {
            "run_id": top["run_id"].to_numpy(),
            "example_id": top["example_id"].to_numpy(),
            "confidence": top["score"].to_numpy(dtype=float),
            "outcome": (top["class_index"] == top["label"]).to_numpy(dtype=int),
        }
    )


def run_matrix(predictions: pd.DataFrame) -> tuple[list, np.ndarray, np.ndarray]:
    """Confidence and outcome of every run on every test example: ``(run_ids, confidence, outcome)``.

    The arrays are runs x examples (examples in sorted id order); an example a run was not scored on is
    NaN in both.
    """
    co = confidence_outcomes(predictions)
    conf = co.pivot_table(index="run_id", columns="example_id", values="confidence", aggfunc="first")
    outcome = co.pivot_table(index="run_id", columns="example_id", values="outcome", aggfunc="first")
    outcome = outcome.reindex(index=conf.index, columns=conf.columns)
    return list(conf.index), conf.to_numpy(dtype=float), outcome.to_numpy(dtype=float)


def _bin_rows(
    bins: np.ndarray,
    conf: np.ndarray,
    outcome: np.ndarray,
    w_run: np.ndarray,
    w_example: np.ndarray,
    n_bins: int,
    alpha: float,
) -> list[dict]:
    """The non-empty bins of one group of runs: pooled confidence and frequency with a percentile band.

    ``bins``, ``conf`` and ``outcome`` are the group's runs x examples; ``w_run`` (B, R) and
    ``w_example`` (B, N) the multiplicities of runs and test examples in each bootstrap replicate.
    """
    edges = np.linspace(0, 1, n_bins + 1)
    rows = []
    for b in range(n_bins):
        member = (bins == b).astype(np.float32)  # (R, N)
        count = float(member.sum())
        if count == 0:
            continue
        hits = member * np.nan_to_num(outcome).astype(np.float32)
        low = high = np.nan
        if len(bins) > 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                boot = ((w_run @ hits) * w_example).sum(1) / ((w_run @ member) * w_example).sum(1)
            low, high = percentile_interval(boot, alpha)
        rows.append(
            {
                "bin": b,
                "bin_low": edges[b],
                "bin_high": edges[b + 1],
                "n_runs": len(bins),
                "count": int(count),
                "confidence": float((member * np.nan_to_num(conf)).sum() / count),
                "frequency": float(hits.sum() / count),
                "low": float(low),
                "high": float(high),
            }
        )
    return rows


def reliability_curve(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    by: Sequence[str] = ("variant",),
    n_bins: int = 10,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Reliability curve per group of runs, pooled over the group's runs, with a bootstrap band.

    The point of a bin is the pooled observed frequency (sum of outcomes / count over every run of the
    group) at the pooled mean confidence. The band is a descriptive two-level percentile bootstrap: each
    replicate resamples the group's runs (seeds) and, once for all runs, the test examples (the test set
    is shared, so its sampling error is common to every seed), then recomputes the pooled frequency.

    Parameters
    ----------
    predictions : DataFrame
        The ``predictions`` table.
    runs : DataFrame
        The ``runs`` table (ok runs are used); supplies the ``by`` columns.
    by : sequence of str
        Grouping columns of ``runs`` (e.g. ``("variant",)`` or ``("variant", "permute")``).
    n_bins, n_boot, alpha, seed
        Bins on [0, 1], bootstrap resamples, 1 - band level, seed of every draw.

    Returns
    -------
    DataFrame
        Columns ``*by, bin, bin_low, bin_high, n_runs, count, confidence, frequency, low, high``; empty
        bins are left out; bands are NaN for a group with one run.
    """
    ok = ok_runs(runs)
    missing = [c for c in by if c not in ok.columns]
    if missing:
        raise ValueError(
            f"grouping columns {missing} are not in the runs table; choose from {list(ok.columns)}"
        )
    preds = predictions[predictions["run_id"].isin(ok["run_id"])]
    if preds.empty:
        return pd.DataFrame(columns=[*by, *CURVE_COLUMNS])
    run_ids, conf, outcome = run_matrix(preds)
    valid = ~np.isnan(conf)
    bins = np.where(valid, bin_index(np.nan_to_num(conf), n_bins), -1)
    meta = ok.set_index("run_id").loc[run_ids, list(by)].reset_index()
    rng = numpy_rng(seed, "reliability")
    example_idx = resample_indices(conf.shape[1], n_boot, rng)
    w_example = np.zeros((n_boot, conf.shape[1]), dtype=np.float32)  # float32: counts stay exact < 2**24
    np.add.at(w_example, (np.arange(n_boot)[:, None], example_idx), 1.0)  # shared by every run
    rows = []
    for key, group in meta.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        pos = group.index.to_numpy()
        w_run = np.zeros((n_boot, len(pos)), dtype=np.float32)
        np.add.at(w_run, (np.arange(n_boot)[:, None], resample_indices(len(pos), n_boot, rng)), 1.0)
        for row in _bin_rows(bins[pos], conf[pos], outcome[pos], w_run, w_example, n_bins, alpha):
            rows.append({**dict(zip(by, key, strict=True)), **row})
    return pd.DataFrame(rows, columns=[*by, *CURVE_COLUMNS])


def expected_calibration_error(curve: pd.DataFrame) -> float:
    """ECE of a pooled curve: count-weighted mean of |frequency - confidence| over bins.

    For multi-class curves this is the usual top-label ECE; for binary curves of P(positive) it is the
    calibration error of the positive-class probability.
    """
    if curve.empty:
        return float("nan")
    w = curve["count"].to_numpy(dtype=float)
    gap = np.abs(curve["frequency"].to_numpy(dtype=float) - curve["confidence"].to_numpy(dtype=float))
    return float((w * gap).sum() / w.sum())
