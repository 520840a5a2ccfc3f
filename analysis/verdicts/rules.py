"""One verdict vocabulary for the whole report, the rules that give a verdict, and the one combining rule.

========================================  ==========================================================
verdict                                   meaning
========================================  ==========================================================
``supported``                             the effect is shown, in the claimed direction (or, for an
                                          equivalence claim, shown to lie within the margin)
``reversed``                              a significant effect in the direction opposite to the claim
``contradicted``                          the data speak against the claim without reversing it: an
                                          equivalence claim whose difference is shown, or a claimed
                                          effect shown to be smaller than the equivalence margin
``not resolved at this seed count``       neither: more seeds could decide it
========================================  ==========================================================

A quantity that is not testable (fewer than 3 seeds, or the same value on every seed: its interval and
p-value are NaN, see :func:`analysis.stats.intervals.t_procedure`) is ``not resolved at this seed
count``: never supported, never p = 0.

A claim or hypothesis with several parts gets one verdict from :func:`combine_verdicts`. Claims
(:mod:`analysis.verdicts.claims`) and inductive-bias hypotheses (:mod:`analysis.verdicts.hypotheses`)
both use these words; they differ only in what counts as "shown" (an interval, or a Holm-adjusted test).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

SUPPORTED = "supported"
REVERSED = "reversed"
CONTRADICTED = "contradicted"
UNRESOLVED = "not resolved at this seed count"
VERDICTS = (SUPPORTED, REVERSED, CONTRADICTED, UNRESOLVED)


def directional_verdict(
    low: float,
    high: float,
    *,
    direction: int = 1,
    null: float = 0.0,
    shown: bool | None = None,
    negligible: bool = False,
) -> str:
    """The verdict on a claim that a quantity lies above (``direction`` 1) or below (-1) ``null``.

    Parameters
    ----------
    low, high : float
        The (1 - alpha) interval of the quantity.
    direction : int
        1: the claim is "above ``null``"; -1: "below"; 0: "differs from ``null``" (either side).
    null : float
        The value of no effect.
    shown : bool, optional
        Whether the effect is shown on the claimed side; by default, whether the interval lies on it.
        Hypotheses pass a Holm-adjusted test here.
    negligible : bool
        Whether the effect is shown to be smaller than the equivalence margin.

    Returns
    -------
    str
        ``supported`` when shown; ``reversed`` when the interval lies entirely on the other side;
        ``contradicted`` when negligible; else ``not resolved at this seed count`` (also for a missing
        interval).

    Examples
    --------
    >>> directional_verdict(0.01, 0.05), directional_verdict(-0.05, -0.01), directional_verdict(-0.01, 0.02)
    ('supported', 'reversed', 'not resolved at this seed count')
    """
    if np.isnan(low) or np.isnan(high):
        return UNRESOLVED
    if shown is None:
        above, below = low > null, high < null
        shown = above or below if direction == 0 else (above if direction > 0 else below)
    if shown:
        return SUPPORTED
    if (direction > 0 and high < null) or (direction < 0 and low > null):
        return REVERSED
    return CONTRADICTED if negligible else UNRESOLVED


def equivalence_verdict(low: float, high: float, *, margin: float, shown: bool | None = None) -> str:
    """The verdict on a claim that a difference "disappears": it lies within ``(-margin, margin)``.

    Parameters
    ----------
    low, high : float
        The (1 - alpha) interval of the difference.
    margin : float
        The equivalence margin.
    shown : bool, optional
        Whether equivalence is shown; by default, whether the interval lies within the margin.
        Hypotheses pass a Holm-adjusted TOST here.

    Returns
    -------
    str
        ``supported`` when shown; ``contradicted`` when the interval excludes 0 (a difference is shown);
        else ``not resolved at this seed count``.

    Examples
    --------
    >>> equivalence_verdict(-0.01, 0.01, margin=0.02), equivalence_verdict(0.01, 0.05, margin=0.02)
    ('supported', 'contradicted')
    """
    if np.isnan(low) or np.isnan(high):
        return UNRESOLVED
    if shown is None:
        shown = -margin <= low and high <= margin
    if shown:
        return SUPPORTED
    return CONTRADICTED if low > 0 or high < 0 else UNRESOLVED


def combine_verdicts(verdicts: Iterable[str]) -> str:
    """One verdict of a claim from those of its parts (empty strings, descriptive parts, are skipped).

    Every part supported -> supported; else any part reversed -> reversed; else any part contradicted
    -> contradicted; else not resolved.

    Examples
    --------
    >>> combine_verdicts(["supported", "supported"]), combine_verdicts(["supported", "contradicted", ""])
    ('supported', 'contradicted')
    """
    parts = [v for v in verdicts if v]
    unknown = sorted(set(parts) - set(VERDICTS))
    if unknown:
        raise ValueError(f"unknown verdicts {unknown}; choose from {', '.join(VERDICTS)}")
    if parts and all(v == SUPPORTED for v in parts):
        return SUPPORTED
    for verdict in (REVERSED, CONTRADICTED):
        if verdict in parts:
            return verdict
    return UNRESOLVED
