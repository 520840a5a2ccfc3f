"""Paired contrasts: differences taken within a seed, with intervals and tests.

* :func:`paired_contrasts`: every variant against the reference, per data fraction and pooled over
  fractions, Holm-adjusted across the returned family.
* :func:`per_seed_contrast` and :func:`contrast_test`: any linear combination of design cells (e.g.
  "CNN minus MLP on permuted images"), one value per seed, with its interval, equivalence interval and
  test; the inductive-bias hypotheses are built from them.

Every contrast has one procedure, :func:`analysis.stats.intervals.t_procedure`: the paired t interval
and its p-value, at every seed count, so significance and "the interval excludes 0" never disagree.
A contrast with fewer than 3 seeds is "not enough seeds", one whose per-seed differences are all equal
(e.g. every run at the same ceiling or floor) is "no variation" (not testable): NaN bounds and p-value,
left out of Holm's family, and never a verdict other than "not resolved at this seed count".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.hypothesis_tests import holm, tost_paired
from analysis.stats.intervals import T_METHOD, t_procedure

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
    ok: pd.DataFrame, metric: str, reference: str, *, cells: pd.DataFrame | None = None
) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Per-seed differences ``variant - reference`` of every variant, per fraction and pooled over them.

    Parameters
    ----------
    ok : DataFrame
        The ok runs.
    metric, reference : str
        The runs column and the reference variant.
    cells : DataFrame, optional
        ``variant, data_fraction`` of every cell of the design (e.g. of all runs, failed and diverged
        ones included): a cell whose runs all failed then still gets its row, with no seed (all NaN),
        instead of silently having none. It is not part of the row pooled over fractions.

    Returns
    -------
    tuple
        ``(keys, differences, seeds)``: one dict per row (``metric, variant, reference, data_fraction``;
        the fraction is NaN for the row pooled over fractions), the differences (rows x seeds, NaN where
        a seed lacks either side) and the seed of each column.
    """
    wide = ok.pivot_table(index="seed", columns=["variant", "data_fraction"], values=metric, aggfunc="mean")
    design = set(wide.columns)
    if cells is not None:
        design |= set(zip(cells["variant"], cells["data_fraction"].astype(float), strict=True))
    variants = [v for v in sorted({v for v, _ in design}) if v != reference]
    fractions = sorted({f for _, f in design})
    keys, diffs = [], []
    for v in variants:
        per_fraction = []
        for f in fractions:
            if (v, f) not in design or (reference, f) not in design:
                continue
            if (v, f) not in wide.columns or (reference, f) not in wide.columns:  # no ok run on a side
                keys.append(
                    {"metric": metric, "variant": v, "reference": reference, "data_fraction": float(f)}
                )
                diffs.append(np.full(len(wide.index), np.nan))
                continue
            d = (wide[(v, f)] - wide[(reference, f)]).to_numpy(dtype=float)
            keys.append({"metric": metric, "variant": v, "reference": reference, "data_fraction": float(f)})
            diffs.append(d)
            per_fraction.append(d)
        if len(per_fraction) > 1:  # pooled over fractions; a seed counts only with every fraction
            keys.append({"metric": metric, "variant": v, "reference": reference, "data_fraction": np.nan})
            diffs.append(np.mean(per_fraction, axis=0))
    return keys, np.array(diffs).reshape(len(keys), len(wide.index)), wide.index.to_numpy()


def _effect_sizes(d: np.ndarray, testable: bool) -> dict:
    """``dz`` (mean over SD of the differences; NaN when not ``testable``) and ``prob_superior`` (share
    of positive differences, ties count one half)."""
    return {
        "dz": float(d.mean() / d.std(ddof=1)) if testable else np.nan,
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

    Seeds pair the runs: the difference is taken within a seed. Each row's interval and ``p_value`` are
    the paired t interval and two-sided paired t-test of its per-seed differences
    (:func:`analysis.stats.intervals.t_procedure`): exact under normality at any seed count, and
    ``p_value < alpha`` exactly when the interval excludes 0. ``p_holm`` adjusts the p-values across
    every returned row that has one (rows that are not testable, NaN, are not counted). ``dz`` is the
    mean difference over its seed SD, and ``prob_superior`` the fraction of seeds on which the
    variant's metric is larger (ties count one half). ``n_boot`` and ``seed`` are accepted for the
    common signature of the statistics and unused (the t procedure draws nothing).

    Returns
    -------
    DataFrame
        Columns ``metric, variant, reference, data_fraction, n_seeds, diff, low, high, p_value, p_holm,
        dz, prob_superior, method``; ``data_fraction`` is NaN for the row pooled over fractions;
        ``method`` is ``"t"``, ``"not enough seeds"`` (fewer than 3) or ``"no variation"`` (every seed
        gives the same difference: not testable), the last two with NaN bounds and p-values. A cell of
        ``runs`` with no ok run (all failed or diverged) still gets its row: 0 seeds, not enough seeds.

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
    rows = []
    for metric in metrics:
        cells = runs[["variant", "data_fraction"]].drop_duplicates()
        keys, diffs, _ = paired_differences(ok, metric, reference, cells=cells)
        if not keys:
            continue
        scale = float(np.nanmax(np.abs(ok[metric].to_numpy(dtype=float)), initial=0.0))
        tests = t_procedure(diffs, alpha, scale=scale)
        for key, row, test in zip(keys, diffs, tests.itertuples(index=False), strict=True):
            d = row[~np.isnan(row)]
            rows.append(
                {
                    **key,
                    "n_seeds": test.n_seeds,
                    "diff": test.mean,
                    "low": test.low,
                    "high": test.high,
                    "p_value": test.p_value,
                    **_effect_sizes(d, test.method == T_METHOD),
                    "method": test.method,
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
    scale: float | None = None,
) -> dict:
    """Estimate, (1 - alpha) and (1 - 2 alpha) intervals, and the p-value of one per-seed contrast.

    Parameters
    ----------
    values : Series
        Per-seed values (:func:`per_seed_contrast`); NaN are left out.
    kind : str
        ``"difference"`` (paired t-test against 0, the p-value of the (1 - alpha) interval),
        ``"equivalence"`` (TOST with ``margin``, the test of the (1 - 2 alpha) interval) or
        ``"estimate"`` (descriptive: intervals only, no p-value).
    margin : float
        Equivalence margin on the metric's scale.
    alpha : float
        1 - confidence level.
    n_boot, rng_key
        Accepted for the common signature and unused: the t procedure draws nothing.
    scale : float, optional
        Magnitude of the metric the values were computed from, for the "no variation" check of
        :func:`analysis.stats.intervals.t_procedure`.

    Returns
    -------
    dict
        ``n_seeds, estimate, low, high, low_eq, high_eq, p_value, method``; bounds and p-value are NaN
        when ``method`` is ``"not enough seeds"`` or ``"no variation"`` (not testable).
    """
    if kind not in TEST_KINDS:
        raise ValueError(f"kind {kind!r} is unknown; choose from {', '.join(TEST_KINDS)}")
    d = values.to_numpy(dtype=float)
    d = d[~np.isnan(d)]
    wide = t_procedure(d, alpha, scale=scale).iloc[0]
    narrow = t_procedure(d, 2 * alpha, scale=scale).iloc[0]
    if kind == "difference":
        p_value = wide["p_value"]
    elif kind == "equivalence":
        p_value = tost_paired(d, margin, scale=scale)
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
