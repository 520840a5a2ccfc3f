"""Section "Compression": what each compression level does to a trained model, paired with its parent.

Appears when the study has compressed runs (``factors.compression`` in the study file). Every compressed
model is a copy of one trained parent (same seed, data and weights), so each comparison is paired by
seed; the statistics are those of :mod:`analysis.stats.compression`.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from analysis.design import NO_COMPRESSION
from analysis.report.document import Section, Settings, Study, Table, fraction_label
from analysis.report.figures.compression import compression_tradeoff_plot
from analysis.report.format import format_interval, format_p, interval_cells
from analysis.stats.compression import (
    compression_changes,
    compression_equivalence,
    compression_frame,
    compression_interaction,
    compression_latency,
    compression_sizes,
    has_compression,
    prediction_flips,
)
from analysis.stats.intervals import seed_summary
from analysis.verdicts.rules import directional_verdict, equivalence_verdict

CHANGE_METRICS = ("accuracy", "auroc")


def applies(study: Study) -> bool:
    """Whether the study has compressed runs paired with ok parents."""
    return has_compression(study.tables["runs"])


def build(study: Study, s: Settings) -> tuple[Section, dict]:
    """Changes against the parent, equivalence, reordering, latency, size, flipped decisions, bias."""
    runs, latency = study.tables["runs"], study.tables["latency"]
    section = Section("Compression", _intro(runs, s))
    result = {"changes": compression_changes(runs, CHANGE_METRICS, **s.kw)}
    section.tables.append(_changes_table(result["changes"], s))
    result["equivalence"] = compression_equivalence(runs, margin=s.margin, **s.kw)
    section.tables.append(_equivalence_table(result["equivalence"], s))
    result["interaction"] = compression_interaction(runs, reference=s.reference, **s.kw)
    if len(result["interaction"]):
        section.tables.append(_interaction_table(result["interaction"], s))
    result["latency"] = compression_latency(latency, runs, **s.kw) if not latency.empty else pd.DataFrame()
    if len(result["latency"]):
        section.tables.append(_latency_table(result["latency"], s))
    result["sizes"] = compression_sizes(runs, **s.kw)
    section.tables.append(_sizes_table(result["sizes"], runs, s))
    result["flips"] = prediction_flips(study.tables["predictions"], runs, **s.kw)
    if len(result["flips"]):
        section.tables.append(_flips_table(result["flips"], s))
    result["bias"] = compression_changes(runs, "criterion_c", **s.kw)
    if len(result["bias"]):
        section.tables.append(_bias_table(result["bias"], s))
    section.text += _reading(result, s)
    fig = _tradeoff_figure(runs, result["latency"], study, s)
    if fig is not None:
        caption = "Accuracy of every level (largest fraction) against its size and its latency at batch 1"
        section.figures.append(("compression_tradeoff", caption, fig))
    return section, result


def _levels(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per compressed level: its description, how it ran, and why it was unsupported where so."""
    d = runs[runs["compression"].fillna(NO_COMPRESSION) != NO_COMPRESSION]
    rows = []
    for level, group in d.groupby("compression", sort=True):
        detail = next((json.loads(t) for t in group["compression_detail"].dropna()), {})
        unsupported = group[group["status"] == "unsupported"]
        rows.append(
            {
                "level": level,
                "description": detail.get("description", ""),
                "quant_path": next(iter(group["quant_path"].dropna()), None),
                "quant_engine": next(iter(group["quant_engine"].dropna()), None),
                "fp32_layers": detail.get("fp32_layers", ""),
                "unsupported": {v: g["error"].iloc[0] for v, g in unsupported.groupby("variant", sort=True)},
                "failed": int((group["status"] == "failed").sum()),
            }
        )
    return pd.DataFrame(rows)


def _intro(runs: pd.DataFrame, s: Settings) -> list[str]:
    text = [
        "Every compression level is applied to each trained model after its own measurements, so each "
        "compressed model is paired with its uncompressed parent (same seed, data and weights before "
        "compression; level none is the parent). Changes are level minus none on the same seed "
        f"(pp for metrics in [0, 1]) with {s.level} intervals ({s.n_boot} bootstrap resamples from 10 seeds "
        "on, Student t below); every table's p-values are Holm-adjusted across that table. The standard "
        "sections analyse level none only."
    ]
    for r in _levels(runs).itertuples(index=False):
        line = f"{r.level}: {r.description or 'no description'}"
        if isinstance(r.quant_path, str):
            line += f"; path: {r.quant_path}, engine {r.quant_engine}"
        if r.level == "int8_dynamic":
            line += "; dynamic int8 quantizes the linear layers only: every convolution and the downsampling "
            line += "operator stay fp32"
        for variant, reason in r.unsupported.items():
            line += f"; unsupported for {variant}: {reason}"
        if r.failed:
            line += f"; {r.failed} run(s) failed (left out)"
        text.append(line + ".")
    return text


