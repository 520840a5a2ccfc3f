"""Section "Calibration": ECE per model/variant with intervals and contrasts, and reliability diagrams."""

from __future__ import annotations

import pandas as pd

from analysis.design import at_base_levels, base_runs, primary_model
from analysis.report.document import (
    INTERVAL_RULE,
    Section,
    Settings,
    Study,
    Table,
    fraction_label,
    order_variants,
)
from analysis.report.figures import reliability_diagram
from analysis.report.format import format_p, format_value, interval_cells
from analysis.stats.calibration import expected_calibration_error, is_binary, reliability_curve
from analysis.stats.contrasts import paired_contrasts
from analysis.stats.intervals import seed_summary

ECE_BINS = 15  # the bins of the runs table's ece column (downscalexr.metrics.ECE_BINS)
BAND_RESAMPLES = 2000  # resamples of a figure band: its percentiles are stable to ~1 pp at 2,000


def _ece(section: Section, ok: pd.DataFrame, runs: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """ECE per model/variant and fraction, and the paired ECE contrasts of the CNN variants."""
    ece = seed_summary(ok, "ece", by=("arm", "data_fraction"), **s.kw)
    disp = order_variants(ece.rename(columns={"arm": "variant"}), s.reference)
    disp = disp.assign(data_fraction=disp["data_fraction"].map(fraction_label), cell=interval_cells(disp))
    disp = disp[["variant", "data_fraction", "n_seeds", "method", "cell"]].rename(
        columns={"variant": "model / variant", "cell": f"ECE (pp) [{s.level}]"}
    )
    section.text.append(
        f"Expected calibration error (ECE, {ECE_BINS} equal-width bins; binary tasks: P(positive) against "
        "the label, multi-class: top-label confidence against correctness) per run, mean over seeds with "
        f"{s.level} intervals ({INTERVAL_RULE}). Lower is better calibrated."
    )
    section.tables.append(Table("ece", f"ECE by model/variant and fraction [{s.level} interval]", ece, disp))
    cnn = base_runs(runs)
    if cnn["variant"].nunique() > 1 and s.reference in set(cnn["variant"]):
        pc = paired_contrasts(cnn, "ece", reference=s.reference, **s.kw)
        pc_disp = pd.DataFrame(
            {
                "variant": pc["variant"],
                "data_fraction": pc["data_fraction"].map(fraction_label),
                "seeds": pc["n_seeds"],
                f"ECE difference (pp) [{s.level}]": interval_cells(pc, estimate="diff"),
                "p (Holm)": pc["p_holm"].map(format_p),
            }
        )
        note = "p (Holm): Holm-adjusted across the rows of this table."
        caption = f"ECE: variant - {s.reference}, paired by seed ({primary_model(runs)} runs)"
        section.tables.append(Table("ece_contrasts", caption, pc, pc_disp, note=note))
    return ece


def _reliability_summary(curve: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per model/variant: runs, predictions, pooled ECE and how many bins lie off the diagonal."""
    rows = []
    for arm, part in curve.groupby("arm", sort=True):
        outside = ((part["confidence"] < part["low"]) | (part["confidence"] > part["high"])).sum()
        rows.append(
            {
                "variant": arm,
                "runs": int(part["n_runs"].max()),
                "predictions": int(part["count"].sum()),
                "pooled ECE (pp)": format_value(expected_calibration_error(part), percent=True),
                "bins off the diagonal": f"{int(outside)} of {len(part)}",
            }
        )
    ordered = order_variants(pd.DataFrame(rows), reference, by=("variant",))
    return ordered.rename(columns={"variant": "model / variant"})


def _reliability(section: Section, study: Study, ok: pd.DataFrame, s: Settings) -> None:
    """Reliability diagrams at the largest fraction, predictions of every seed pooled, with bands."""
    preds = study.tables["predictions"]
    if preds.empty:
        section.text.append("The study has no predictions table, so no reliability diagram is drawn.")
        return
    largest = ok[ok["data_fraction"] == ok["data_fraction"].max()]
    n_band = min(s.n_boot, BAND_RESAMPLES)
    curve = reliability_curve(
        preds, largest, by=("arm",), n_bins=ECE_BINS, n_boot=n_band, alpha=s.alpha, seed=s.seed
    )
    if curve.empty:
        section.text.append("No predictions of successful runs, so no reliability diagram is drawn.")
        return
    binary = is_binary(preds[preds["run_id"].isin(largest["run_id"])])
    against = (
        "P(positive) against the fraction of positive labels"
        if binary
        else "top-label confidence against accuracy"
    )
    section.text.append(
        f"Reliability diagrams at data fraction {largest['data_fraction'].max():g}: predictions of every "
        f"seed pooled into {ECE_BINS} bins ({against}). Bands: {s.level} two-level percentile bootstrap "
        f"(seeds, then test examples shared by all runs; {n_band} resamples). "
        "A bin is 'off the diagonal' when its band excludes its mean confidence."
    )
    summary = _reliability_summary(curve, s.reference)
    section.tables.append(
        Table("reliability", "Reliability: pooled calibration per model/variant", curve, summary)
    )
    fig = reliability_diagram(curve, group="arm", binary=binary, palette=study.palette)[0]
    section.figures.append(("reliability", "Reliability diagrams pooled over seeds, with bands", fig))


def build(study: Study, s: Settings) -> tuple[Section, pd.DataFrame]:
    """ECE with intervals and contrasts, then pooled reliability diagrams; every model at base levels."""
    runs = study.tables["runs"]
    rows = at_base_levels(runs)
    section = Section("Calibration")
    ok = rows[rows["status"] == "ok"]
    if ok["ece"].isna().all():
        section.text.append("No run has an ECE value, so the calibration summary is skipped.")
        ece = pd.DataFrame()
    else:
        ece = _ece(section, ok, runs, s)
    _reliability(section, study, ok, s)
    return section, ece
