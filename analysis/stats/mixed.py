"""Mixed-effects models per metric: ``metric_pp ~ variant * log2(fraction) + (1 | seed)``.

Fitted with statsmodels ``MixedLM`` in percentage points (on the [0, 1] scale the seed variance is so
small that the boundary warning fires spuriously). REML fits give the coefficients, Wald intervals and
variance components; likelihood-ratio tests compare ML fits of nested models. Optimiser fallbacks,
non-convergence and singular (zero seed variance) fits are recorded in ``MixedResult.warnings``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from analysis.design import ok_runs

# bfgs first: on these designs lbfgs can hit a singular matrix or an infinite likelihood at zero seed variance
OPTIMIZERS = ("bfgs", "lbfgs", "powell", "nm")
SINGULAR_TOL = 1e-6  # seed variance below this fraction of the residual variance counts as zero


@dataclass
class MixedResult:
    """A fitted mixed model of one metric.

    Attributes
    ----------
    metric, reference : str
        The metric (fitted x100) and the reference level of ``variant``.
    coefficients : DataFrame
        ``term, estimate, low, high, p_value`` (Wald, REML fit, percentage points). Terms are
        ``Intercept``, ``log2_fraction``, ``variant[v]`` (difference to the reference at fraction 1) and
        ``variant[v]:log2_fraction`` (change of that difference per doubling of the data).
    lrt : DataFrame
        ``test, chi2, df, p_value`` for ``variant`` (all variant terms) and ``variant:log2_fraction``.
    seed_variance, residual_variance : float
        REML variance components in squared percentage points.
    warnings : list of str
        Convergence problems, optimiser fallbacks and singular fits, in plain words.
    converged : bool
        Whether the REML fit converged.
    """

    metric: str
    reference: str
    coefficients: pd.DataFrame
    lrt: pd.DataFrame
    seed_variance: float
    residual_variance: float
    warnings: list[str] = field(default_factory=list)
    converged: bool = True
    n_obs: int = 0
    n_seeds: int = 0
    optimizer: str = ""


def _fit(formula: str, data: pd.DataFrame, *, reml: bool, notes: list[str], label: str):
    """Fit with the first optimiser whose result is usable; record every fallback in ``notes``.

    A result is usable when statsmodels reports convergence, no convergence warning was raised, and the
    log-likelihood, coefficients and standard errors are finite (lbfgs sometimes returns an infinite
    log-likelihood at a zero seed variance while claiming convergence).
    """
    result, method_used, failures = None, "", []
    for method in OPTIMIZERS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                candidate = smf.mixedlm(formula, data, groups=data["seed"]).fit(reml=reml, method=[method])
            except (np.linalg.LinAlgError, ValueError) as exc:
                failures.append(f"{method} ({type(exc).__name__}: {exc})")
                continue
        messages = [str(w.message).splitlines()[0] for w in caught]
        failed_msg = [m for m in messages if "fail" in m.lower() or "converge" in m.lower()]
        finite = (
            np.isfinite(candidate.llf)
            and np.all(np.isfinite(candidate.fe_params))
            and np.all(np.isfinite(np.asarray(candidate.bse_fe)))
        )
        result, method_used = candidate, method
        if candidate.converged and finite and not failed_msg:
            if failures:
                notes.append(f"{label}: fell back to optimiser {method} after {'; '.join(failures)}")
            if reml and any("not positive definite" in m for m in messages):
                notes.append(f"{label}: Hessian not positive definite; Wald intervals are unreliable")
            return result, method
        reason = failed_msg[0] if failed_msg else ("non-finite estimates" if not finite else "not converged")
        failures.append(f"{method} ({reason})")
    if result is None:
        raise ValueError(f"{label}: every optimiser failed: {'; '.join(failures)}")
    notes.append(f"{label}: no optimiser converged ({'; '.join(failures)}); estimates are not reliable")
    return result, method_used


def _term_name(name: str) -> str:
    """``C(variant, Treatment(...))[T.maxpool]:log2_fraction`` -> ``variant[maxpool]:log2_fraction``."""
    if name.startswith("C(variant"):
        level = name.split("[T.", 1)[1].split("]", 1)[0]
        rest = name.split("]", 1)[1] if "]:" in name else ""
        return f"variant[{level}]{rest}"
    return name


LRT_COLUMNS = ["test", "chi2", "df", "p_value"]


def _model_data(runs: pd.DataFrame, metric: str, reference: str) -> pd.DataFrame:
    """The ok runs as the model sees them: metric in percentage points, variant, log2 fraction, seed."""
    data = ok_runs(runs, [metric]).dropna(subset=[metric])
    variants = sorted(data["variant"].unique())
    if reference not in variants:
        raise ValueError(f"reference {reference!r} is not a variant of the runs; choose from {variants}")
    if len(variants) < 2:
        raise ValueError("a mixed model of variant effects needs at least two variants")
    if data["seed"].nunique() < 2:
        raise ValueError("a seed random effect needs at least two seeds")
    return pd.DataFrame(
        {
            "metric_pp": 100 * data[metric].to_numpy(dtype=float),
            "variant": data["variant"].astype(str).to_numpy(),
            "log2_fraction": np.log2(data["data_fraction"].to_numpy(dtype=float)),
            "seed": data["seed"].to_numpy(),
        }
    )


def _formulas(reference: str, *, one_fraction: bool) -> tuple[str, str | None, str]:
    """The full model, the model without the interaction (None with one fraction) and without variant."""
    variant = f"C(variant, Treatment(reference={reference!r}))"
    if one_fraction:
        return f"metric_pp ~ {variant}", None, "metric_pp ~ 1"
    full = f"metric_pp ~ {variant} * log2_fraction"
    return full, f"metric_pp ~ {variant} + log2_fraction", "metric_pp ~ log2_fraction"


def _coefficients(fit, alpha: float) -> pd.DataFrame:
    """Fixed effects with Wald intervals and p-values, terms named as in :class:`MixedResult`."""
    ci = fit.conf_int(alpha=alpha)
    names = list(fit.fe_params.index)
    return pd.DataFrame(
        {
            "term": [_term_name(n) for n in names],
            "estimate": fit.fe_params.to_numpy(),
            "low": ci.loc[names, 0].to_numpy(),
            "high": ci.loc[names, 1].to_numpy(),
            "p_value": fit.pvalues.loc[names].to_numpy(),
        }
    )


def _likelihood_ratio_tests(formulas: tuple, data: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Likelihood-ratio tests between nested ML fits: the variant effect, and its interaction."""
    full, main, null = formulas
    ml_full, _ = _fit(full, data, reml=False, notes=notes, label="ML fit (full)")
    tests = []
    if main is not None:
        ml_main, _ = _fit(main, data, reml=False, notes=notes, label="ML fit (no interaction)")
    ml_null, _ = _fit(null, data, reml=False, notes=notes, label="ML fit (no variant)")
    tests.append(("variant", ml_full, ml_null))
    if main is not None:
        tests.append(("variant:log2_fraction", ml_full, ml_main))
    rows = []
    for name, bigger, smaller in tests:
        chi2 = max(2.0 * (bigger.llf - smaller.llf), 0.0)
        df = len(bigger.fe_params) - len(smaller.fe_params)
        rows.append({"test": name, "chi2": chi2, "df": int(df), "p_value": float(stats.chi2.sf(chi2, df))})
    return pd.DataFrame(rows, columns=LRT_COLUMNS)


