"""Paired contrasts: differences taken within a seed, with intervals and tests.

* :func:`paired_contrasts`: every variant against the reference, per data fraction and pooled over
  fractions, Holm-adjusted across the returned family.
* :func:`per_seed_contrast` and :func:`contrast_test`: any linear combination of design cells (e.g.
  "CNN minus MLP on permuted images"), one value per seed, with its interval, equivalence interval and
  test; the inductive-bias hypotheses are built from them.

Intervals come from :func:`analysis.stats.intervals.seed_intervals` (t below 10 seeds, expanded BCa
from 10); p-values from :mod:`analysis.stats.hypothesis_tests`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.hypothesis_tests import holm, paired_t_test, tost_paired
from analysis.stats.intervals import resample_indices, seed_intervals
from downscalexr.seeding import numpy_rng

CONTRAST_COLUMNS = [
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
TEST_KINDS = ("difference", "equivalence", "estimate")


def paired_differences(
    ok: pd.DataFrame, metric: str, reference: str
) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Per-seed differences ``variant - reference`` of every variant, per fraction and pooled over them.

    Returns
    -------
    tuple
        ``(keys, differences, seeds)``: one dict per row (``metric, variant, reference, data_fraction``;
        the fraction is NaN for the row pooled over fractions), the differences (rows x seeds, NaN where
        a seed lacks either side) and the seed of each column.
    """
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


def _effect_sizes(d: np.ndarray) -> dict:
    """``dz`` (mean over SD of the differences) and ``prob_superior`` (share of positive ones, ties 1/2)."""
    sd = d.std(ddof=1) if d.size > 1 else np.nan
    return {
        "dz": float(d.mean() / sd) if d.size > 1 and sd > 0 else np.nan,
        "prob_superior": float(((d > 0) + 0.5 * (d == 0)).mean()) if d.size else np.nan,
    }


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
    rows = []
    for metric in metrics:
        keys, diffs, seed_values = paired_differences(ok, metric, reference)
        if not keys:
            continue
        aligned = np.full((len(keys), seeds_all.size), np.nan)
        aligned[:, np.searchsorted(seeds_all, seed_values)] = diffs
        intervals = seed_intervals(aligned, alpha, resamples=idx)
        for key, row, interval in zip(keys, aligned, intervals.itertuples(index=False), strict=True):
            d = row[~np.isnan(row)]
            rows.append(
                {
                    **key,
                    "n_seeds": interval.n_seeds,
                    "diff": interval.mean,
                    "low": interval.low,
                    "high": interval.high,
                    "p_value": paired_t_test(d),
                    **_effect_sizes(d),
                    "method": interval.method,
                }
            )
    out = pd.DataFrame(rows, columns=CONTRAST_COLUMNS)
    out["p_holm"] = holm(out["p_value"].to_numpy(dtype=float))
    return out


def per_seed_contrast(
    frame: pd.DataFrame,
    metric: str,
    terms: Sequence[tuple[float, Mapping[str, object]]],
    keys: Sequence[str] = ("data_fraction",),
) -> pd.Series:
    """Per-seed value of ``sum_k coef_k * metric(cells matching selection_k)``, paired within a seed.

    Parameters
    ----------
    frame : DataFrame
        :func:`analysis.design.design_frame` output, ok runs only.
    metric : str
        The runs column.
    terms : sequence of (float, dict)
        Coefficient and selection (column -> level) of each term; together the selections must fix
        every design factor that is not in ``keys`` (else cells of different levels are averaged).
    keys : sequence of str
        Coordinates matched within a seed (and then averaged over), e.g. the data fraction.

    Returns
    -------
    Series
        Indexed by seed; only seeds (and within them, keys) present in every term contribute.
    """
    parts = []
    for coef, selection in terms:
        mask = np.ones(len(frame), dtype=bool)
        for column, level in selection.items():
            mask &= (frame[column] == level).to_numpy()
        cells = frame[mask].groupby(["seed", *keys])[metric].mean()
        parts.append(coef * cells)
    joined = pd.concat(parts, axis=1, join="inner").dropna()
    if joined.empty:
        return pd.Series(dtype=float, name=metric)
    return joined.sum(axis=1).groupby(level="seed").mean().rename(metric)


def contrast_test(
    values: pd.Series,
    kind: str,
    *,
    margin: float,
    alpha: float = 0.05,
    n_boot: int = 10000,
    rng_key: tuple = (0,),
) -> dict:
    """Estimate, (1 - alpha) and (1 - 2 alpha) intervals, and the p-value of one per-seed contrast.

    Parameters
    ----------
    values : Series
        Per-seed values (:func:`per_seed_contrast`); NaN are left out.
    kind : str
        ``"difference"`` (paired t-test against 0), ``"equivalence"`` (TOST with ``margin``) or
        ``"estimate"`` (descriptive: intervals only, no p-value).
    margin : float
        Equivalence margin on the metric's scale.
    alpha, n_boot : float, int
        1 - confidence level, bootstrap resamples (used from 10 seeds on).
    rng_key : tuple
        ``(seed, *names)`` of the bootstrap's random stream; both intervals use the same resamples.

    Returns
    -------
    dict
        ``n_seeds, estimate, low, high, low_eq, high_eq, p_value, method``.
    """
    if kind not in TEST_KINDS:
        raise ValueError(f"kind {kind!r} is unknown; choose from {', '.join(TEST_KINDS)}")
    d = values.to_numpy(dtype=float)
    d = d[~np.isnan(d)]

    def draw() -> np.ndarray:
        return resample_indices(d.size, n_boot, numpy_rng(*rng_key))

    wide = seed_intervals(d, alpha, resamples=draw).iloc[0]
    narrow = seed_intervals(d, 2 * alpha, resamples=draw).iloc[0]
    if kind == "difference":
        p_value = paired_t_test(d)
    elif kind == "equivalence":
        p_value = tost_paired(d, margin)
    else:
        p_value = np.nan
    return {
        "n_seeds": int(d.size),
        "estimate": wide["mean"],
        "low": wide["low"],
        "high": wide["high"],
        "low_eq": narrow["low"],
        "high_eq": narrow["high"],
        "p_value": p_value,
        "method": wide["method"],
    }
