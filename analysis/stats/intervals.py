"""The one interval engine: every interval of the report is decided or computed here.

* :func:`t_procedure` is the one procedure for a set of per-seed values (a paired difference, or a
  level): the Student t interval *and* its two-sided p-value, at every seed count, so "significant" and
  "the interval excludes 0" can never disagree. Rows with fewer than :data:`MIN_SEEDS` seeds are "not
  enough seeds", and rows whose values do not vary (up to floating-point noise) are "no variation":
  both get NaN bounds and a NaN p-value, never p = 0 or a zero-width interval.
  :func:`seed_intervals` is its interval part and :func:`seed_summary` applies it to a runs table.
* :func:`percentile_interval` is the one percentile step of every other bootstrap (latency, learning
  curves, reliability bands); :func:`resample_indices` draws resampled positions.
* :func:`t_band` is the t-interval of a mean over runs, pointwise along curves (kernel spectra, ROC
  bands); :func:`t_interval` its one-sample form.

Why t at every seed count (issue 15; ``python -m analysis.validate`` measures it): with normal,
heavy-tailed (t3), failed-to-learn, ceiling, seed x variant and floor data, the paired t interval covers
94.5-97 % at 3, 5 and 10 seeds and Holm over its p-values keeps the family-wise error near or below 5 %,
whereas the expanded BCa bootstrap used from 10 seeds before covered 76 % at 3 seeds, 90-92 % at 5
and 90-94 % at 10, and its interval disagreed with the t p-value printed beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.design import ok_runs

MIN_SEEDS = 3  # below this many seeds a row gets no interval and no test ("not enough seeds")
DEGENERATE_TOL = 1e-9  # an SD at or below this (times max(1, scale)) is floating-point noise, not data
T_METHOD, TOO_FEW, NO_VARIATION = "t", "not enough seeds", "no variation"
INTERVAL_COLUMNS = ["n_seeds", "mean", "low", "high", "method"]
T_COLUMNS = ["n_seeds", "mean", "low", "high", "p_value", "method"]
# how every per-seed interval is made, in the report's words
INTERVAL_RULE = (
    f"Student t interval over seeds at every seed count, its p-value from the same t procedure; "
    f"fewer than {MIN_SEEDS} seeds: not enough seeds; values identical on every seed: no variation "
    "(not testable)"
)


def resample_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(n_boot, n)`` matrix of positions drawn with replacement."""
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a 95 % interval, got {n_boot}")
    return rng.integers(0, n, size=(n_boot, n))


def percentile_interval(replicates: np.ndarray, alpha: float = 0.05, axis: int | None = None) -> np.ndarray:
    """Percentile bounds ``(low, high)`` of bootstrap replicates; NaN replicates are left out.

    Parameters
    ----------
    replicates : ndarray
        Bootstrap replicates of one statistic (or several, along ``axis``).
    alpha : float
        1 - confidence level: the bounds are the ``alpha / 2`` and ``1 - alpha / 2`` quantiles.
    axis : int, optional
        The replicate axis; None flattens.

    Returns
    -------
    ndarray
        ``[low, high]`` (stacked along a new first axis when ``axis`` is given).

    Examples
    --------
    >>> percentile_interval(np.arange(101.0), 0.1).tolist()
    [5.0, 95.0]
    """
    return np.nanquantile(replicates, [alpha / 2, 1 - alpha / 2], axis=axis)


