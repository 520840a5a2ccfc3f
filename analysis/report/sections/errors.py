"""Section "Multi-class error analysis": macro-F1, confusions, per-class recall, pairs, hard examples.

Applies to studies with more than two classes. Every model (LeNet, ResNet, ...) and variant at the base
level of every factor is analysed as its own model/variant (``arm``); contrasts are within a model.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from analysis.design import at_base_levels
from analysis.report.document import (
    INTERVAL_RULE,
    Section,
    Settings,
    Study,
    Table,
    fraction_label,
    order_variants,
)
from analysis.report.figures.errors import confusion_heatmap, difficulty_heatmap
from analysis.report.format import format_interval, format_p, interval_cells
from analysis.stats.difficulty import example_difficulty
from analysis.stats.errors import (
    confused_pair_contrasts,
    confused_pairs,
    confusion_matrices,
    most_confused,
    pair_rates,
    per_class_recall,
    run_confusions,
)
from analysis.stats.intervals import seed_summary

TOP_PAIRS = 5  # most-confused class pairs reported
HARDEST = 12  # hardest test examples listed


def applies(study: Study) -> bool:
    """Whether the study is multi-class (more than two classes scored per example)."""
    preds = study.tables["predictions"]
    return not preds.empty and preds["class_index"].nunique() > 2


def file_name(text: str) -> str:
    """A figure name from a model/variant (``lenet:avgpool`` -> ``lenet-avgpool``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


def _scores(section: Section, ok: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """Accuracy and macro-F1 per model/variant and fraction, with intervals over seeds."""
    summ = pd.concat(
        [seed_summary(ok, m, by=("arm", "data_fraction"), **s.kw) for m in ("accuracy", "f1")],
        ignore_index=True,
    )
    cells = summ.assign(cell=interval_cells(summ))
    disp = cells.pivot_table(index=["arm", "data_fraction"], columns="metric", values="cell", aggfunc="first")
    disp = disp.reset_index().rename(columns={"arm": "variant"})
    seeds = summ[summ["metric"] == "accuracy"].set_index(["arm", "data_fraction"])["n_seeds"]
    disp["seeds"] = [
        seeds.get((v, f), 0) for v, f in zip(disp["variant"], disp["data_fraction"], strict=True)
    ]
    disp = order_variants(disp, s.reference)
    disp = disp.assign(data_fraction=disp["data_fraction"].map(fraction_label))
    disp = disp[["variant", "data_fraction", "seeds", "accuracy", "f1"]].rename(
        columns={"variant": "model / variant", "accuracy": "accuracy (pp)", "f1": "macro-F1 (pp)"}
    )
    section.text.append(
        "Accuracy and macro-F1 (the unweighted mean over classes of each class's F1, the runs table's `f1` "
        f"for multi-class tasks) per model/variant and data fraction, mean over seeds with {s.level} "
        f"intervals ({INTERVAL_RULE})."
    )
    section.tables.append(Table("error_scores", f"Accuracy and macro-F1 [{s.level} interval]", summ, disp))
    return summ


def _confusions(section: Section, study: Study, preds: pd.DataFrame, largest: pd.DataFrame) -> pd.DataFrame:
    """One row-normalised confusion matrix per model/variant at the largest fraction (a figure each)."""
    cm = confusion_matrices(preds, largest, by=("arm",))
    fraction = float(largest["data_fraction"].max())
    section.text.append(
        f"Confusion matrices at data fraction {fraction:g}: each run's decisions (the class of highest "
        "probability) on the shared test set, counts pooled over seeds and divided by the row total, so a "
        "row shows where the examples of one true class went (in %)."
    )
    for arm, part in cm.groupby("arm", sort=True):
        fig = confusion_heatmap(part, label=str(arm), colour=study.palette.get(str(arm)))[0]
        caption = f"{arm}: confusion matrix at fraction {fraction:g}, pooled over seeds, % of each row"
        section.figures.append((f"confusion_{file_name(str(arm))}", caption, fig))
    section.tables.append(
        Table(
            "confusion_matrices",
            "Confusion matrices pooled over seeds: % of each true class (counts in the CSV)",
            cm,
            _cm_display(cm),
        )
    )
    return cm


def _cm_display(cm: pd.DataFrame) -> pd.DataFrame:
    """The pooled confusion matrices as one wide table of row percentages (one block per arm)."""
    wide = cm.pivot_table(
        index=["arm", "true_class"], columns="predicted_class", values="rate", aggfunc="first"
    )
    wide = (
        (wide * 100).round(1).reset_index().rename(columns={"arm": "model / variant", "true_class": "true"})
    )
    wide.columns = [f"pred {c}" if isinstance(c, int | np.integer) else c for c in wide.columns]
    return wide


def _recall(section: Section, preds: pd.DataFrame, ok: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """Per-class recall per model/variant and fraction; displayed at the largest fraction."""
    rec = per_class_recall(preds, ok, by=("arm", "data_fraction"), **s.kw)
    top = rec[rec["data_fraction"] == rec["data_fraction"].max()]
    disp = top.assign(cell=interval_cells(top, metric="recall"))
    disp = disp.pivot_table(index="class_index", columns="arm", values="cell", aggfunc="first").reset_index()
    disp = disp.rename(columns={"class_index": "class"})
    section.text.append(
        "Per-class recall (share of a class's test examples given that class), mean over "
        f"seeds with {s.level} "
        f"intervals, at data fraction {top['data_fraction'].max():g} (every fraction in "
        "tables/per_class_recall.csv)."
    )
    caption = f"Per-class recall (pp) at the largest fraction [{s.level} interval]"
    section.tables.append(Table("per_class_recall", caption, rec, disp))
    return rec


def _pairs(section: Section, preds: pd.DataFrame, ok: pd.DataFrame, largest, s: Settings) -> dict:
    """The most-confused pairs at the largest fraction, their rates and their contrasts between variants."""
    _, counts = run_confusions(preds, largest)
    table, _ = pair_rates(counts)
    chosen = table.iloc[most_confused(counts, TOP_PAIRS)]
    pairs = [tuple(p) for p in chosen.itertuples(index=False)]
    rates = confused_pairs(preds, largest, pairs=pairs, by=("arm",), **s.kw)
    pair = rates["class_a"].astype(str) + "-" + rates["class_b"].astype(str)
    disp = pd.DataFrame(
        {
            "pair": pair,
            "model / variant": rates["arm"],
            "seeds": rates["n_seeds"],
            f"confusion rate (pp) [{s.level}]": interval_cells(rates, metric="recall"),
            "a taken for b (%)": (rates["rate_ab"] * 100).round(1),
            "b taken for a (%)": (rates["rate_ba"] * 100).round(1),
        }
    )
    section.text.append(
        f"Most-confused class pairs {{a, b}}: the {len(pairs)} pairs with the highest confusion rate at the "
        "largest fraction, pooled over every model/variant (the same pairs for all, so they compare like "
        "for like; chosen on the same test set, their rates are biased upwards slightly, their contrasts "
        "are not). Confusion rate = (examples of a given b + examples of b given a) / (examples of a and "
        f"b), per run; mean over seeds with {s.level} intervals ({INTERVAL_RULE})."
    )
    section.tables.append(
        Table("confused_pairs", "Most-confused class pairs at the largest fraction", rates, disp)
    )
    pc = confused_pair_contrasts(preds, ok, pairs=pairs, reference=s.reference, **s.kw)
    if not pc.empty:
        _pair_contrasts(section, pc, s)
    return {"pairs": rates, "contrasts": pc}


def _pair_contrasts(section: Section, pc: pd.DataFrame, s: Settings) -> None:
    """Pair-rate contrasts vs the reference within each model (pooled rows shown, all rows in the CSV)."""
    pooled = pc[pc["data_fraction"].isna()] if pc["data_fraction"].isna().any() else pc
    disp = pd.DataFrame(
        {
            "model": pooled["model"],
            "pair": pooled["class_a"].astype(str) + "-" + pooled["class_b"].astype(str),
            "variant": pooled["variant"],
            "fraction": pooled["data_fraction"].map(fraction_label),
            "seeds": pooled["n_seeds"],
            f"difference (pp) [{s.level}]": [
                format_interval(r.diff, r.low, r.high, percent=True) for r in pooled.itertuples()
            ],
            "p (Holm)": pooled["p_holm"].map(format_p),
        }
    )
    note = (
        f"p (Holm): Holm-adjusted across all {len(pc)} rows (every fraction and pooled; "
        "tables/confused_pair_contrasts.csv)."
    )
    caption = f"Confusion rate of the most-confused pairs: variant - {s.reference}, paired by seed"
    section.tables.append(Table("confused_pair_contrasts", caption, pc, disp, note=note))


def _hardest(
    section: Section, study: Study, preds: pd.DataFrame, ok: pd.DataFrame, s: Settings
) -> pd.DataFrame:
    """The hardest test examples over every run, with each model/variant's share wrong (a figure)."""
    diff = example_difficulty(preds, ok)
    top = diff.head(HARDEST)
    per_arm = example_difficulty(preds, ok, by="arm").pivot(
        index="example_id", columns="arm", values="share_wrong"
    )
    shares = per_arm.reindex(top["example_id"]).reset_index(drop=True)
    has_source = "source" in top and top["source"].notna().any()
    where = top["source"].fillna("n/a") if has_source else "test row " + top["example_id"].astype(str)
    labels = [f"{w} (class {c})" for w, c in zip(where, top["label"], strict=True)]
    fig = difficulty_heatmap(shares, labels=labels, reference=s.reference, palette=study.palette)[0]
    section.figures.append(
        ("hardest_examples", "Hardest test examples: % of runs wrong per model/variant", fig)
    )
    disp = pd.DataFrame(
        {
            "example": top["example_id"],
            "source": where,
            "class": top["label"],
            "runs": top["n_runs"],
            "% of runs wrong": (top["share_wrong"] * 100).round(1),
            "most given instead": [
                "n/a" if c < 0 else f"{c} ({100 * p:.0f} % of runs)"
                for c, p in zip(top["top_wrong_class"], top["share_top_wrong"], strict=True)
            ],
        }
    )
    section.text.append(
        f"Per-example difficulty: the share of the {int(top['n_runs'].max())} successful runs (every model, "
        "variant, fraction and seed) that get a test example wrong. The results hold no pixels (the report "
        "reads the Parquet tables only and does not regenerate data), so the hardest examples are listed by "
        + (
            "their source (file or batch index), to be opened from the data set."
            if has_source
            else "their row of the test split, fixed by the study's test_seed (synthetic data: regenerate "
            "the split with the study's data options to see the images)."
        )
    )
    section.tables.append(Table("hardest_examples", f"The {len(top)} hardest test examples", diff, disp))
    return diff


def build(study: Study, s: Settings) -> tuple[Section, dict]:
    """Scores, confusions, per-class recall, confused pairs with contrasts, and the hardest examples."""
    rows = at_base_levels(study.tables["runs"])
    ok = rows[rows["status"] == "ok"]
    preds = study.tables["predictions"]
    preds = preds[preds["run_id"].isin(ok["run_id"])]
    largest = ok[ok["data_fraction"] == ok["data_fraction"].max()]
    section = Section("Multi-class error analysis")
    result = {"scores": _scores(section, ok, s)}
    result["confusion"] = _confusions(section, study, preds, largest)
    result["recall"] = _recall(section, preds, ok, s)
    result |= _pairs(section, preds, ok, largest, s)
    result["difficulty"] = _hardest(section, study, preds, ok, s)
    return section, result
