"""The report's later sections: per-example tests, learning curves, latency, power and claims.

Like :mod:`analysis.report_sections`, every estimate comes from the statistics modules; this module only
arranges their frames into tables, figures and sentences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import claims, figures
from analysis.report_sections import Section, Settings, Table, fraction_label, order_variants, pp_suffix
from analysis.stats import bias, curves, hierarchical, intervals, latency, power
from analysis.tables import format_interval, format_value, interval_cells, is_unit_metric


def predictions_section(tables: dict, s: Settings) -> Section:
    """Hierarchical bootstrap (seeds, then examples) and per-example McNemar tests."""
    preds, runs = tables["predictions"], tables["runs"]
    section = Section("Per-example analysis: hierarchical bootstrap and McNemar tests")
    if preds.empty:
        section.text.append("The study has no predictions table, so this section is skipped.")
        return section
    hb = hierarchical.hierarchical_bootstrap(preds, runs, metric="accuracy", **s.kw)
    hb_disp = order_variants(hb, s.reference).assign(
        data_fraction=lambda d: d["data_fraction"].map(fraction_label),
        cell=lambda d: interval_cells(d, estimate="estimate"),
    )[["variant", "data_fraction", "cell", "n_seeds", "n_examples"]]
    hb_disp = hb_disp.rename(columns={"cell": f"accuracy (pp) [{s.level}]"})
    mc = bias.mcnemar_tests(preds, runs, reference=s.reference)
    grouped = mc.groupby(["variant", "data_fraction"])
    mc_disp = pd.DataFrame(
        {
            "seeds": grouped.size(),
            "b (ref right, variant wrong)": grouped["b"].sum(),
            "c (variant right, ref wrong)": grouped["c"].sum(),
            f"seeds with p < {s.alpha:g}": grouped["p_value"].apply(lambda p: int((p < s.alpha).sum())),
        }
    ).reset_index()
    mc_disp["data_fraction"] = mc_disp["data_fraction"].map(fraction_label)
    section.text.append(
        "The hierarchical bootstrap resamples seeds, then test examples (one example resample shared by all "
        "runs "
        f"of a replicate, because every run is scored on the same test set); {s.n_boot} resamples, "
        "percentile "
        f"intervals. McNemar tests compare each variant with {s.reference} on the same seed and test "
        "examples "
        "(exact binomial test when discordant pairs are few); the per-seed table is in tables/mcnemar.csv, "
        "and "
        "the counts below are summed over seeds (uncorrected per-seed p-values)."
    )
    section.tables += [
        Table(
            "hierarchical",
            "Accuracy from the hierarchical bootstrap (seeds, then test examples)",
            hb,
            hb_disp,
        ),
        Table("mcnemar", f"McNemar tests against {s.reference}, summed over seeds", mc, mc_disp),
    ]
    if hierarchical.is_multiclass(preds):
        section.text.append("ROC and precision-recall curves are drawn for binary tasks only.")
        return section
    fig = figures.roc_pr_curves(preds, runs, reference=s.reference)[0]
    section.figures.append(("roc_pr", "Mean ROC and precision-recall curves over seeds", fig))
    return section


def curves_section(runs: pd.DataFrame, s: Settings) -> tuple[Section, pd.DataFrame]:
    """Learning curves, power-law fits, examples to a target and the generalization gap."""
    metric = s.metrics[0]
    lc = curves.learning_curve(runs, metric, **s.kw)
    section = Section("Learning curves and generalization")
    section.figures.append(
        (
            "learning_curves",
            f"Learning curves ({metric})",
            figures.learning_curves(lc, metric=metric, reference=s.reference)[0],
        )
    )
    section.tables.append(
        Table(
            "learning_curve",
            f"{metric} by training-set size [{s.level} interval]",
            lc,
            order_variants(lc, s.reference, ("variant", "n_train"))
            .assign(cell=lambda d: interval_cells(d))[["variant", "n_train", "n_seeds", "cell"]]
            .rename(columns={"cell": f"{metric}{pp_suffix(metric)}"}),
        )
    )
    ok = runs[runs["status"] == "ok"]
    if ok["n_train"].nunique() >= 3 and is_unit_metric(metric):
        pl = curves.power_law_fits(runs, metric=metric, **s.kw)
        pl_disp = pl[["variant", "n_seeds"]].copy()
        for p in "abc":
            pl_disp[p] = [format_interval(r[p], r[f"{p}_low"], r[f"{p}_high"]) for _, r in pl.iterrows()]
        means = ok.groupby(["variant", "n_train"])[metric].mean()
        # a target every variant reaches at the largest training set, so no answer is an extrapolation
        target = float(np.floor(means.xs(ok["n_train"].max(), level="n_train").min() * 100) / 100)
        et = curves.examples_to_target(runs, target, metric=metric, reference=s.reference, **s.kw)
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
            f"{metric} {target:.2f} (the lowest variant mean at the largest training set) come from these "
            "fits."
        )
        section.tables += [
            Table("power_law", f"Power-law fits 1 - {metric} = a n^-b + c [{s.level} interval]", pl, pl_disp),
            Table(
                "examples_to_target", f"Training examples needed to reach {metric} {target:.2f}", et, et_disp
            ),
        ]
    else:
        section.text.append(
            "Power-law fits need at least three training-set sizes and a metric in [0, 1]; skipped."
        )
    gap_runs = ok.assign(generalization_gap=ok["train_accuracy"] - ok["accuracy"])
    gap = intervals.seed_summary(gap_runs, "generalization_gap", **s.kw)
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
    section.figures.append(
        (
            "generalization_gap",
            "Generalization gap",
            figures.generalization_gap_plot(gap, reference=s.reference)[0],
        )
    )
    return section, gap


def _adjustment_text(lr: pd.DataFrame) -> str:
    done = lr[lr["adjusted"]]
    not_done = lr.loc[~lr["adjusted"], ["batch_size", "memory_format"]].drop_duplicates()
    text = (
        "Speed-adjusted: this machine's speed drifts over seconds, so every timed pass was preceded by a "
        "fixed reference workload (six small matrix products), and each pass's time is rescaled by the "
        "reference time measured just before it to the study's typical reference time "
        f"({done['speed_ms'].iloc[0]:.3g} ms), with a slope fitted per variant, batch size and format "
        f"({done['slope'].min():.2f} to {done['slope'].max():.2f}; 1 would mean the model slows down "
        "exactly as much as the reference) and re-fitted in every bootstrap resample. The raw columns "
        "are the unadjusted medians."
    )
    if not not_done.empty:
        blocks = ", ".join(f"batch {b} {f}" for b, f in not_done.itertuples(index=False))
        text += f" Not adjusted (runs without reference timings or too few runs): {blocks}."
    return text


def _precision_text(lr: pd.DataFrame, level: str, adjusted: bool) -> list[str]:
    """Widest interval of a median, as ± % of the median, per batch size (raw too when adjusted)."""
    out = []
    for prefix, what in (("", "speed-adjusted " if adjusted else ""), ("raw_", "raw ")):
        if prefix and not adjusted:
            break
        rows = lr[lr["adjusted"]] if what == "speed-adjusted " else lr  # adjusted blocks only, if labelled so
        median = rows[f"{prefix}median_ms"]
        half = (
            np.maximum(median - rows[f"{prefix}median_low"], rows[f"{prefix}median_high"] - median) / median
        )
        worst = rows.assign(half=half).sort_values("half").groupby("batch_size", sort=True).tail(1)
        parts = [
            f"batch {w.batch_size}: ±{100 * w.half:.1f} % ({w.variant}, {w.memory_format})"
            for w in worst.sort_values("batch_size").itertuples(index=False)
        ]
        out.append(
            f"Precision of the {what}medians: the widest {level} interval, as a share of its median, is "
            + "; ".join(parts)
            + "."
        )
    return out


def _examples(n: float, low: float, high: float) -> str:
    if not np.isfinite(n):
        return "not reached"
    hi = "not reached" if not np.isfinite(high) else f"{high:,.0f}"
    return f"{n:,.0f} [{low:,.0f}, {hi}]"


def latency_section(tables: dict, s: Settings) -> tuple[Section, pd.DataFrame | None]:
    """Latency ratios of medians against the reference, and accuracy against cost."""
    section = Section("CPU latency")
    if tables["latency"].empty:
        section.text.append(
            "The study has no latency measurements (empty latency table), so this section is skipped."
        )
        return section, None
    runs = tables["runs"]
    lr = latency.latency_ratios(tables["latency"], runs, reference=s.reference, **s.kw)
    disp = order_variants(lr, s.reference, ("variant", "batch_size", "memory_format"))
    adjusted = bool(lr["adjusted"].any())
    cols = {
        "variant": disp["variant"],
        "batch_size": disp["batch_size"],
        "memory_format": disp["memory_format"],
        f"median ms [{s.level}]": [
            format_interval(r.median_ms, r.median_low, r.median_high) for r in disp.itertuples(index=False)
        ],
        f"ratio vs {s.reference} [{s.level}]": [
            format_interval(r.ratio, r.low, r.high) for r in disp.itertuples(index=False)
        ],
    }
    if adjusted:
        cols[f"raw median ms [{s.level}]"] = [
            format_interval(r.raw_median_ms, r.raw_median_low, r.raw_median_high)
            for r in disp.itertuples(index=False)
        ]
        cols[f"raw ratio [{s.level}]"] = [
            format_interval(r.raw_ratio, r.raw_low, r.raw_high) for r in disp.itertuples(index=False)
        ]
        cols["slope"] = [f"{v:.2f}" if np.isfinite(v) else "" for v in disp["slope"]]
    disp = pd.DataFrame(cols)
    section.text.append(
        f"Ratio of median latency (variant / {s.reference}) per batch size, with {s.level} intervals from a "
        f"bootstrap over seeds and over timing repeats within runs ({s.n_boot} resamples, log scale); "
        "below 1 is faster."
    )
    if adjusted:
        section.text.append(_adjustment_text(lr))
    section.text.extend(_precision_text(lr, s.level, adjusted))
    section.tables.append(Table("latency", f"Latency: ratio of medians against {s.reference}", lr, disp))
    section.figures.append(("latency_ratio", "Latency ratios (log scale)", figures.latency_ratio_plot(lr)[0]))
    cost = _latency_vs_flops(lr, runs, s.reference)
    if cost is not None:
        raw, disp_cost, note = cost
        section.text.append(note)
        section.tables.append(
            Table("latency_vs_flops", "Latency against FLOPs and the published single run", raw, disp_cost)
        )
    ok = runs[runs["status"] == "ok"]
    largest = ok[ok["data_fraction"] == ok["data_fraction"].max()]
    metric = s.metrics[0]
    trade = intervals.seed_summary(largest, metric, by=("variant",), **s.kw)
    fmt = "contiguous" if (lr["memory_format"] == "contiguous").any() else sorted(lr["memory_format"])[0]
    lr_fmt = lr[lr["memory_format"] == fmt]
    small, big = lr_fmt["batch_size"].min(), lr_fmt["batch_size"].max()
    at = lr_fmt.set_index(["variant", "batch_size"])["median_ms"]
    trade["median_ms"] = [at.get((v, small), np.nan) for v in trade["variant"]]
    trade["throughput"] = [big * 1000.0 / at.get((v, big), np.nan) for v in trade["variant"]]
    trade["params"] = trade["variant"].map(ok.groupby("variant")["params"].median())
    fig = figures.tradeoff_plot(trade, metric=metric, reference=s.reference)[0]
    section.figures.append(
        (
            "tradeoff",
            f"{metric} at the largest data fraction vs latency (batch {small}), parameters and "
            f"throughput (batch {big})",
            fig,
        )
    )
    return section, lr


# The published chest X-ray LeNet study: one timing per variant, ms per batch of 32 at 320x320.
PUBLISHED_MS_BATCH32 = {"maxpool": 168.7, "avgpool": 78.2, "strided": 50.8}


def _latency_vs_flops(lr: pd.DataFrame, runs: pd.DataFrame, reference: str):
    """FLOP ratios beside measured latency ratios (FLOPs do not predict CPU time), and published ratios."""
    ok = runs[runs["status"] == "ok"]
    flops = ok.groupby("variant")["flops"].median()
    if reference not in flops.index or not np.isfinite(flops.get(reference, np.nan)):
        return None
    batch = lr["batch_size"].max()
    at = lr[lr["batch_size"] == batch]
    raw = at[["variant", "memory_format", "batch_size", "median_ms", "ratio", "low", "high"]].copy()
    raw["mflops_per_image"] = raw["variant"].map(flops) / 1e6
    raw["flops_ratio"] = raw["variant"].map(flops / flops[reference])
    published = pd.Series(PUBLISHED_MS_BATCH32)
    raw["published_ratio"] = (
        raw["variant"].map(published / published[reference]) if reference in published else np.nan
    )
    disp = pd.DataFrame(
        {
            "variant": raw["variant"],
            "memory_format": raw["memory_format"],
            "MFLOPs / image": raw["mflops_per_image"].map(format_value),
            f"FLOPs ratio vs {reference}": raw["flops_ratio"].map(format_value),
            f"latency ratio vs {reference} (batch {batch})": [
                format_interval(r.ratio, r.low, r.high) for r in raw.itertuples(index=False)
            ],
            "published ratio (1 run, 320x320, batch 32)": raw["published_ratio"].map(
                lambda v: format_value(v) if np.isfinite(v) else "n/a"
            ),
        }
    )
    note = (
        "FLOPs against measured time: a FLOPs ratio far from the latency ratio means FLOPs do not "
        "predict CPU time (pooling costs memory traffic, not multiply-adds). The last column gives the "
        "published single-run ratios (max : avg : strided = 168.7 : 78.2 : 50.8 ms per batch of 32 at "
        "320x320, timed once per epoch with data loading inside the timer); ours are medians over repeats "
        f"and seeds with intervals, at this study's input size and batch {batch}."
    )
    return raw, disp, note


def power_section(runs: pd.DataFrame, s: Settings, effect: float = 0.01) -> tuple[Section, pd.DataFrame]:
    """Minimum detectable difference at the study's seed count and seeds needed for ``effect``."""
    pw = power.power_analysis(runs, s.metrics, reference=s.reference, alpha=s.alpha, effect=effect)
    disp = pd.DataFrame(
        {
            "metric": pw["metric"],
            "seeds": pw["n_seeds"],
            "paired SD": [
                format_value(v, percent=is_unit_metric(m))
                for v, m in zip(pw["seed_sd"], pw["metric"], strict=True)
            ],
            "min. detectable diff.": [
                format_value(v, percent=is_unit_metric(m))
                for v, m in zip(pw["mde"], pw["metric"], strict=True)
            ],
            f"seeds for {format_value(effect, percent=True)} pp": pw["seeds_needed"],
        }
    )
    text = [
        "From the pooled SD of the paired (same-seed) differences to the reference: the smallest difference "
        f"detectable with 80 % power at alpha {s.alpha:g} (two-sided) with the study's seeds, and the seeds "
        f"needed to detect a difference of {format_value(effect, percent=True)} pp (SD and differences in pp "
        "for metrics in [0, 1])."
    ]
    return Section(
        "Statistical power",
        text,
        [Table("power", "Power: minimum detectable difference and seeds needed", pw, disp)],
    ), pw


def claims_section(tables: dict, s: Settings) -> tuple[Section, pd.DataFrame]:
    """Each published single-run claim tested, with a verdict."""
    cl = claims.evaluate_claims(
        {"runs": tables["runs"], "latency": tables["latency"]}, reference=s.reference, **s.kw
    )
    disp = pd.DataFrame(
        {
            "claim": cl["claim"],
            "test": cl["test"],
            f"estimate [{s.level}]": [format_interval(r.estimate, r.low, r.high) for r in cl.itertuples()],
            "verdict": cl["verdict"],
            "detail": cl["detail"],
        }
    )
    text = [
        "Claims of published single-run studies, each tested against this study's seeds: supported (the "
        "interval agrees), contradicted (the interval disagrees) or not resolved at this seed count."
    ]
    return Section(
        "Claims of single-run studies", text, [Table("claims", "Published claims and verdicts", cl, disp)]
    ), cl
