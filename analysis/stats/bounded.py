"""The bounded-outcome sensitivity model: a binomial GEE on correct / total counts beside the linear model.

A metric such as accuracy is a proportion of a finite test set, bounded by 0 and 1: near a ceiling or a
floor its spread shrinks and its differences are not additive, which a linear mixed model in
percentage points ignores. The sensitivity model fits the same fixed part on the logit scale to each
run's counts (e.g. correct and total test examples), as a generalised estimating equation with a
binomial family and an exchangeable correlation within a seed (statsmodels ``GEE``), with the
bias-reduced (Mancl-DeRouen) sandwich covariance and t / F reference distributions on ``seeds - 1``
degrees of freedom, because a sandwich over few seeds is too small. :func:`agreement` then states, per
variant term and for the variant effect as a whole, whether it leads to the same conclusion (same
sign, same decision at ``alpha``) as the linear model.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import special, stats

# metric -> (successes, trials) as sums of the runs table's confusion counts
COUNTS = {
    "accuracy": (("tp", "tn"), ("tp", "tn", "fp", "fn")),
    "recall": (("tp",), ("tp", "fn")),
    "specificity": (("tn",), ("tn", "fp")),
    "fpr": (("fp",), ("fp", "tn")),
    "fnr": (("fn",), ("fn", "tp")),
    "precision": (("tp",), ("tp", "fp")),
    "predicted_positive_rate": (("tp", "fp"), ("tp", "tn", "fp", "fn")),
}
AGREEMENT_COLUMNS = [
    "term",
    "linear_estimate",
    "linear_low",
    "linear_high",
    "linear_p",
    "binomial_estimate",
    "binomial_low",
    "binomial_high",
    "binomial_p",
    "binomial_pp",
    "agree",
]


def run_counts(runs: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Successes and trials of ``metric`` per run from the confusion counts, or None when unavailable.

    Examples
    --------
    >>> runs = pd.DataFrame({"tp": [50.0], "tn": [30.0], "fp": [10.0], "fn": [10.0]})
    >>> [a.tolist() for a in run_counts(runs, "accuracy")]
    [[80.0], [100.0]]
    """
    if metric not in COUNTS:
        return None
    num, den = COUNTS[metric]
    if any(c not in runs for c in den):
        return None
    successes = runs[list(num)].to_numpy(dtype=float).sum(axis=1)
    trials = runs[list(den)].to_numpy(dtype=float).sum(axis=1)
    if not (np.isfinite(trials).all() and np.isfinite(successes).all()) or (trials <= 0).any():
        return None
    return successes, trials


