"""Section "Mixed-effects models": one model per metric, likelihood-ratio tests and every fit warning."""

from __future__ import annotations

import pandas as pd

from analysis.report.document import Section, Settings, Study, Table
from analysis.report.format import format_interval, format_p, format_value
from analysis.stats.mixed import MixedResult, fit_mixed


def _fit_table(fits: list[MixedResult]) -> pd.DataFrame:
    """One row per fitted metric: observations, seeds, variance components, convergence, warnings."""
    return pd.DataFrame(
        [
            {
                "metric": f.metric,
                "n_obs": f.n_obs,
                "n_seeds": f.n_seeds,
                "seed_variance_pp2": f.seed_variance,
                "residual_variance_pp2": f.residual_variance,
                "converged": f.converged,
                "warnings": "; ".join(f.warnings),
            }
            for f in fits
        ]
    )


def _tables(fits: list[MixedResult], s: Settings) -> list[Table]:
    """Coefficients (Wald), likelihood-ratio tests and fit facts, raw and displayed."""
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
        seed_variance_pp2=fit["seed_variance_pp2"].map(format_value),
        residual_variance_pp2=fit["residual_variance_pp2"].map(format_value),
    )
    lrt_caption = (
        "Likelihood-ratio tests (ML fits) of the variant effect and its interaction with data fraction"
    )
    return [
        Table(
            "mixed_coefficients",
            "Mixed-model coefficients in percentage points (Wald intervals)",
            coef,
            coef_disp,
        ),
        Table("mixed_tests", lrt_caption, lrt, lrt_disp),
        Table(
            "mixed_fit", "Mixed-model fits: variance components (squared pp) and convergence", fit, fit_disp
        ),
    ]


def build(study: Study, s: Settings) -> tuple[Section, list[MixedResult]]:
    """MixedLM per metric in percentage points; returns the section and the fits."""
    runs = study.standard["runs"]
    fits = [fit_mixed(runs, m, reference=s.reference, alpha=s.alpha) for m in s.metrics]
    text = [
        f"Model per metric: metric_pp ~ C(variant, Treatment('{s.reference}')) * log2(data_fraction) "
        "+ (1 | seed), fitted with statsmodels MixedLM in percentage points "
        "(REML for the coefficients and Wald intervals, ML fits for the likelihood-ratio tests). "
        "variant[v] is the difference to the reference at fraction 1; "
        "variant[v]:log2_fraction the change of that difference per doubling of the training data."
    ]
    warned = [f"{f.metric}: {w}" for f in fits for w in f.warnings]
    text.append(
        "Fit warnings: " + "; ".join(warned) + "."
        if warned
        else "Fit warnings: none (every fit converged, no singular random effect, no optimiser fallback)."
    )
    return Section("Mixed-effects models", text, _tables(fits, s)), fits