def _changes_table(ch: pd.DataFrame, s: Settings) -> Table:
    disp = pd.DataFrame(
        {
            "variant": ch["arm"],
            "level": ch["compression"],
            "metric": ch["metric"],
            "data_fraction": ch["data_fraction"].map(fraction_label),
            "seeds": ch["n_seeds"],
            f"change vs none [{s.level}]": interval_cells(ch, estimate="diff"),
            "p": ch["p_value"].map(format_p),
            "p (Holm)": ch["p_holm"].map(format_p),
        }
    )
    caption = "Change of accuracy and AUROC against the uncompressed parent, per variant, level and fraction"
    return Table("compression_changes", caption, ch, disp, note="p (Holm): across every row of this table.")


def _equivalence_table(eq: pd.DataFrame, s: Settings) -> Table:
    eq = eq.assign(
        verdict=[
            equivalence_verdict(r.low, r.high, margin=s.margin, shown=bool(r.p_holm < s.alpha))
            for r in eq.itertuples()
        ]
    )
    two = f"{100 * (1 - 2 * s.alpha):g} %"
    disp = pd.DataFrame(
        {
            "variant": eq["arm"],
            "level": eq["compression"],
            "seeds": eq["n_seeds"],
            f"accuracy change [{s.level}]": interval_cells(eq, estimate="estimate", metric="accuracy"),
            f"[{two}]": [
                format_interval(r.estimate, r.low_eq, r.high_eq, percent=True) for r in eq.itertuples()
            ],
            "p (TOST)": eq["p_value"].map(format_p),
            "p (Holm)": eq["p_holm"].map(format_p),
            "verdict": eq["verdict"],
        }
    )
    caption = (
        f"Does the level keep accuracy within +-{100 * s.margin:g} pp of its parent? (pooled over fractions)"
    )
    note = (
        f"TOST at alpha = {s.alpha:g} (equivalent when the {two} interval lies within the margin), "
        "Holm-adjusted; contradicted: the change is shown to differ from 0."
    )
    return Table("compression_equivalence", caption, eq, disp, note=note)


def _interaction_table(it: pd.DataFrame, s: Settings) -> Table:
    it = it.assign(
        verdict=[
            directional_verdict(r.low, r.high, direction=0, shown=bool(r.p_holm < s.alpha))
            for r in it.itertuples()
        ]
    )
    disp = pd.DataFrame(
        {
            "variant": it["arm"],
            "level": it["compression"],
            "seeds": it["n_seeds"],
            f"change of (variant - {s.reference}) [{s.level}]": interval_cells(
                it, estimate="estimate", metric="accuracy"
            ),
            "p": it["p_value"].map(format_p),
            "p (Holm)": it["p_holm"].map(format_p),
            "reorders (verdict)": it["verdict"],
        }
    )
    caption = (
        f"Does compression reorder the operators? (variant - {s.reference}) compressed minus uncompressed"
    )
    note = (
        "Accuracy per seed, matched within a fraction, averaged over fractions; supported: shown to change."
    )
    return Table("compression_interaction", caption, it, disp, note=note)


def _latency_table(lr: pd.DataFrame, s: Settings) -> Table:
    fp32 = lr[lr["compression"] == NO_COMPRESSION].set_index(["arm", "batch_size", "memory_format"])[
        "median_ms"
    ]
    rows = lr[lr["compression"] != NO_COMPRESSION]
    keys = list(zip(rows["arm"], rows["batch_size"], rows["memory_format"], strict=True))
    disp = pd.DataFrame(
        {
            "variant": rows["arm"],
            "level": rows["compression"],
            "batch": rows["batch_size"],
            "format": rows["memory_format"],
            "fp32 ms": [f"{fp32.get(k, np.nan):.3g}" for k in keys],
            "ms": rows["median_ms"].map(lambda v: f"{v:.3g}"),
            f"ratio to fp32 [{s.level}]": [
                format_interval(r.ratio, r.low, r.high) for r in rows.itertuples()
            ],
            "speed-adjusted": rows["adjusted"].map({True: "yes", False: "no"}),
        }
    )
    caption = "CPU latency of every level over the uncompressed model's (ratio of medians; below 1 is faster)"
    note = "Two-level bootstrap (seeds jointly, then timing repeats), as in 'CPU latency'."
    return Table("compression_latency", caption, lr, disp, note=note)


