"""The report's "Calibration" and "Inductive bias" sections: statistics -> tables, figures and sentences.

Every estimate comes from :mod:`analysis.inductive`, :mod:`analysis.reliability`,
:mod:`analysis.kernels` and :mod:`analysis.bootstrap`; this module arranges them. The calibration section
appears in every report; the inductive-bias section when :func:`analysis.inductive.has_inductive_design`
says the study has something to test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import figures, inductive
from analysis import figures_inductive as fi
from analysis.report_sections import Section, Settings, Table, fraction_label, order_variants
from analysis.stats import calibration as reliability
from analysis.stats import kernels
from analysis.stats.contrasts import paired_contrasts
from analysis.stats.intervals import seed_summary
from analysis.tables import format_interval, format_p, format_value, interval_cells

ECE_BINS = 15  # the bins of the runs table's ece column (downscalexr.metrics.ECE_BINS)
METRIC = "accuracy"  # the metric of H1-H3 and H5
BAND_RESAMPLES = 2000  # resamples of a figure band: its percentiles are stable to ~1 pp at 2,000


def _at_base(runs: pd.DataFrame) -> pd.DataFrame:
    """Design rows (every model, with ``arm``) at the base level of permute, shift and init."""
    d = inductive.design_frame(runs)
    keep = np.ones(len(d), dtype=bool)
    for factor, level in inductive.base_levels(runs).items():
        keep &= (d[factor] == level).to_numpy()
    return d[keep]


def calibration_section(tables: dict, s: Settings) -> tuple[Section, pd.DataFrame]:
    """ECE per model/variant with intervals and contrasts, and pooled reliability diagrams with bands."""
    runs = tables["runs"]
    rows = _at_base(runs)
    section = Section("Calibration")
    ok = rows[rows["status"] == "ok"]
    if ok["ece"].isna().all():
        section.text.append("No run has an ECE value, so the calibration summary is skipped.")
        ece = pd.DataFrame()
    else:
        ece = seed_summary(ok, "ece", by=("arm", "data_fraction"), **s.kw)
        disp = order_variants(ece.rename(columns={"arm": "variant"}), s.reference)
        disp = disp.assign(data_fraction=disp["data_fraction"].map(fraction_label), cell=interval_cells(disp))
        disp = disp[["variant", "data_fraction", "n_seeds", "method", "cell"]].rename(
            columns={"variant": "model / variant", "cell": f"ECE (pp) [{s.level}]"}
        )
        section.text.append(
            f"Expected calibration error (ECE, {ECE_BINS} equal-width bins; binary tasks: P(positive) "
            "against "
            "the label, multi-class: top-label confidence against correctness) per run, mean over seeds with "
            f"{s.level} intervals (t below 10 seeds, BCa from 10). Lower is better calibrated."
        )
        section.tables.append(
            Table("ece", f"ECE by model/variant and fraction [{s.level} interval]", ece, disp)
        )
        cnn = inductive.base_runs(runs)
        if cnn["variant"].nunique() > 1 and s.reference in set(cnn["variant"]):
            pc = paired_contrasts(cnn, "ece", reference=s.reference, **s.kw)
            pc_disp = pd.DataFrame(
                {"variant": pc["variant"], "data_fraction": pc["data_fraction"].map(fraction_label),
                 "seeds": pc["n_seeds"],
                 f"ECE difference (pp) [{s.level}]": interval_cells(pc, estimate="diff"),
                 "p (Holm)": pc["p_holm"].map(format_p)}
            )  # fmt: skip
            section.tables.append(
                Table("ece_contrasts", f"ECE: variant - {s.reference}, paired by seed", pc, pc_disp,
                      note="p (Holm): Holm-adjusted across the rows of this table.")
            )  # fmt: skip
    preds = tables["predictions"]
    if preds.empty:
        section.text.append("The study has no predictions table, so no reliability diagram is drawn.")
        return section, ece
    largest = ok[ok["data_fraction"] == ok["data_fraction"].max()]
    n_band = min(s.n_boot, BAND_RESAMPLES)
    curve = reliability.reliability_curve(
        preds, largest, by=("arm",), n_bins=ECE_BINS, n_boot=n_band, alpha=s.alpha, seed=s.seed
    )
    if curve.empty:
        section.text.append("No predictions of successful runs, so no reliability diagram is drawn.")
        return section, ece
    binary = reliability.is_binary(preds[preds["run_id"].isin(largest["run_id"])])
    summary = []
    for arm, part in curve.groupby("arm", sort=True):
        pooled_ece = reliability.expected_calibration_error(part)
        outside = ((part["confidence"] < part["low"]) | (part["confidence"] > part["high"])).sum()
        summary.append({"model / variant": arm, "runs": int(part["n_runs"].max()),
                        "predictions": int(part["count"].sum()),
                        "pooled ECE (pp)": format_value(pooled_ece, percent=True),
                        "bins off the diagonal": f"{int(outside)} of {len(part)}"})  # fmt: skip
    section.text.append(
        f"Reliability diagrams at data fraction {largest['data_fraction'].max():g}: predictions of "
        "every seed "
        f"pooled into {ECE_BINS} bins ("
        + (
            "P(positive) against the fraction of positive labels"
            if binary
            else "top-label confidence against accuracy"
        )  # fmt: skip
        + f"). Bands: {s.level} two-level percentile bootstrap (seeds, then test examples shared by "
        "all runs; "
        f"{n_band} resamples). A bin is 'off the diagonal' when its band excludes its mean confidence."
    )
    section.tables.append(
        Table("reliability", "Reliability: pooled calibration per model/variant", curve,
              order_variants(pd.DataFrame(summary).rename(columns={"model / variant": "variant"}),
                             s.reference,
                             by=("variant",)).rename(columns={"variant": "model / variant"}))
    )  # fmt: skip
    fig = fi.reliability_diagram(curve, group="arm", binary=binary, reference=s.reference)[0]
    section.figures.append(("reliability", "Reliability diagrams pooled over seeds, with bands", fig))
    return section, ece


def _evidence(parts: pd.DataFrame) -> str:
    cells = []
    for r in parts.itertuples():
        cell = format_interval(r.estimate, r.low, r.high, percent=True)
        cells.append(f"{r.part}: {cell} ({r.verdict})")
    return "; ".join(cells)


def inductive_section(
    tables: dict, s: Settings, margin: float = inductive.DEFAULT_MARGIN
) -> tuple[Section, dict]:
    """Hypotheses first, then their paired tests and verdicts, shift consistency and first-layer kernels."""
    runs = tables["runs"]
    tests, hyp, notes = inductive.inductive_tests(runs, reference=s.reference, metric=METRIC, margin=margin,
                                                  **s.kw)  # fmt: skip
    section = Section("Inductive bias")
    tested = list(dict.fromkeys(hyp["hypothesis"]))
    if tested:
        section.text.append(
            "Hypotheses, stated before the numbers (each is tested only where the study has the levels it "
            "needs; contrasts on test accuracy, shift consistency for H4):"
        )
    else:
        section.text.append("No inductive-bias hypothesis can be tested with this study's levels:")
    section.text += [f"{h}: {inductive.HYPOTHESES[h]}" for h in tested]
    section.text += notes
    if not tests.empty:
        pp = f"{100 * margin:g} percentage points"
        eq = f"{100 * (1 - 2 * s.alpha):g} %"
        section.text.append(
            "Design: factors a hypothesis does not vary are held at their base level (unpermuted, no "
            "location shift, random init); every contrast is taken within a seed and a data fraction and "
            "then averaged over the fractions, so each seed gives one paired value. Intervals: "
            f"{s.level}, Student t below 10 seeds, BCa bootstrap over seeds from 10 ({s.n_boot} "
            f"resamples). Equivalence margin: +-{pp}."
        )
        section.text.append(
            "Verdict rules. Directional claim: supported when the Holm-adjusted paired t-test p < "
            f"{s.alpha:g} and the estimate is on the claimed side; not supported when the {s.level} "
            f"interval lies on the other side, or the {eq} interval lies within +-{pp} (no effect as "
            "large as the margin); inconclusive otherwise. 'Disappears' (equivalence, TOST): supported "
            f"when the Holm-adjusted TOST p < {s.alpha:g} (for one test: the {eq} interval inside "
            f"+-{pp}); not supported when the {s.level} interval excludes 0; inconclusive otherwise. A "
            "hypothesis with several parts is supported when all parts are, not supported when any part "
            f"is. Holm's correction runs over all {int(tests['in_family'].sum())} tests of this section."
        )
    result = {"tests": tests, "hypotheses": hyp, "notes": notes, "margin": margin}
    if len(hyp):
        family = tests[tests["in_family"].astype(bool)]
        evidence = [_evidence(family[(family["hypothesis"] == h) & (family["subject"] == sub)])
                    for h, sub in zip(hyp["hypothesis"], hyp["subject"], strict=True)]  # fmt: skip
        disp = pd.DataFrame({"hypothesis": hyp["hypothesis"], "subject": hyp["subject"],
                             "verdict": hyp["verdict"], f"evidence, pp [{s.level}]": evidence})  # fmt: skip
        section.tables.append(
            Table("inductive_hypotheses", "Inductive-bias hypotheses and verdicts", hyp, disp)
        )
        t_disp = pd.DataFrame(
            {"hypothesis": tests["hypothesis"], "subject": tests["subject"], "part": tests["part"],
             "contrast": tests["contrast"], "seeds": tests["n_seeds"],
             f"estimate (pp) [{s.level}]": [format_interval(r.estimate, r.low, r.high, percent=True)
                                           for r in tests.itertuples()],
             f"{100 * (1 - 2 * s.alpha):g} % interval": [
                 format_interval(r.estimate, r.low_eq, r.high_eq, percent=True) for r in tests.itertuples()],
             "p": tests["p_value"].map(format_p), "p (Holm)": tests["p_holm"].map(format_p),
             "verdict": tests["verdict"].replace("", "(descriptive)")}
        )  # fmt: skip
        section.tables.append(
            Table(
                "inductive_tests",
                "Every paired test of the inductive-bias section",
                tests,
                t_disp,
                note="p (Holm): Holm-adjusted across the family (rows with a p).",
            )
        )
        fig = fi.hypothesis_forest(tests, margin=margin)[0]
        section.figures.append(("inductive_tests", "Inductive-bias tests with intervals and verdicts", fig))
    _consistency(section, runs, s)
    if not tables.get("kernels", pd.DataFrame()).empty:
        result["kernels"] = _kernels(section, tables["kernels"], runs, s)
    return section, result


def _consistency(section: Section, runs: pd.DataFrame, s: Settings) -> None:
    cnn = inductive.base_runs(runs)
    cnn = cnn[cnn["status"] == "ok"]
    columns = [c for c in inductive.CONSISTENCY_MODES.values() if cnn[c].notna().any()]
    if not columns:
        section.text.append("Shift consistency was not measured in this study (no consistency columns).")
        return
    means = pd.concat([seed_summary(cnn, c, **s.kw) for c in columns], ignore_index=True)
    disp = (
        means.assign(cell=interval_cells(means, metric="accuracy"))
        .pivot_table(index=["variant", "data_fraction"], columns="metric", values="cell", aggfunc="first")
        .reset_index()
    )
    disp = order_variants(disp, s.reference).assign(
        data_fraction=lambda x: x["data_fraction"].map(fraction_label)
    )
    section.text.append(
        "Shift consistency (Zhang 2019): the probability that the predicted class is unchanged between two "
        "random shifts of the same test image (circular: wrap-around; pad: crop with padding), in %, "
        "base-level "
        f"CNN runs, mean [{s.level} interval] over seeds; contrasts are paired by seed against {s.reference}."
    )
    section.tables.append(
        Table("shift_consistency", f"Shift consistency (%) [{s.level} interval]", means, disp)
    )
    if cnn["variant"].nunique() > 1 and s.reference in set(cnn["variant"]):
        pc = paired_contrasts(cnn, columns, reference=s.reference, **s.kw)
        pc_disp = pd.DataFrame(
            {"mode": pc["metric"].str.replace("shift_consistency_", ""), "variant": pc["variant"],
             "data_fraction": pc["data_fraction"].map(fraction_label), "seeds": pc["n_seeds"],
             f"difference (pp) [{s.level}]": [format_interval(r.diff, r.low, r.high, percent=True)
                                              for r in pc.itertuples()],
             "p (Holm)": pc["p_holm"].map(format_p)}
        )  # fmt: skip
        section.tables.append(
            Table(
                "shift_consistency_contrasts",
                f"Shift consistency: variant - {s.reference}",
                pc,
                pc_disp,
                note="p (Holm): Holm-adjusted across the rows of this table.",
            )
        )
        section.figures.append(("shift_consistency", "Shift consistency, paired differences vs "
                                f"{s.reference} "
                                "(consistency on the 0-1 scale)", figures.forest_plot(pc)[0]))  # fmt: skip


def _kernels(section: Section, table: pd.DataFrame, runs: pd.DataFrame, s: Settings) -> pd.DataFrame:
    d = inductive.design_frame(runs)
    levels = inductive.base_levels(runs)
    cnn = d[~d["is_mlp"] & (d["location_shift"] == levels["location_shift"]) & (d["init"] == levels["init"])]
    ks = kernels.kernel_summaries(table, cnn, by=("arm", "permute"), alpha=s.alpha)
    per_run = ks["per_run"]
    if per_run.empty:
        section.text.append("The kernels table holds no kernels of successful base-level CNN runs.")
        return per_run
    per_seed = per_run.groupby(["arm", "permute", "seed"], as_index=False)["high_frequency_fraction"].mean()
    summ = seed_summary(per_seed, "high_frequency_fraction", by=("arm", "permute"), **s.kw)
    disp = pd.DataFrame(
        {"variant": summ["arm"], "images": summ["permute"].map({True: "permuted", False: "unpermuted"}),
         "seeds": summ["n_seeds"],
         f"high-frequency energy (%) [{s.level}]": interval_cells(summ, metric="accuracy")}
    )  # fmt: skip
    section.text.append(
        "First-layer kernels. Channel order is arbitrary across seeds (and a filter's sign and scale can be "
        "absorbed by the next layer), so a raw mean of kernels cancels out. Each kernel (one output x input "
        "channel) is scaled to unit L2 norm; the figures show the mean absolute kernel (where the "
        "weight sits) "
        "and the mean radial power spectrum (zero-padded FFT, white noise = 1): low-pass filters put their "
        "energy at low frequency, edge and checkerboard filters near 0.5 cycles/pixel. The table "
        f"gives the share of energy above {kernels.CUTOFF:g} cycles/pixel (white noise: about 80 %), "
        f"averaged over a seed's runs (data fractions), then mean [{s.level} interval] over seeds."
    )
    section.tables.append(Table("kernels", "First-layer kernels: high-frequency energy share", summ, disp))
    names = {False: "unpermuted", True: "permuted"}
    maps = {(str(a), names[bool(p)]): m for (a, p), m in ks["mean_abs"].items()}
    rows = [a for a in fi.variant_palette(per_run["arm"], s.reference)]
    cols = [names[p] for p in sorted(set(per_run["permute"].astype(bool)))]
    section.figures.append(
        (
            "kernels_mean_abs",
            "Mean absolute unit-norm first-layer kernel per variant (permutation-invariant summary)",
            fi.kernel_maps(maps, row_labels=rows, col_labels=cols)[0],
        )
    )
    section.figures.append(("kernels_spectrum", "Radial power spectrum of the first-layer kernels",
                            fi.kernel_spectra(ks["spectra"], variant="arm",
                                              reference=s.reference)[0]))  # fmt: skip
    return per_run


def summary_lines(result: dict | None) -> list[str]:
    """One sentence per tested hypothesis: its verdict per subject (for the report's summary)."""
    if not result or result["hypotheses"].empty:
        return []
    lines = []
    for h, part in result["hypotheses"].groupby("hypothesis", sort=False):
        verdicts = part.groupby("verdict", sort=False)["subject"].agg(lambda x: ", ".join(map(str, x)))
        text = "; ".join(f"{v} for {subjects}" for v, subjects in verdicts.items())
        lines.append(f"Inductive bias {h} ({inductive.HYPOTHESES[h].split(' (')[0].rstrip('.')}): {text}.")
    return lines