def fit_binomial_gee(
    data: pd.DataFrame, formula: str, alpha: float = 0.05
) -> tuple[pd.DataFrame, dict, list]:
    """Fit the binomial GEE ``formula`` (response ``proportion``) grouped by ``seed``.

    Parameters
    ----------
    data : DataFrame
        ``proportion`` (successes / trials), ``trials``, the formula's columns and ``seed``.
    formula : str
        The fixed part, e.g. ``"proportion ~ C(variant, Treatment('avgpool')) * log2_fraction"``.
    alpha : float
        1 - confidence level.

    Returns
    -------
    tuple
        ``(coefficients, fit, notes)``: per term ``term, estimate, low, high, p_value`` on the logit
        scale (t on ``seeds - 1`` degrees of freedom), the statsmodels result (``params``,
        ``cov_params()``) and the fit's warnings in words.
    """
    notes = []
    n_groups = int(data["seed"].nunique())
    equal_trials = bool(np.allclose(data["trials"], data["trials"].iloc[0]))
    kw = {} if equal_trials else {"weights": data["trials"].to_numpy(dtype=float)}
    # the bias-reduced covariance does not take weights in statsmodels; equal trials need none
    cov_type = "bias_reduced" if equal_trials else "robust"
    if not equal_trials:
        notes.append("binomial model: runs have different test-set sizes, so the plain sandwich is used")
    model = smf.gee(
        formula,
        groups="seed",
        data=data,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
        **kw,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = model.fit(cov_type=cov_type, maxiter=100)
    notes += [f"binomial model: {str(w.message).splitlines()[0]}" for w in caught]
    df = max(n_groups - 1, 1)
    se = np.sqrt(np.diag(fit.cov_params()))
    q = stats.t.ppf(1 - alpha / 2, df)
    est = fit.params.to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 2 * stats.t.sf(np.abs(est / se), df)
    coef = pd.DataFrame(
        {
            "term": list(fit.params.index),
            "estimate": est,
            "low": est - q * se,
            "high": est + q * se,
            "p_value": p,
        }
    )
    return coef, fit, notes


def joint_wald_p(
    params: pd.Series, cov: pd.DataFrame, names: list[str], df_denominator: float | None
) -> float:
    """p-value of the Wald test that every coefficient in ``names`` is 0.

    F on ``(len(names), df_denominator)`` degrees of freedom, or chi-square when ``df_denominator`` is None.
    """
    if not names:
        return np.nan
    b = params.loc[names].to_numpy(dtype=float)
    v = cov.loc[names, names].to_numpy(dtype=float)
    try:
        w = float(b @ np.linalg.solve(v, b))
    except np.linalg.LinAlgError:
        return np.nan
    q = len(names)
    if df_denominator is None:
        return float(stats.chi2.sf(w, q))
    return float(stats.f.sf(w / q, q, df_denominator))


def agreement(
    linear: pd.DataFrame,
    binomial: pd.DataFrame,
    joint: tuple[float, float],
    *,
    alpha: float = 0.05,
    intercept: float = np.nan,
) -> pd.DataFrame:
    """Per variant term (and the variant effect as a whole), the two models side by side.

    Parameters
    ----------
    linear, binomial : DataFrame
        ``term, estimate, low, high, p_value`` of each model, terms named alike (``variant[v]``, ...).
    joint : tuple of float
        p-values of the joint variant test in the linear and the binomial model.
    alpha : float
        The decision level.
    intercept : float
        The binomial model's intercept (logit of the reference at fraction 1): with it, ``binomial_pp``
        states a main-effect term as a difference in percentage points at fraction 1, the linear
        coefficient's scale.

    Returns
    -------
    DataFrame
        Columns ``term, linear_estimate, linear_low, linear_high, linear_p, binomial_estimate,
        binomial_low, binomial_high, binomial_p, binomial_pp, agree``; ``agree`` is True when both
        estimates have the same sign and both p-values fall on the same side of ``alpha``.
    """
    lin = linear[linear["term"].str.startswith("variant[")].set_index("term")
    bino = binomial.set_index("term")
    rows = []
    for term, r in lin.iterrows():
        b = bino.loc[term] if term in bino.index else pd.Series(dtype=float)
        b_est = float(b.get("estimate", np.nan))
        pp = np.nan
        if ":" not in term and np.isfinite(intercept):
            pp = 100 * float(special.expit(intercept + b_est) - special.expit(intercept))
        same_sign = np.sign(r["estimate"]) == np.sign(b_est)
        same_call = (r["p_value"] < alpha) == (b.get("p_value", np.nan) < alpha)
        rows.append(
            {
                "term": term,
                "linear_estimate": r["estimate"],
                "linear_low": r["low"],
                "linear_high": r["high"],
                "linear_p": r["p_value"],
                "binomial_estimate": b_est,
                "binomial_low": float(b.get("low", np.nan)),
                "binomial_high": float(b.get("high", np.nan)),
                "binomial_p": float(b.get("p_value", np.nan)),
                "binomial_pp": pp,
                "agree": bool(same_sign and same_call and np.isfinite(b_est)),
            }
        )
    lin_p, bino_p = joint
    rows.append(
        {
            "term": "variant (all terms)",
            "linear_p": lin_p,
            "binomial_p": bino_p,
            "agree": bool(np.isfinite(bino_p) and (lin_p < alpha) == (bino_p < alpha)),
        }
    )
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
