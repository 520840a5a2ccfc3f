"""Section "Learning curves and generalization": curves, power-law fits, examples to a target, the gap."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.report.document import (
    Section,
    Settings,
    Study,
    Table,
    fraction_label,
    order_variants,
    pp_suffix,
)
from analysis.report.figures import generalization_gap_plot, learning_curves
from analysis.report.format import format_interval, interval_cells, is_unit_metric
from analysis.stats.curves import examples_to_target, learning_curve, power_law_fits
from analysis.stats.intervals import seed_summary


def _examples(n: float, low: float, high: float) -> str:
    if not np.isfinite(n):
        return "not reached"
    hi = "not reached" if not np.isfinite(high) else f"{high:,.0f}"
    return f"{n:,.0f} [{low:,.0f}, {hi}]"


def _power_law(section: Section, runs: pd.DataFrame, metric: str, s: Settings) -> None:
    """Power-law fits per variant and the examples each needs to reach a target every variant reaches."""
    ok = runs[runs["status"] == "ok"]
    pl = power_law_fits(runs, metric=metric, **s.kw)
    pl_disp = pl[["variant", "n_seeds"]].copy()
    for p in "abc":
        pl_disp[p] = [format_interval(r[p], r[f"{p}_low"], r[f"{p}_high"]) for _, r in pl.iterrows()]
    means = ok.groupby(["variant", "n_train"])[metric].mean()
    # a target every variant reaches at the largest training set, so no answer is an extrapolation
    target = float(np.floor(means.xs(ok["n_train"].max(), level="n_train").min() * 100) / 100)
    et = examples_to_target(runs, target, metric=metric, reference=s.reference, **s.kw)
    et_disp = pd.DataFrame(
        {
            "variant": et["variant"],
            "examples needed": [_examples(r.n_needed, r.low, r.high) for r in et.itertuples()],
            f"ratio vs {s.reference}": [
                format_interval(r.ratio_vs_reference, r.ratio_low, r.ratio_high) for r in et.itertuples()
            ],
            "extrapolated": et["extrapolated"].map({True: "yes", False: "no"}),
        }
    )
    section.text.append(
        f"Power law per variant: 1 - {metric} = a * n^-b + c, fitted to the seed-mean curve, with seeds "
        f"bootstrapped jointly ({s.n_boot} resamples, percentile intervals). Examples needed to reach "
        f"{metric} {target:.2f} (the lowest variant mean at the largest training set) come from these fits."
    )
    section.tables += [
        Table("power_law", f"Power-law fits 1 - {metric} = a n^-b + c [{s.level} interval]", pl, pl_disp),
        Table("examples_to_target", f"Training examples needed to reach {metric} {target:.2f}", et, et_disp),
    ]


def _generalization_gap(section: Section, study: Study, s: Settings) -> pd.DataFrame:
    """Train accuracy - test accuracy per variant and fraction, with intervals and a figure."""
    ok = study.standard["runs"]
    ok = ok[ok["status"] == "ok"]
    gap = seed_summary(
        ok.assign(generalization_gap=ok["train_accuracy"] - ok["accuracy"]), "generalization_gap", **s.kw
    )
    gap_disp = (
        order_variants(gap, s.reference)
        .assign(
            data_fraction=lambda d: d["data_fraction"].map(fraction_label), cell=lambda d: interval_cells(d)
        )[["variant", "data_fraction", "n_seeds", "cell"]]
        .rename(columns={"cell": "train - test accuracy (pp)"})
    )
    section.text.append(
        "Generalization gap = train accuracy - test accuracy, mean over seeds with intervals."
    )
    section.tables.append(
        Table("generalization_gap", f"Generalization gap [{s.level} interval]", gap, gap_disp)
    )
    fig = generalization_gap_plot(gap, palette=study.palette)[0]
    section.figures.append(("generalization_gap", "Generalization gap", fig))
    return gap


def build(study: Study, s: Settings) -> tuple[Section, pd.DataFrame]:
    """Learning curves of the primary metric, power-law fits when the design allows, and the gap."""
    runs = study.standard["runs"]
    metric = s.metrics[0]
    lc = learning_curve(runs, metric, **s.kw)
    section = Section("Learning curves and generalization")
    fig = learning_curves(lc, metric=metric, palette=study.palette)[0]
    section.figures.append(("learning_curves", f"Learning curves ({metric})", fig))
    lc_disp = (
        order_variants(lc, s.reference, ("variant", "n_train"))
        .assign(cell=lambda d: interval_cells(d))[["variant", "n_train", "n_seeds", "cell"]]
        .rename(columns={"cell": f"{metric}{pp_suffix(metric)}"})
    )
    section.tables.append(
        Table("learning_curve", f"{metric} by training-set size [{s.level} interval]", lc, lc_disp)
    )
    ok = runs[runs["status"] == "ok"]
    if ok["n_train"].nunique() >= 3 and is_unit_metric(metric):
        _power_law(section, runs, metric, s)
    else:
        section.text.append(
            "Power-law fits need at least three training-set sizes and a metric in [0, 1]; skipped."
        )
    return section, _generalization_gap(section, study, s)
