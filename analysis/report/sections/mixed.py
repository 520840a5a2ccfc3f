"""Section "Mixed-effects models": a model per metric, its tests, the binomial sensitivity model."""

from __future__ import annotations

import pandas as pd

from analysis.report.document import Section, Settings, Study, Table
from analysis.report.format import format_interval, format_p, format_value
from analysis.stats.mixed import MixedResult, fit_mixed


def _fit_table(fits: list[MixedResult]) -> pd.DataFrame:
    """One row per fitted metric: observations, seeds, variance components, floors, convergence, warnings."""
    return pd.DataFrame(
        [
            {
                "metric": f.metric,
                "n_obs": f.n_obs,
                "n_seeds": f.n_seeds,
                "seed_variance_pp2": f.seed_variance,
                "seed_variant_variance_pp2": f.seed_variant_variance,
                "residual_variance_pp2": f.residual_variance,
                "floor_fractions": ", ".join(f"{x:g}" for x in f.floors) or "none",
                "converged": f.converged,
                "warnings": "; ".join(f.warnings),
            }
            for f in fits
        ]
    )


def _sensitivity_table(fits: list[MixedResult], s: Settings) -> Table | None:
    """The linear and the binomial model per variant term, and whether they agree."""
    parts = [f.sensitivity.assign(metric=f.metric) for f in fits if f.sensitivity is not None]
    if not parts:
        return None
    raw = pd.concat(parts, ignore_index=True)
    disp = pd.DataFrame(
        {
            "metric": raw["metric"],
            "term": raw["term"],
            f"linear (pp) [{s.level}]": [
                format_interval(r.linear_estimate, r.linear_low, r.linear_high) for r in raw.itertuples()
            ],
            "linear p": raw["linear_p"].map(format_p),
            f"binomial (log-odds) [{s.level}]": [
                format_interval(r.binomial_estimate, r.binomial_low, r.binomial_high)
                for r in raw.itertuples()
            ],
            "binomial as pp at fraction 1": raw["binomial_pp"].map(lambda v: format_value(v, decimals=2)),
            "binomial p": raw["binomial_p"].map(format_p),
            "agree": raw["agree"].map({True: "yes", False: "NO"}),
        }
    )
    caption = "Bounded-outcome sensitivity: binomial GEE on correct / total counts beside the linear model"
    return Table("mixed_sensitivity", caption, raw, disp)


def _tables(fits: list[MixedResult], s: Settings) -> list[Table]:
    """Coefficients (Wald), likelihood-ratio tests, fit facts and the sensitivity model, raw and displayed."""
    coef = pd.concat([f.coefficients.assign(metric=f.metric) for f in fits], ignore_index=True)
    lrt = pd.concat([f.lrt.assign(metric=f.metric) for f in fits], ignore_index=True)
    fit = _fit_table(fits)
    coef_disp = pd.DataFrame(
        {
            "metric": coef["metric"],
            "term": coef["term"],
            f"estimate (pp) [{s.level} Wald]": [
                format_interval(r.estimate, r.low, r.high) for r in coef.itertuples(index=False)
            ],
            "p": coef["p_value"].map(format_p),
        }
    )
    lrt_disp = pd.DataFrame(
        {
            "metric": lrt["metric"],
            "test": lrt["test"],
            "chi2": lrt["chi2"].map(lambda v: format_value(v, decimals=2)),
            "df": lrt["df"],
            "p": lrt["p_value"].map(format_p),
        }
    )
    fit_disp = fit.drop(columns="warnings").assign(
        **{
            c: fit[c].map(format_value)
            for c in ("seed_variance_pp2", "seed_variant_variance_pp2", "residual_variance_pp2")
        }
    )
    lrt_caption = (
        "Likelihood-ratio tests (ML fits) of the variant effect and its interaction with data fraction"
    )
    tables = [
        Table(
            "mixed_coefficients",
            "Mixed-model coefficients in percentage points (Wald intervals)",
            coef,
            coef_disp,
        ),
        Table("mixed_tests", lrt_caption, lrt, lrt_disp),
        Table(
            "mixed_fit",
            "Mixed-model fits: variance components (squared pp), fractions at the floor, convergence",
            fit,
            fit_disp,
        ),
    ]
    sensitivity = _sensitivity_table(fits, s)
    return tables + ([sensitivity] if sensitivity is not None else [])


def _sensitivity_text(fits: list[MixedResult]) -> str:
    """How often the binomial model agrees with the linear one, in words."""
    tables = [f.sensitivity for f in fits if f.sensitivity is not None]
    if not tables:
        return "Bounded-outcome sensitivity model: no metric has correct / total counts, so none was fitted."
    rows = pd.concat(tables, ignore_index=True)
    disagree = int((~rows["agree"].astype(bool)).sum())
    verdict = (
        "they agree on every term (same sign, same decision)"
        if not disagree
        else f"they disagree on {disagree} of {len(rows)} (marked NO): read those terms with care"
    )
    return (
        "Bounded-outcome sensitivity model: the same fixed part fitted on the logit scale to each run's "
        "correct / total counts (binomial GEE, exchangeable correlation within a seed, bias-reduced "
        f"sandwich, t on seeds - 1 df); {verdict}."
    )


def build(study: Study, s: Settings) -> tuple[Section, list[MixedResult]]:
    """MixedLM per metric in percentage points; returns the section and the fits."""
    runs = study.standard["runs"]
    fits, failed = [], []
    for metric in s.metrics:
        try:
            fits.append(fit_mixed(runs, metric, reference=s.reference, alpha=s.alpha))
        except ValueError as exc:
            failed.append(f"{metric}: not fitted ({exc})")
    text = [
        f"Model per metric: metric_pp ~ C(variant, Treatment('{s.reference}')) * log2(data_fraction) "
        "+ (1 | seed) + (1 | seed:variant), fitted with statsmodels MixedLM in percentage points "
        "(REML for the coefficients and Wald intervals, ML fits with the same random part for the "
        "likelihood-ratio tests). The seed:variant variance component lets the variant effect differ "
        "between seeds; without it a variant effect that varies by seed made the likelihood-ratio test "
        "reject a true null too often (python -m analysis.validate). "
        "variant[v] is the difference to the reference at fraction 1; "
        "variant[v]:log2_fraction the change of that difference per doubling of the training data. "
        "Fractions at the floor (every run with the same value, e.g. the majority-class rate) are left "
        "out of the fit and named below: they carry no information and would inflate every interval."
    ]
    warned = [f"{f.metric}: {w}" for f in fits for w in f.warnings] + failed
    text.append(
        "Fit warnings: " + "; ".join(warned) + "."
        if warned
        else "Fit warnings: none (every fit converged, no singular random effect, no optimiser fallback)."
    )
    if not fits:
        return Section("Mixed-effects models", text), fits
    text.append(_sensitivity_text(fits))
    return Section("Mixed-effects models", text, _tables(fits, s)), fits
