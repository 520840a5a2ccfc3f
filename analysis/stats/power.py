"""Power of the paired design: minimum detectable difference and seeds needed.

Comparisons are paired by seed, so the seed random effect cancels and what matters is the standard
deviation of the per-seed *differences* between a variant and the reference. It is pooled over every
variant x fraction contrast of the study (mean of their variances). With the normal approximation
(two-sided level ``alpha``, power ``1 - beta``):

    mde          = (z_{1-alpha/2} + z_{1-beta}) * sd_diff / sqrt(n_seeds)
    seeds_needed = ceil(((z_{1-alpha/2} + z_{1-beta}) * sd_diff / effect) ** 2)

The normal approximation is slightly optimistic at few seeds (a t-test needs about one or two more).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from analysis.design import ok_runs
from analysis.stats.contrasts import paired_differences


def paired_difference_sd(runs: pd.DataFrame, metric: str, reference: str = "avgpool") -> tuple[float, int]:
    """Pooled SD of per-seed differences to the reference, and the number of seeds per contrast (median).

    Raises
    ------
    ValueError
        If the reference is not a variant or no contrast has two seeds.
    """
    ok = ok_runs(runs, [metric])
    variants = sorted(ok["variant"].unique())
    if reference not in variants:
        raise ValueError(f"reference {reference!r} is not a variant of the runs; choose from {variants}")
    keys, diffs, _ = paired_differences(ok, metric, reference)
    variances, counts = [], []
    for key, row in zip(keys, diffs, strict=True):
        d = row[~np.isnan(row)]
        if not np.isnan(key["data_fraction"]) and d.size >= 2:  # per fraction, not the pooled rows
            variances.append(d.var(ddof=1))
            counts.append(d.size)
    if not variances:
        raise ValueError(
            f"no variant shares two or more seeds with {reference!r}: the paired SD is undefined"
        )
    return float(np.sqrt(np.mean(variances))), int(np.median(counts))


def power_analysis(
    runs: pd.DataFrame,
    metric: str | Sequence[str],
    *,
    reference: str = "avgpool",
    alpha: float = 0.05,
    power: float = 0.8,
    effect: float = 0.01,
) -> pd.DataFrame:
    """Minimum detectable difference at the study's seed count and seeds needed for ``effect``.

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table.
    metric : str or sequence of str
        Metric column(s), on their own scale (e.g. accuracy in [0, 1]).
    reference : str
        The variant every contrast is taken against.
    alpha, power : float
        Two-sided level and the power wanted.
    effect : float
        The difference to detect, on the metric's scale (0.01 = one accuracy point).

    Returns
    -------
    DataFrame
        Columns ``metric, n_seeds, seed_sd, mde, seeds_needed, effect, alpha, power``; ``seed_sd`` is the
        pooled paired-difference SD.

    Examples
    --------
    >>> runs = pd.DataFrame({"variant": ["avgpool"] * 3 + ["maxpool"] * 3, "seed": [0, 1, 2] * 2,
    ...                      "data_fraction": 1.0, "accuracy": [0.80, 0.82, 0.84, 0.81, 0.81, 0.87]})
    >>> power_analysis(runs, "accuracy", effect=0.02)[["n_seeds", "seeds_needed"]].to_dict("records")
    [{'n_seeds': 3, 'seeds_needed': 8}]
    """
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got alpha={alpha}, power={power}")
    if effect <= 0:
        raise ValueError(f"effect must be a positive difference on the metric's scale, got {effect}")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    rows = []
    for m in [metric] if isinstance(metric, str) else list(metric):
        sd, n = paired_difference_sd(runs, m, reference)
        rows.append(
            {
                "metric": m,
                "n_seeds": n,
                "seed_sd": sd,
                "mde": z * sd / np.sqrt(n),
                "seeds_needed": int(np.ceil((z * sd / effect) ** 2)),
                "effect": effect,
                "alpha": alpha,
                "power": power,
            }
        )
    return pd.DataFrame(rows)
