"""Power of the paired design: minimum detectable difference and seeds needed, from the noncentral t.

Comparisons are paired by seed, so the seed random effect cancels and what matters is the standard
deviation of the per-seed *differences* between a variant and the reference. Each contrast the report
tests (variant x fraction, and pooled over fractions) has its own SD, because fractions differ
several-fold in how much seeds disagree; :func:`power_analysis` gives every contrast's figures and
:func:`worst_case` the contrast with the largest SD per metric, the one a study must be planned for.

The test is the two-sided paired t-test of :func:`analysis.stats.intervals.t_procedure`, whose power at
``n`` seeds for a true difference ``delta`` is that of the noncentral t with ``n - 1`` degrees of freedom
and noncentrality ``sqrt(n) * delta / sd`` (:func:`t_power`). Two levels are reported:

* per comparison, at ``alpha``;
* for the report's Holm family of ``m`` contrasts (the rows of the contrasts table that get a p-value),
  at ``alpha / m``: the Bonferroni bound for Holm's first step. A contrast whose p-value is below
  ``alpha / m`` is rejected by Holm whatever the other p-values, so this power is a lower bound on its
  power after Holm's correction (conservative; exact when the other contrasts are null and few).

``seeds_needed`` is never below :data:`~analysis.stats.intervals.MIN_SEEDS`, the fewest seeds the
interval method accepts. Every figure treats the SD estimated from the study as the true SD; with few
seeds that estimate is itself uncertain, so the achieved power of a study planned from a small pilot
is on average below the target.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special, stats

from analysis.design import ok_runs
from analysis.stats.contrasts import paired_contrasts, paired_differences
from analysis.stats.intervals import MIN_SEEDS, T_METHOD, t_procedure

MAX_SEEDS = 1_000_000  # seeds_needed above this is reported as missing (the effect is out of reach)
POWER_COLUMNS = [
    "metric",
    "variant",
    "reference",
    "data_fraction",
    "n_seeds",
    "sd",
    "method",
    "mde",
    "mde_family",
    "seeds_needed",
    "seeds_needed_family",
    "family_size",
    "effect",
    "alpha",
    "power",
]


def t_power(dz: float | np.ndarray, n: int | np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Power of the two-sided paired t-test at ``n`` seeds for the standardised difference ``dz``.

    ``P(T > c) + P(T < -c)`` for ``T`` noncentral t with ``n - 1`` degrees of freedom and noncentrality
    ``sqrt(n) dz``, ``c = t_{1 - alpha/2, n-1}`` (scipy's ``nct``; statsmodels' ``TTestPower`` gives the
    same values but NaN once the power is within ~1e-3 of 1).

    Examples
    --------
    >>> round(float(t_power(1.0, 10)), 3)  # a textbook value: d = 1, n = 10, alpha = 0.05
    0.803
    """
    n = np.asarray(n, dtype=float)
    df, nc = np.broadcast_arrays(n - 1, np.sqrt(n) * np.asarray(dz, dtype=float))
    crit = stats.t.ppf(1 - alpha / 2, df)
    with np.errstate(invalid="ignore"):
        upper = stats.nct.sf(crit, df, nc)
        # the far tail: scipy's nct gives NaN where it is below ~1e-17, and it is below Phi(-|nc|)
        lower = np.where(special.ndtr(-np.abs(nc)) < 1e-12, 0.0, stats.nct.cdf(-crit, df, nc))
    out = upper + lower
    bad = ~np.isfinite(out)
    if bad.any():  # integrate over the chi-square of the SD where nct itself fails
        out = np.where(bad, np.vectorize(_power_by_quadrature)(crit, df, nc), out)
    return out


def _power_by_quadrature(crit: float, df: float, nc: float) -> float:
    """``P(|T| > crit)`` for noncentral t by integrating the normal over the chi-square of the SD."""

    def integrand(v: float) -> float:
        s = crit * np.sqrt(v / df)
        return (special.ndtr(nc - s) + special.ndtr(-nc - s)) * stats.chi2.pdf(v, df)

    return float(integrate.quad(integrand, 0.0, np.inf, limit=200)[0])


