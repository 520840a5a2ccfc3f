"""The dilution hypothesis: "the operator effect is smaller in the residual model than in the LeNet".

With ``dL`` the operator effect (variant - reference) in the LeNet and ``dR`` in the residual model,
``|dR| < |dL|`` holds exactly when ``dR**2 - dL**2 = (dR - dL) * (dR + dL) < 0``: when the *change*
``dR - dL`` and the *sum* ``dR + dL`` have opposite signs. Both are linear, paired-by-seed contrasts
with their own interval and test (:mod:`analysis.stats.dilution`), so the hypothesis needs no sign
chosen from the data:

* **supported**: both are shown to differ from 0 (an intersection-union test: its p-value is the larger
  of the two, Holm-adjusted across the family) and their signs are opposite;
* **reversed**: both intervals exclude 0 on the same side (the effect is larger in the residual model);
* **contradicted**: the change is shown to be negligible (its (1 - 2 alpha) interval lies within the
  equivalence margin: the effect is the same in both models);
* **not resolved at this seed count** otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats.dilution import BASE_MODEL, dilution_contrasts
from analysis.verdicts.hypotheses import DEFAULT_MARGIN
from analysis.verdicts.rules import CONTRADICTED, REVERSED, SUPPORTED, UNRESOLVED, combine_verdicts

STATEMENT = (
    "Skip connections dilute the effect of the early downsampling operator: the accuracy difference "
    "between a variant and the reference is smaller in magnitude in the residual model than in the LeNet."
)


def dilution_verdict(
    change: tuple[float, float],
    total: tuple[float, float],
    *,
    shown: bool,
    negligible: bool,
) -> str:
    """The verdict on dilution from the intervals of the change ``dR - dL`` and the sum ``dR + dL``.

    Parameters
    ----------
    change, total : tuple of float
        ``(low, high)`` of the (1 - alpha) intervals of ``dR - dL`` and ``dR + dL``.
    shown : bool
        Whether the Holm-adjusted intersection-union test rejects at alpha.
    negligible : bool
        Whether the change's (1 - 2 alpha) interval lies within the equivalence margin.

    Returns
    -------
    str
        One of :data:`analysis.verdicts.rules.VERDICTS`.

    Examples
    --------
    >>> dilution_verdict((-0.06, -0.02), (0.02, 0.07), shown=True, negligible=False)
    'supported'
    >>> dilution_verdict((0.01, 0.04), (0.03, 0.09), shown=False, negligible=False)
    'reversed'
    """
    bounds = np.array([*change, *total], dtype=float)
    if np.isnan(bounds).any():
        return UNRESOLVED
    if shown:
        return SUPPORTED
    side_change = 1 if change[0] > 0 else (-1 if change[1] < 0 else 0)
    side_total = 1 if total[0] > 0 else (-1 if total[1] < 0 else 0)
    if side_change and side_change == side_total:
        return REVERSED
    return CONTRADICTED if negligible else UNRESOLVED


def evaluate_dilution(
    runs: pd.DataFrame,
    *,
    metric: str = "accuracy",
    reference: str = "avgpool",
    base_model: str = BASE_MODEL,
    margin: float = DEFAULT_MARGIN,
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test dilution for every residual model x variant x fraction and give each a verdict.

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table (any statuses).
    metric, reference, base_model
        See :func:`analysis.stats.dilution.dilution_contrasts`.
    margin : float
        Equivalence margin of "the effect is the same in both models" (metric scale).
    n_boot, alpha, seed
        Bootstrap resamples, 1 - confidence level, seed of every draw.

    Returns
    -------
    tuple
        ``(tests, verdicts)``: the contrasts with a ``verdict`` per row, and one row per residual model
        x variant with the verdict of the row pooled over fractions (the single fraction's row when the
        study has one) and one per residual model (``variant`` "all") combining them
        (:func:`analysis.verdicts.rules.combine_verdicts`).
    """
    if not 0 < margin < 1:
        raise ValueError(f"margin {margin} must lie in (0, 1), e.g. 0.02 for 2 percentage points")
    tests = dilution_contrasts(
        runs, metric=metric, reference=reference, base_model=base_model, n_boot=n_boot, alpha=alpha, seed=seed
    )
    tests["verdict"] = [
        dilution_verdict(
            (r.change_low, r.change_high),
            (r.sum_low, r.sum_high),
            shown=bool(r.p_holm < alpha),
            negligible=bool(-margin < r.change_low_eq and r.change_high_eq < margin),
        )
        for r in tests.itertuples(index=False)
    ]
    headline = []
    for (model, variant), part in tests.groupby(["model", "variant"], sort=True):
        pooled = part[part["data_fraction"].isna()]
        row = (pooled if len(pooled) else part).iloc[0]
        headline.append({"model": model, "variant": variant, "verdict": row["verdict"]})
    verdicts = pd.DataFrame(headline, columns=["model", "variant", "verdict"])
    combined = [
        {"model": model, "variant": "all", "verdict": combine_verdicts(part["verdict"])}
        for model, part in verdicts.groupby("model", sort=True)
    ]
    return tests, pd.concat([verdicts, pd.DataFrame(combined, columns=verdicts.columns)], ignore_index=True)