def fit_mixed(
    runs: pd.DataFrame, metric: str, *, reference: str = "avgpool", alpha: float = 0.05, lrt: bool = True
) -> MixedResult:
    """Fit ``metric_pp ~ C(variant, Treatment(reference)) * log2(data_fraction) + (1 | seed)``.

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table; only ``status == "ok"`` rows are used.
    metric : str
        A metric column in [0, 1]; it is fitted in percentage points (x100).
    reference : str
        Reference level of ``variant``.
    alpha : float
        1 - confidence level of the Wald intervals.
    lrt : bool
        Also fit the nested ML models for the likelihood-ratio tests (``lrt`` is empty otherwise).

    Returns
    -------
    MixedResult

    Raises
    ------
    ValueError
        If the reference is not a variant, there is a single variant, or fewer than two seeds.
    """
    data = _model_data(runs, metric, reference)
    notes: list[str] = []
    if data["log2_fraction"].nunique() < 2:
        notes.append("one data fraction only: the log2_fraction terms and the interaction test are omitted")
    formulas = _formulas(reference, one_fraction=bool(notes))
    fit, optimizer = _fit(formulas[0], data, reml=True, notes=notes, label="REML fit")
    seed_variance = float(np.asarray(fit.cov_re)[0, 0])
    residual_variance = float(fit.scale)
    if seed_variance <= SINGULAR_TOL * residual_variance:
        notes.append("singular fit: the seed variance is estimated at zero (on the boundary)")
    tests = _likelihood_ratio_tests(formulas, data, notes) if lrt else pd.DataFrame(columns=LRT_COLUMNS)
    return MixedResult(
        metric=metric,
        reference=reference,
        coefficients=_coefficients(fit, alpha),
        lrt=tests,
        seed_variance=seed_variance,
        residual_variance=residual_variance,
        warnings=notes,
        converged=bool(fit.converged),
        n_obs=len(data),
        n_seeds=int(data["seed"].nunique()),
        optimizer=optimizer,
    )
