"""Section "CPU latency": ratios of median latency against the reference, FLOPs, and the cost trade-off."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.report.document import Section, Settings, Study, Table, order_variants
from analysis.report.figures import latency_ratio_plot, tradeoff_plot
from analysis.report.format import format_interval, format_value
from analysis.stats.intervals import seed_summary
from analysis.stats.latency import latency_ratios


def _adjustment_text(lr: pd.DataFrame) -> str:
    """How the medians were put on one machine speed, and which blocks were not."""
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


# The published chest X-ray LeNet study: one timing per variant, ms per batch of 32 at 320x320.
PUBLISHED_MS_BATCH32 = {"maxpool": 168.7, "avgpool": 78.2, "strided": 50.8}


def latency_vs_flops(lr: pd.DataFrame, runs: pd.DataFrame, reference: str):
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


def _ratio_display(lr: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """Medians and ratios with intervals per variant, batch size and format (raw beside adjusted)."""
    disp = order_variants(lr, s.reference, ("variant", "batch_size", "memory_format"))
    rows = list(disp.itertuples(index=False))
    cols = {
        "variant": disp["variant"],
        "batch_size": disp["batch_size"],
        "memory_format": disp["memory_format"],
        f"median ms [{s.level}]": [format_interval(r.median_ms, r.median_low, r.median_high) for r in rows],
        f"ratio vs {s.reference} [{s.level}]": [format_interval(r.ratio, r.low, r.high) for r in rows],
    }
    if lr["adjusted"].any():
        cols[f"raw median ms [{s.level}]"] = [
            format_interval(r.raw_median_ms, r.raw_median_low, r.raw_median_high) for r in rows
        ]
        cols[f"raw ratio [{s.level}]"] = [format_interval(r.raw_ratio, r.raw_low, r.raw_high) for r in rows]
        cols["slope"] = [f"{v:.2f}" if np.isfinite(v) else "" for v in disp["slope"]]
    return pd.DataFrame(cols)


def _tradeoff(section: Section, lr: pd.DataFrame, study: Study, s: Settings) -> None:
    """The primary metric at the largest fraction against latency, parameters and throughput."""
    ok = study.standard["runs"]
    ok = ok[ok["status"] == "ok"]
    largest = ok[ok["data_fraction"] == ok["data_fraction"].max()]
    metric = s.metrics[0]
    trade = seed_summary(largest, metric, by=("variant",), **s.kw)
    fmt = "contiguous" if (lr["memory_format"] == "contiguous").any() else sorted(lr["memory_format"])[0]
    lr_fmt = lr[lr["memory_format"] == fmt]
    small, big = lr_fmt["batch_size"].min(), lr_fmt["batch_size"].max()
    at = lr_fmt.set_index(["variant", "batch_size"])["median_ms"]
    trade["median_ms"] = [at.get((v, small), np.nan) for v in trade["variant"]]
    trade["throughput"] = [big * 1000.0 / at.get((v, big), np.nan) for v in trade["variant"]]
    trade["params"] = trade["variant"].map(ok.groupby("variant")["params"].median())
    fig = tradeoff_plot(trade, metric=metric, palette=study.palette)[0]
    caption = (
        f"{metric} at the largest data fraction vs latency (batch {small}), parameters and "
        f"throughput (batch {big})"
    )
    section.figures.append(("tradeoff", caption, fig))


def build(study: Study, s: Settings) -> tuple[Section, pd.DataFrame | None]:
    """Latency ratios of medians against the reference, precision, FLOPs, and accuracy against cost."""
    section = Section("CPU latency")
    latency, runs = study.standard["latency"], study.standard["runs"]
    if latency.empty:
        section.text.append(
            "The study has no latency measurements (empty latency table), so this section is skipped."
        )
        return section, None
    lr = latency_ratios(latency, runs, reference=s.reference, **s.kw)
    adjusted = bool(lr["adjusted"].any())
    section.text.append(
        f"Ratio of median latency (variant / {s.reference}) per batch size, with {s.level} intervals from a "
        f"bootstrap over seeds and over timing repeats within runs ({s.n_boot} resamples, log scale); "
        "below 1 is faster."
    )
    if adjusted:
        section.text.append(_adjustment_text(lr))
    section.text.extend(_precision_text(lr, s.level, adjusted))
    section.tables.append(
        Table("latency", f"Latency: ratio of medians against {s.reference}", lr, _ratio_display(lr, s))
    )
    fig = latency_ratio_plot(lr, palette=study.palette)[0]
    section.figures.append(("latency_ratio", "Latency ratios (log scale)", fig))
    cost = latency_vs_flops(lr, runs, s.reference)
    if cost is not None:
        raw, disp_cost, note = cost
        section.text.append(note)
        caption = "Latency against FLOPs and the published single run"
        section.tables.append(Table("latency_vs_flops", caption, raw, disp_cost))
    _tradeoff(section, lr, study, s)
    return section, lr