def detectable_dz(n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The standardised difference ``d_z`` the paired t-test detects with ``power`` at ``n`` seeds.

    Raises
    ------
    ValueError
        If ``n`` is below two seeds (the t-test needs a variance).
    """
    if n < 2:
        raise ValueError(f"a paired t-test needs at least 2 seeds, got {n}")

    def short(dz: float) -> float:
        return float(t_power(dz, n, alpha)) - power

    high = 1.0
    while short(high) < 0:  # power rises with dz towards 1: widen until the root is bracketed
        high *= 2.0
    return float(optimize.brentq(short, 0.0, high, xtol=1e-12, rtol=1e-12))


def seeds_for(dz: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The fewest seeds, at least :data:`MIN_SEEDS`, whose paired t-test reaches ``power`` at ``dz``.

    Returns NaN when ``dz`` is not positive or more than :data:`MAX_SEEDS` seeds would be needed.

    Examples
    --------
    >>> seeds_for(1.0), seeds_for(5.0)  # 10 seeds reach 80 % at d = 1; never fewer than 3
    (10.0, 3.0)
    """
    if not np.isfinite(dz) or dz <= 0:
        return np.nan
    high = MIN_SEEDS
    while float(t_power(dz, high, alpha)) < power:
        if high > MAX_SEEDS:
            return np.nan
        high *= 2
    low = max(MIN_SEEDS, high // 2)
    candidates = np.arange(low, high + 1)
    reached = t_power(dz, candidates, alpha) >= power
    return float(candidates[np.argmax(reached)])


def _contrast_sds(ok: pd.DataFrame, metric: str, reference: str) -> pd.DataFrame:
    """Every contrast of :func:`paired_contrasts` with its seed count, paired SD and t method."""
    keys, diffs, _ = paired_differences(ok, metric, reference)
    if not keys:
        return pd.DataFrame(
            columns=["metric", "variant", "reference", "data_fraction", "n_seeds", "sd", "method"]
        )
    scale = float(np.nanmax(np.abs(ok[metric].to_numpy(dtype=float)), initial=0.0))
    tests = t_procedure(diffs, scale=scale)
    sd = [
        float(np.std(row[~np.isnan(row)], ddof=1)) if m == T_METHOD else np.nan
        for row, m in zip(diffs, tests["method"], strict=True)
    ]
    return pd.DataFrame(keys).assign(
        n_seeds=tests["n_seeds"].to_numpy(), sd=sd, method=tests["method"].to_numpy()
    )


def power_analysis(
    runs: pd.DataFrame,
    metric: str | Sequence[str],
    *,
    reference: str = "avgpool",
    alpha: float = 0.05,
    power: float = 0.8,
    effect: float = 0.01,
    family_size: int | None = None,
) -> pd.DataFrame:
    """Minimum detectable difference and seeds needed for ``effect``, per contrast, from the noncentral t.

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table.
    metric : str or sequence of str
        Metric column(s), on their own scale (e.g. accuracy in [0, 1]); together they make the family.
    reference : str
        The variant every contrast is taken against.
    alpha, power : float
        Two-sided level and the power wanted.
    effect : float
        The difference to detect, on the metric's scale (0.01 = one accuracy point).
    family_size : int, optional
        Contrasts Holm-adjusted together; default: the rows with a p-value of
        :func:`~analysis.stats.contrasts.paired_contrasts` for the same metrics (the report's family).

    Returns
    -------
    DataFrame
        Columns ``metric, variant, reference, data_fraction, n_seeds, sd, method, mde, mde_family,
        seeds_needed, seeds_needed_family, family_size, effect, alpha, power``; one row per contrast
        (``data_fraction`` NaN: pooled over fractions). ``sd`` is the SD of the per-seed differences;
        ``mde`` the difference detected with ``power`` at the contrast's own seed count, at ``alpha``;
        ``mde_family`` the same at ``alpha / family_size``; ``seeds_needed`` (``_family``) the seeds that
        detect ``effect`` at those levels. All are NaN for a contrast that is not testable (``method``
        "not enough seeds" or "no variation").

    Raises
    ------
    ValueError
        If ``alpha``, ``power`` or ``effect`` is out of range, or ``reference`` is not a variant.

    Examples
    --------
    >>> runs = pd.DataFrame({"variant": ["avgpool"] * 3 + ["maxpool"] * 3, "seed": [0, 1, 2] * 2,
    ...                      "data_fraction": 1.0, "accuracy": [0.80, 0.82, 0.84, 0.81, 0.81, 0.87]})
    >>> power_analysis(runs, "accuracy", effect=0.02)[["n_seeds", "seeds_needed"]].to_dict("records")
    [{'n_seeds': 3, 'seeds_needed': 10.0}]
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got alpha={alpha}, power={power}")
    if effect <= 0:
        raise ValueError(f"effect must be a positive difference on the metric's scale, got {effect}")
    metrics = [metric] if isinstance(metric, str) else list(metric)
    ok = ok_runs(runs, metrics)
    variants = sorted(ok["variant"].unique())
    if reference not in variants:
        raise ValueError(f"reference {reference!r} is not a variant of the runs; choose from {variants}")
    if family_size is None:
        family_size = int(paired_contrasts(ok, metrics, reference=reference)["p_value"].notna().sum())
    m = max(int(family_size), 1)
    table = pd.concat([_contrast_sds(ok, name, reference) for name in metrics], ignore_index=True)
    rows = []
    for r in table.to_dict("records"):
        testable = r["method"] == T_METHOD and r["sd"] > 0
        figures = dict.fromkeys(("mde", "mde_family", "seeds_needed", "seeds_needed_family"), np.nan)
        if testable:
            figures = {
                "mde": detectable_dz(r["n_seeds"], alpha, power) * r["sd"],
                "mde_family": detectable_dz(r["n_seeds"], alpha / m, power) * r["sd"],
                "seeds_needed": seeds_for(effect / r["sd"], alpha, power),
                "seeds_needed_family": seeds_for(effect / r["sd"], alpha / m, power),
            }
        rows.append({**r, **figures, "family_size": m, "effect": effect, "alpha": alpha, "power": power})
    return pd.DataFrame(rows, columns=POWER_COLUMNS)


def worst_case(table: pd.DataFrame) -> pd.DataFrame:
    """Per metric, the testable contrast with the largest paired SD (the one to plan for).

    Returns
    -------
    DataFrame
        The rows of ``table`` (:func:`power_analysis`) that are worst per metric, plus ``n_contrasts``
        (contrasts of the metric) and ``n_testable``; a metric without a testable contrast keeps one
        row with NaN figures.
    """
    out = []
    for _, part in table.groupby("metric", sort=False):
        testable = part[part["sd"] > 0]
        row = (testable.loc[testable["sd"].idxmax()] if len(testable) else part.iloc[0]).to_dict()
        out.append({**row, "n_contrasts": len(part), "n_testable": len(testable)})
    return pd.DataFrame(out, columns=[*table.columns, "n_contrasts", "n_testable"])
