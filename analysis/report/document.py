"""The report's sections: statistics (from the stats modules) -> tables, figures and sentences.

``report.py`` renders the returned :class:`Section` objects to Markdown and LaTeX and writes the files;
this module computes nothing itself beyond descriptive formatting (every estimate and interval comes from
``analysis.bootstrap``, ``mixed``, ``bias``, ``latency``, ``curves``, ``power`` and ``claims``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis import figures
from analysis.stats import bias, contrasts, intervals, mixed
from analysis.tables import format_interval, format_p, format_value, interval_cells, is_unit_metric


@dataclass
class Table:
    """One table: ``raw`` (tidy, full precision) goes to CSV/Parquet, ``display`` to Markdown/LaTeX."""

    name: str
    caption: str
    raw: pd.DataFrame
    display: pd.DataFrame
    note: str | None = None


@dataclass
class Section:
    """A titled part of the report: paragraphs, tables and figures (``(name, caption, fig)``)."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str, object]] = field(default_factory=list)


@dataclass
class Settings:
    """The analysis choices of one report (CLI flags)."""

    reference: str
    metrics: list[str]
    n_boot: int
    alpha: float
    seed: int

    @property
    def kw(self) -> dict:
        return {"n_boot": self.n_boot, "alpha": self.alpha, "seed": self.seed}

    @property
    def level(self) -> str:
        return f"{100 * (1 - self.alpha):g} %"


def fraction_label(value: float) -> str:
    """``"pooled"`` for the NaN fraction of pooled rows, else the fraction as text."""
    return "pooled" if pd.isna(value) else f"{value:g}"


def order_variants(frame: pd.DataFrame, reference: str, by=("variant", "data_fraction")) -> pd.DataFrame:
    """Rows with the reference variant first, then other variants and ``by`` columns in sorted order."""
    key = frame["variant"].astype(str).map(lambda v: (v != reference, v))
    cols = [c for c in by if c != "variant"]
    return frame.assign(_k=key).sort_values(["_k", *cols], na_position="last").drop(columns="_k")


def pp_suffix(metric: str) -> str:
    """`` (pp)`` for metrics shown in percentage points, else nothing."""
    return " (pp)" if is_unit_metric(metric) else ""


def metrics_section(runs: pd.DataFrame, s: Settings) -> Section:
    """Mean and interval of each metric per variant x fraction (t below 10 seeds, BCa from 10)."""
    summ = pd.concat([intervals.seed_summary(runs, m, **s.kw) for m in s.metrics], ignore_index=True)
    summ["cell"] = interval_cells(summ)
    disp = summ.pivot_table(
        index=["variant", "data_fraction"], columns="metric", values="cell", aggfunc="first", sort=False
    )[s.metrics].reset_index()
    first = summ[summ["metric"] == s.metrics[0]].set_index(["variant", "data_fraction"])
    keys = list(zip(disp["variant"], disp["data_fraction"], strict=True))
    disp.insert(2, "seeds", [first.loc[k, "n_seeds"] for k in keys])
    disp.insert(3, "interval", [first.loc[k, "method"] for k in keys])
    disp = order_variants(disp, s.reference)
    disp["data_fraction"] = disp["data_fraction"].map(fraction_label)
    disp.columns = [f"{c}{pp_suffix(c)}" if c in s.metrics else c for c in disp.columns]
    text = [
        f"Mean over seeds with {s.level} intervals: Student t below 10 seeds, BCa bootstrap over seeds "
        f"({s.n_boot} resamples) from 10 seeds on. Metrics in [0, 1] are shown in percentage points (pp)."
    ]
    caption = f"Test metrics by variant and data fraction, mean [{s.level} interval] over seeds"
    return Section(
        "Accuracy and metrics by variant and data fraction",
        text,
        [Table("metrics", caption, summ.drop(columns="cell"), disp)],
    )


def contrasts_section(runs: pd.DataFrame, s: Settings) -> tuple[Section, pd.DataFrame]:
    """Paired differences to the reference per fraction and pooled, Holm-adjusted."""
    pc = contrasts.paired_contrasts(runs, s.metrics, reference=s.reference, **s.kw)
    disp = pd.DataFrame(
        {
            "metric": pc["metric"],
            "variant": pc["variant"],
            "data_fraction": pc["data_fraction"].map(fraction_label),
            "seeds": pc["n_seeds"],
            f"difference [{s.level}]": interval_cells(pc, estimate="diff"),
            "p": pc["p_value"].map(format_p),
            "p (Holm)": pc["p_holm"].map(format_p),
            "d_z": pc["dz"].map(lambda v: format_value(v, decimals=2)),
            "P(variant > ref)": pc["prob_superior"].map(lambda v: format_value(v, decimals=2)),
        }
    )
    text = [
        f"Differences are variant minus {s.reference} on the same seed (pp for metrics in [0, 1]); "
        f"intervals come from a bootstrap that resamples seeds jointly across variants ({s.n_boot} "
        "resamples, "
        f"method: {', '.join(sorted(set(pc['method'])))}). p-values are Holm-adjusted across the whole "
        "family "
        f"of {len(pc)} contrasts (metrics x fractions x variants, pooled rows included). "
        "d_z is the mean paired difference over its SD; P(variant > ref) the share of seeds where the "
        "variant wins."
    ]
    fig = figures.forest_plot(pc)[0]
    caption = f"Paired contrasts against {s.reference}, difference [{s.level} interval]"
    table = Table(
        "contrasts", caption, pc, disp, note="p (Holm): Holm-adjusted across every row of this table."
    )
    return Section(
        f"Paired contrasts against {s.reference}",
        text,
        [table],
        [("contrasts", "Forest plot of the paired contrasts", fig)],
    ), pc