def t_band(values: np.ndarray, alpha: float = 0.05, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and t half-width of the mean along ``axis`` (e.g. runs x points of a curve).

    The half-width is ``t_{1-alpha/2, n-1} * sd / sqrt(n)``; it is NaN with fewer than two values.
    """
    x = np.asarray(values, dtype=float)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, stats.t.ppf(1 - alpha / 2, n - 1) * x.std(axis=axis, ddof=1) / np.sqrt(n)


def t_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean and Student-t interval of a 1-D sample (NaN left out); bounds are NaN below two values.

    Examples
    --------
    >>> [round(v, 3) for v in t_interval(np.array([1.0, 2.0, 3.0]))]
    [2.0, -0.484, 4.484]
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    mean = float(x.mean()) if x.size else np.nan
    if x.size < 2:
        return mean, np.nan, np.nan
    _, half = t_band(x, alpha)
    return mean, float(mean - half), float(mean + half)


def t_procedure(
    values: np.ndarray, alpha: float = 0.05, *, null: float = 0.0, scale: float | np.ndarray | None = None
) -> pd.DataFrame:
    """Student t interval and two-sided t-test against ``null`` of each row of per-seed values.

    This is the one procedure of every per-seed contrast and level: the p-value is below ``alpha``
    exactly when the interval excludes ``null``.

    Parameters
    ----------
    values : ndarray
        Rows x seeds (a 1-D array is one row); NaN marks a seed a row does not have.
    alpha : float
        1 - confidence level, and the level the p-value is read at.
    null : float
        The value tested (0 for a difference).
    scale : float or ndarray, optional
        The magnitude of the values the rows were computed from (e.g. the metric's levels when the rows
        are differences of them): a row counts as "no variation" when its SD is at most
        ``DEGENERATE_TOL * max(1, scale)``, i.e. floating-point noise far below any metric's resolution
        (1 / n_test for accuracy). Default: the row's largest absolute value.

    Returns
    -------
    DataFrame
        One row per input row: ``n_seeds, mean, low, high, p_value, method``; ``method`` is ``"t"``,
        ``"not enough seeds"`` (fewer than :data:`MIN_SEEDS`; also no seed at all) or ``"no variation"``
        (not testable), the last two with NaN bounds and p-value.

    Examples
    --------
    >>> t_procedure(np.array([0.02, -0.01, 0.05])).round(3).to_dict("records")
    [{'n_seeds': 3, 'mean': 0.02, 'low': -0.055, 'high': 0.095, 'p_value': 0.368, 'method': 't'}]
    >>> t_procedure(np.array([[0.01, 0.01, 0.01], [0.1, 0.2, np.nan]]))[["p_value", "method"]].to_dict("list")
    {'p_value': [nan, nan], 'method': ['no variation', 'not enough seeds']}
    """
    x = np.atleast_2d(np.asarray(values, dtype=float))
    valid = ~np.isnan(x)
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(valid, x, 0.0).sum(1) / n, np.nan)
        sd = np.sqrt((np.where(valid, x - mean[:, None], 0.0) ** 2).sum(1) / (n - 1))
    if scale is None:
        scale = np.max(np.abs(np.where(valid, x, 0.0)), axis=1, initial=0.0)
    enough = n >= MIN_SEEDS
    varies = sd > DEGENERATE_TOL * np.maximum(1.0, np.abs(scale))
    ok = enough & varies
    m = np.maximum(n, 2)
    se = np.where(ok, sd, 1.0) / np.sqrt(m)
    half = stats.t.ppf(1 - alpha / 2, m - 1) * se
    p = 2 * stats.t.sf(np.abs(mean - null) / se, m - 1)
    method = np.where(~enough, TOO_FEW, np.where(varies, T_METHOD, NO_VARIATION))
    return pd.DataFrame(
        {
            "n_seeds": n.astype(int),
            "mean": mean,
            "low": np.where(ok, mean - half, np.nan),
            "high": np.where(ok, mean + half, np.nan),
            "p_value": np.where(ok, p, np.nan),
            "method": method,
        },
        columns=T_COLUMNS,
    )


Resamples = np.ndarray | Callable[[], np.ndarray]


def seed_intervals(
    values: np.ndarray,
    alpha: float = 0.05,
    *,
    scale: float | np.ndarray | None = None,
    resamples: Resamples | None = None,
) -> pd.DataFrame:
    """The interval of each row of per-seed values: the t interval of :func:`t_procedure`.

    Parameters
    ----------
    values : ndarray
        Rows x seeds (a 1-D array is one row); NaN marks a seed a row does not have.
    alpha : float
        1 - confidence level.
    scale : float or ndarray, optional
        See :func:`t_procedure`.
    resamples : optional
        Ignored: accepted so that callers written for the bootstrap engine before issue 15 still run
        (the t interval draws nothing).

    Returns
    -------
    DataFrame
        One row per input row: ``n_seeds, mean, low, high, method`` (see :func:`t_procedure`).

    Examples
    --------
    >>> seed_intervals(np.array([0.7, 0.8, 0.9])).round(3).to_dict("records")
    [{'n_seeds': 3, 'mean': 0.8, 'low': 0.552, 'high': 1.048, 'method': 't'}]
    """
    return t_procedure(values, alpha, scale=scale)[INTERVAL_COLUMNS]


def seed_summary(
    runs: pd.DataFrame,
    metric: str,
    *,
    by: Sequence[str] = ("variant", "data_fraction"),
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean of ``metric`` over seeds per group with its interval from :func:`seed_intervals`.

    ``n_boot`` and ``seed`` are accepted for the common signature of the statistics and unused: the
    interval is the t interval, which draws nothing.

    Returns
    -------
    DataFrame
        Columns ``*by, metric, n_seeds, mean, low, high, method``; one row per group of ``runs``, in
        the order of the sorted group keys (the rows' order in ``runs`` never matters). A group with no ok
        run (every run failed or diverged) gets 0 seeds and "not enough seeds", never a missing row.

    Examples
    --------
    >>> runs = pd.DataFrame({"variant": "a", "data_fraction": 1.0, "seed": [0, 1, 2],
    ...                      "accuracy": [0.7, 0.8, 0.9]})
    >>> seed_summary(runs, "accuracy").round(3)[["n_seeds", "mean", "method"]].to_dict("records")
    [{'n_seeds': 3, 'mean': 0.8, 'method': 't'}]
    """
    ok = ok_runs(runs, [metric])
    ok = ok.sort_values([*by, "seed"], kind="stable") if "seed" in ok else ok
    scale = float(np.nanmax(np.abs(ok[metric].to_numpy(dtype=float)), initial=0.0))
    rows = []
    for key, group in ok.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        x = group[metric].to_numpy(dtype=float)
        interval = seed_intervals(x[~np.isnan(x)], alpha, scale=scale).iloc[0]
        rows.append({**dict(zip(by, key, strict=True)), "metric": metric, **interval.to_dict()})
    out = pd.DataFrame(rows, columns=[*by, "metric", *INTERVAL_COLUMNS])
    return _with_empty_groups(out, runs, list(by), metric)


def _with_empty_groups(out: pd.DataFrame, runs: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """``out`` plus a "not enough seeds" row (0 seeds) for every group of ``runs`` it lacks (a group
    whose runs all failed or diverged), sorted by the group keys."""
    cells = runs[by].drop_duplicates()
    missing = cells.merge(out[by], on=by, how="left", indicator=True)
    missing = missing.loc[missing["_merge"] == "left_only", by]
    if missing.empty:
        return out
    empty = seed_intervals(np.empty(0), scale=1.0).iloc[0].to_dict()
    extra = missing.assign(metric=metric, **empty)[out.columns]
    both = pd.concat([out, extra], ignore_index=True)
    both["n_seeds"] = both["n_seeds"].astype(int)
    return both.sort_values(by, kind="stable", na_position="last").reset_index(drop=True)