def _sizes_table(sz: pd.DataFrame, runs: pd.DataFrame, s: Settings) -> Table:
    wide = sz.assign(cell=[format_interval(r.mean, r.low, r.high) for r in sz.itertuples()])
    disp = wide.pivot_table(index=["arm", "compression"], columns="measure", values="cell", aggfunc="first")
    d = compression_frame(runs)
    sparsity = d[d["compression"] != NO_COMPRESSION].groupby(["arm", "compression"])["sparsity"].mean()
    disp["weight sparsity"] = sparsity.reindex(disp.index).map(lambda v: f"{100 * v:.1f} %")
    order = [c for c in ("size", "gzip size", "parameters", "FLOPs", "weight sparsity") if c in disp]
    disp = disp[order].reset_index().rename(columns={"arm": "variant", "compression": "level"})
    caption = f"Size of every level over its parent's: mean ratio over seeds [{s.level}]"
    note = (
        "size: serialized state dict (packed int8 weights included); gzip size shows unstructured zeros; "
        "FLOPs are dense (unstructured zeros are still computed)."
    )
    return Table("compression_sizes", caption, sz, disp, note=note)


def _flips_table(fl: pd.DataFrame, s: Settings) -> Table:
    disp = pd.DataFrame(
        {
            "variant": fl["arm"],
            "level": fl["compression"],
            "data_fraction": fl["data_fraction"].map(fraction_label),
            "seeds": fl["n_seeds"],
            f"decisions flipped [{s.level}]": [
                format_interval(r.flip_share, r.low, r.high, percent=True) + " %" for r in fl.itertuples()
            ],
            "McNemar (Holm) significant": [f"{r.n_significant} of {r.n_tests}" for r in fl.itertuples()],
            "parent right, level wrong / reverse": [f"{r.b} / {r.c}" for r in fl.itertuples()],
        }
    )
    caption = "Share of test decisions the compressed model changes against its parent"
    note = "McNemar's test of each compressed run against its parent, Holm-adjusted across every test."
    return Table("compression_flips", caption, fl, disp, note=note)


def _bias_table(bias: pd.DataFrame, s: Settings) -> Table:
    disp = pd.DataFrame(
        {
            "variant": bias["arm"],
            "level": bias["compression"],
            "data_fraction": bias["data_fraction"].map(fraction_label),
            "seeds": bias["n_seeds"],
            f"shift of criterion c [{s.level}]": interval_cells(bias, estimate="diff", metric="criterion_c"),
            "p (Holm)": bias["p_holm"].map(format_p),
        }
    )
    caption = "Shift of the decision criterion c caused by compression (level minus none)"
    note = "c > 0: conservative (more false negatives); a positive shift moves decisions toward 'negative'."
    return Table("compression_bias", caption, bias, disp, note=note)


def _reading(result: dict, s: Settings) -> list[str]:
    """Plain sentences: which levels change accuracy (pooled, Holm) and which reorder the operators."""
    ch = result["changes"]
    pooled = ch[ch["data_fraction"].isna() & (ch["metric"] == "accuracy")]
    shown = pooled[pooled["p_holm"] < s.alpha]
    text = []
    if len(pooled):
        moved = ", ".join(f"{r.compression} on {r.arm} ({100 * r.diff:+.1f} pp)" for r in shown.itertuples())
        text.append(
            f"Accuracy changes shown after Holm (pooled over fractions): {moved or 'none'} "
            f"of {len(pooled)} variant x level pairs."
        )
    it = result["interaction"]
    if len(it):
        reorder = it[it["p_holm"] < s.alpha]
        names = ", ".join(f"{r.compression} ({r.arm})" for r in reorder.itertuples())
        text.append(f"Levels shown to change a variant's difference to {s.reference}: {names or 'none'}.")
    return text


def _tradeoff_figure(runs: pd.DataFrame, latency: pd.DataFrame, study: Study, s: Settings):
    """The accuracy vs size / latency figure at the largest fraction (None when there is nothing to plot)."""
    d = compression_frame(runs)
    largest = d[d["data_fraction"] == d["data_fraction"].max()]
    acc = seed_summary(largest, "accuracy", by=("arm", "compression"), **s.kw)
    if acc.empty:
        return None
    size = largest.groupby(["arm", "compression"])["state_dict_bytes"].mean() / 1000.0
    frame = acc.assign(
        size_kb=[size.get((a, c), np.nan) for a, c in zip(acc["arm"], acc["compression"], strict=True)]
    )
    frame["size_kb"] = frame["size_kb"].where(frame["size_kb"] > 0)
    if len(latency):
        lat = latency[
            (latency["batch_size"] == latency["batch_size"].min())
            & (latency["memory_format"] == "contiguous")
        ]
        ms = lat.set_index(["arm", "compression"])["median_ms"]
        frame["latency_ms"] = [
            ms.get((a, c), np.nan) for a, c in zip(frame["arm"], frame["compression"], strict=True)
        ]
    else:
        frame["latency_ms"] = np.nan
    palette = {k: v for k, v in study.palette.items() if k in set(frame["arm"])}
    return compression_tradeoff_plot(frame, palette=palette)[0]