def mixed_section(runs: pd.DataFrame, s: Settings) -> tuple[Section, list]:
    """MixedLM per metric in percentage points, with LRTs and every fit warning."""
    fits = [mixed.fit_mixed(runs, m, reference=s.reference, alpha=s.alpha) for m in s.metrics]
    coef = pd.concat([f.coefficients.assign(metric=f.metric) for f in fits], ignore_index=True)
    lrt = pd.concat([f.lrt.assign(metric=f.metric) for f in fits], ignore_index=True)
    fit = pd.DataFrame(
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
    text = [
        f"Model per metric: metric_pp ~ C(variant, Treatment('{s.reference}')) * log2(data_fraction) + (1 | "
        "seed), "
        "fitted with statsmodels MixedLM in percentage points (REML for the coefficients and Wald intervals, "
        "ML fits for the likelihood-ratio tests). variant[v] is the difference to the reference at fraction "
        "1; "
        "variant[v]:log2_fraction the change of that difference per doubling of the training data."
    ]
    warned = [f"{f.metric}: {w}" for f in fits for w in f.warnings]
    text.append(
        "Fit warnings: " + "; ".join(warned) + "."
        if warned
        else "Fit warnings: none (every fit converged, no singular random effect, no optimiser fallback)."
    )
    tabs = [
        Table(
            "mixed_coefficients",
            "Mixed-model coefficients in percentage points (Wald intervals)",
            coef,
            coef_disp,
        ),
        Table(
            "mixed_tests",
            "Likelihood-ratio tests (ML fits) of the variant effect and its interaction with data fraction",
            lrt,
            lrt_disp,
        ),
        Table(
            "mixed_fit", "Mixed-model fits: variance components (squared pp) and convergence", fit, fit_disp
        ),
    ]
    return Section("Mixed-effects models", text, tabs), fits


BIAS_MEASURES = ("fpr", "fnr", "ppr_over_prevalence", "criterion_c", "dprime")


def bias_section(runs: pd.DataFrame, s: Settings) -> tuple[Section, pd.DataFrame]:
    """FP/FN bias measures with intervals and contrasts; over-calling only when the interval says so."""
    bs = bias.bias_summary(runs, reference=s.reference, **s.kw)
    bs = bs[bs["measure"].isin(BIAS_MEASURES)]
    levels = bs.assign(cell=interval_cells(bs, metric_column="measure")).pivot_table(
        index=["variant", "data_fraction"], columns="measure", values="cell", aggfunc="first", dropna=False
    )
    levels = order_variants(levels[[m for m in BIAS_MEASURES if m in levels]].reset_index(), s.reference)
    levels["data_fraction"] = levels["data_fraction"].map(fraction_label)
    others = bs[bs["variant"] != s.reference]
    diffs = others.assign(
        cell=interval_cells(
            others, estimate="diff_vs_reference", low="diff_low", high="diff_high", metric_column="measure"
        )
    ).pivot_table(
        index=["variant", "data_fraction"], columns="measure", values="cell", aggfunc="first", dropna=False
    )
    over = others.groupby(["variant", "data_fraction"], dropna=False)["over_calls"].any()
    diffs = diffs[[m for m in BIAS_MEASURES if m in diffs]]
    diffs["over-calls"] = over.reindex(diffs.index).map({True: "yes", False: "no"})
    diffs = order_variants(diffs.reset_index(), s.reference)
    diffs["data_fraction"] = diffs["data_fraction"].map(fraction_label)
    text = [
        "FPR and FNR in pp; ppr_over_prevalence is the predicted-positive rate over the prevalence (1 = "
        "calibrated "
        "base rate); criterion_c > 0 means a conservative (negative-leaning) criterion, d' the separation. "
        f"A variant over-calls the positive class only when its {s.level} interval of the difference in "
        "ppr/prevalence or FPR against the reference lies entirely above 0."
    ]
    fig_bias = figures.bias_plot(bs, reference=s.reference)[0]
    fig_cm = figures.confusion_matrices(runs, reference=s.reference)[0]
    tabs = [
        Table("bias", f"Bias measures by variant and fraction, mean [{s.level} interval]", bs, levels),
        Table(
            "bias_contrasts",
            f"Bias measures: difference to {s.reference} [{s.level} interval]",
            others,
            diffs,
        ),
    ]
    figs = [
        ("bias", "False-positive vs false-negative rate", fig_bias),
        ("confusion", "Mean confusion matrices", fig_cm),
    ]
    return Section("Decision bias: false positives and false negatives", text, tabs, figs), bs
