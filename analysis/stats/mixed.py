"""Mixed-effects models per metric: ``metric_pp ~ variant * log2(fraction) + (1|seed) + (1|seed:variant)``.

Fitted with statsmodels ``MixedLM`` in percentage points (on the [0, 1] scale the seed variance is so
small that the boundary warning fires spuriously). Besides the seed intercept, a seed x variant variance
component (``vc_formula``) lets the variant effect vary by seed: without it, a variant effect that
varies by seed (SD 0.7 pp) made the likelihood-ratio test of the variant effect reject a true null in
10-16 % of studies instead of 5 %. REML fits give the coefficients, Wald intervals and variance
components; likelihood-ratio tests compare ML fits of nested models with the same random part.

Fractions at the floor (every run of the fraction at one value, e.g. the base rate of a model that
predicts the majority class) carry no information on any effect and, kept in, inflate the residual
variance for every other fraction (Wald intervals then covered 100 %): they are excluded from the fit
and listed in ``MixedResult.floors``. A bounded-outcome sensitivity model (a binomial GEE on the runs'
correct / total counts, :mod:`analysis.stats.bounded`) is fitted beside the linear one and their
agreement is in ``MixedResult.sensitivity``. Optimiser fallbacks, non-convergence, singular variance
components and exclusions are recorded in ``MixedResult.warnings``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

from analysis.design import ok_runs
from analysis.stats.bounded import agreement, fit_binomial_gee, joint_wald_p, run_counts
from analysis.stats.intervals import DEGENERATE_TOL

# seed intercept only: bfgs first (lbfgs can hit a singular matrix or an infinite likelihood at zero seed
# variance); with the seed x variant component lbfgs first (bfgs stops short of convergence on most studies)
OPTIMIZERS = ("bfgs", "lbfgs", "powell", "nm")
OPTIMIZERS_VC = ("lbfgs", "bfgs", "powell", "nm")
SINGULAR_TOL = 1e-3  # a variance component below this share of the residual one is zero (fits stop near it)
SEED_VARIANT = {"seed_variant": "0 + C(variant)"}  # one random intercept per seed x variant, within seed


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
    seed_variant_variance : float
        REML variance of the seed x variant component (NaN when the model has none).
    warnings : list of str
        Convergence problems, optimiser fallbacks, singular fits and excluded fractions, in plain words.
    converged : bool
        Whether the REML fit converged.
    floors : tuple of float
        Fractions left out of the fit because every run of the fraction has the same value.
    sensitivity : DataFrame or None
        The binomial model beside the linear one (:func:`analysis.stats.bounded.agreement`), or None
        when the metric has no correct / total counts.
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
    seed_variant_variance: float = np.nan
    floors: tuple[float, ...] = ()
    sensitivity: pd.DataFrame | None = None


def _fit(formula: str, data: pd.DataFrame, *, reml: bool, notes: list[str], label: str, vc: bool = True):
    """Fit with the first optimiser whose result is usable; record every fallback in ``notes``.

    A result is usable when statsmodels reports convergence, no convergence warning was raised, and the
    log-likelihood, coefficients and standard errors are finite (lbfgs sometimes returns an infinite
    log-likelihood at a zero seed variance while claiming convergence).
    """
    result, method_used, failures = None, "", []
    for method in OPTIMIZERS_VC if vc else OPTIMIZERS:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model = smf.mixedlm(
                    formula,
                    data,
                    groups=data["seed"],
                    re_formula="1",
                    vc_formula=SEED_VARIANT if vc else None,
                )
                candidate = model.fit(reml=reml, method=[method])
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


def floor_fractions(data: pd.DataFrame, column: str = "metric_pp") -> list[float]:
    """Fractions whose every run has the same value of ``column`` (up to floating-point noise)."""
    floors = []
    for fraction, values in data.groupby("data_fraction", sort=True)[column]:
        x = values.to_numpy(dtype=float)
        if x.size and np.ptp(x) <= DEGENERATE_TOL * max(1.0, float(np.abs(x).max())):
            floors.append(float(fraction))
    return floors


def _model_data(
    runs: pd.DataFrame, metric: str, reference: str, exclude_floors: bool = True
) -> tuple[pd.DataFrame, list[float]]:
    """The ok runs as the model sees them (metric in percentage points, variant, log2 fraction, seed,
    counts where the runs have them), without the fractions at the floor; and those fractions."""
    data = ok_runs(runs, [metric]).dropna(subset=[metric])
    # a fixed row order: the optimiser's path (and whether lbfgs converges) depends on it
    keys = [c for c in ("seed", "variant", "data_fraction", "run_id") if c in data]
    data = data.sort_values(keys, kind="stable")
    variants = sorted(data["variant"].unique())
    if reference not in variants:
        raise ValueError(f"reference {reference!r} is not a variant of the runs; choose from {variants}")
    if len(variants) < 2:
        raise ValueError("a mixed model of variant effects needs at least two variants")
    if data["seed"].nunique() < 2:
        raise ValueError("a seed random effect needs at least two seeds")
    frame = pd.DataFrame(
        {
            "metric_pp": 100 * data[metric].to_numpy(dtype=float),
            "variant": data["variant"].astype(str).to_numpy(),
            "data_fraction": data["data_fraction"].to_numpy(dtype=float),
            "log2_fraction": np.log2(data["data_fraction"].to_numpy(dtype=float)),
            "seed": data["seed"].to_numpy(),
        }
    )
    counts = run_counts(data, metric)
    if counts is not None:
        frame["trials"] = counts[1]
        frame["proportion"] = counts[0] / counts[1]
    floors = floor_fractions(frame) if exclude_floors else []
    frame = frame[~frame["data_fraction"].isin(floors)].reset_index(drop=True)
    if frame.empty:
        raise ValueError(
            f"every data fraction of {metric!r} is at the floor (each has one value for every run): "
            "there is no variation to model"
        )
    return frame, floors


def _formulas(
    reference: str, *, one_fraction: bool, response: str = "metric_pp"
) -> tuple[str, str | None, str]:
    """The full model, the model without the interaction (None with one fraction) and without variant."""
    variant = f"C(variant, Treatment(reference={reference!r}))"
    if one_fraction:
        return f"{response} ~ {variant}", None, f"{response} ~ 1"
    full = f"{response} ~ {variant} * log2_fraction"
    return full, f"{response} ~ {variant} + log2_fraction", f"{response} ~ log2_fraction"


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


def _likelihood_ratio_tests(formulas: tuple, data: pd.DataFrame, notes: list[str], vc: bool) -> pd.DataFrame:
    """Likelihood-ratio tests between nested ML fits: the variant effect, and its interaction."""
    full, main, null = formulas
    ml_full, _ = _fit(full, data, reml=False, notes=notes, label="ML fit (full)", vc=vc)
    tests = []
    if main is not None:
        ml_main, _ = _fit(main, data, reml=False, notes=notes, label="ML fit (no interaction)", vc=vc)
    ml_null, _ = _fit(null, data, reml=False, notes=notes, label="ML fit (no variant)", vc=vc)
    tests.append(("variant", ml_full, ml_null))
    if main is not None:
        tests.append(("variant:log2_fraction", ml_full, ml_main))
    rows = []
    for name, bigger, smaller in tests:
        chi2 = max(2.0 * (bigger.llf - smaller.llf), 0.0)
        df = len(bigger.fe_params) - len(smaller.fe_params)
        rows.append({"test": name, "chi2": chi2, "df": int(df), "p_value": float(stats.chi2.sf(chi2, df))})
    return pd.DataFrame(rows, columns=LRT_COLUMNS)


def _variant_names(names) -> list[str]:
    return [n for n in names if str(n).startswith("C(variant")]


def _sensitivity(
    data: pd.DataFrame, formulas: tuple, linear: pd.DataFrame, joint_p: float, alpha: float, notes: list[str]
) -> pd.DataFrame:
    """The binomial GEE of the same fixed part and its agreement with the linear model."""
    formula = formulas[0].replace("metric_pp ~", "proportion ~", 1)
    try:
        coef, fit, gee_notes = fit_binomial_gee(data, formula, alpha)
    except (np.linalg.LinAlgError, ValueError) as exc:
        notes.append(f"binomial model failed ({type(exc).__name__}: {exc}); no sensitivity analysis")
        return None
    notes += gee_notes
    coef["term"] = coef["term"].map(_term_name)
    names = _variant_names(fit.params.index)
    bino_p = joint_wald_p(fit.params, fit.cov_params(), names, max(data["seed"].nunique() - 1, 1))
    return agreement(linear, coef, (joint_p, bino_p), alpha=alpha, intercept=float(fit.params["Intercept"]))


def _variance_notes(seed_var: float, sv_var: float, resid: float, notes: list[str]) -> None:
    if seed_var <= SINGULAR_TOL * resid:
        notes.append("singular fit: the seed variance is estimated at zero (on the boundary)")
    if np.isfinite(sv_var) and sv_var <= SINGULAR_TOL * resid:
        notes.append(
            "the seed x variant variance is estimated at zero: no sign that the variant effect varies by seed"
        )


def fit_mixed(
    runs: pd.DataFrame,
    metric: str,
    *,
    reference: str = "avgpool",
    alpha: float = 0.05,
    lrt: bool = True,
    seed_variant: bool = True,
    sensitivity: bool = True,
    exclude_floors: bool = True,
) -> MixedResult:
    """Fit ``metric_pp ~ C(variant, Treatment(ref)) * log2(data_fraction) + (1|seed) + (1|seed:variant)``.

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
    seed_variant : bool
        Include the seed x variant variance component (False: the seed intercept only, the model before
        issue 15; kept for the validation's comparison).
    sensitivity : bool
        Also fit the binomial model on the runs' counts (when the metric has counts).
    exclude_floors : bool
        Leave out fractions at the floor (False: keep them, as before issue 15; for the validation).

    Returns
    -------
    MixedResult

    Raises
    ------
    ValueError
        If the reference is not a variant, there is a single variant, fewer than two seeds, or every
        fraction is at the floor.
    """
    data, floors = _model_data(runs, metric, reference, exclude_floors)
    notes: list[str] = [
        f"fraction {f:g} left out: every run has the same {metric} ({data_value:.4g} %), a floor with "
        "no variation to model"
        for f, data_value in _floor_values(runs, metric, floors)
    ]
    one_fraction = data["log2_fraction"].nunique() < 2
    if one_fraction:
        notes.append("one data fraction only: the log2_fraction terms and the interaction test are omitted")
    formulas = _formulas(reference, one_fraction=one_fraction)
    fit, optimizer = _fit(formulas[0], data, reml=True, notes=notes, label="REML fit", vc=seed_variant)
    seed_variance = float(np.asarray(fit.cov_re)[0, 0])
    residual_variance = float(fit.scale)
    sv_variance = float(np.asarray(fit.vcomp)[0]) if seed_variant and len(fit.vcomp) else np.nan
    _variance_notes(seed_variance, sv_variance, residual_variance, notes)
    coefficients = _coefficients(fit, alpha)
    tests = (
        _likelihood_ratio_tests(formulas, data, notes, seed_variant)
        if lrt
        else pd.DataFrame(columns=LRT_COLUMNS)
    )
    table = None
    if sensitivity and "proportion" in data:
        joint = tests.set_index("test")["p_value"].get("variant", np.nan) if lrt else np.nan
        if not np.isfinite(joint):  # no LRT: the Wald test of the REML fit
            joint = joint_wald_p(fit.fe_params, fit.cov_params(), _variant_names(fit.fe_params.index), None)
        table = _sensitivity(data, formulas, coefficients, joint, alpha, notes)
    return MixedResult(
        metric=metric,
        reference=reference,
        coefficients=coefficients,
        lrt=tests,
        seed_variance=seed_variance,
        residual_variance=residual_variance,
        warnings=notes,
        converged=bool(fit.converged),
        n_obs=len(data),
        n_seeds=int(data["seed"].nunique()),
        optimizer=optimizer,
        seed_variant_variance=sv_variance,
        floors=tuple(floors),
        sensitivity=table,
    )


def _floor_values(runs: pd.DataFrame, metric: str, floors: list[float]) -> list[tuple[float, float]]:
    """Each floor fraction with its one value in percent."""
    ok = ok_runs(runs, [metric])
    return [(f, 100 * float(ok.loc[ok["data_fraction"] == f, metric].dropna().iloc[0])) for f in floors]
