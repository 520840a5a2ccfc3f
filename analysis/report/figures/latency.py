"""Latency figures: ratios of medians against the reference, and the metric against its costs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter, NullLocator

from analysis.report.figures._layout import MARKERS, figure_axes, metric_scale, one_or_many, title
from analysis.report.figures.palette import colours_for

_RATIO_TICKS = (0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 10.0)
_COST_LABELS = {
    "median_ms": ("median latency (ms, log scale)", True),
    "params": ("parameters (log scale)", True),
    "throughput": ("throughput (images/s, log scale)", True),
}


def _cost_panel(panel, frame: pd.DataFrame, cost: str, scale: float, colours: dict) -> None:
    """The metric (with interval) of every variant against one cost column."""
    for row in frame.itertuples(index=False):
        x = getattr(row, cost)
        if pd.isna(x):
            continue
        panel.errorbar(
            x,
            row.mean * scale,
            yerr=[[(row.mean - row.low) * scale], [(row.high - row.mean) * scale]],
            fmt="o",
            color=colours[str(row.variant)],
            capsize=3,
            label=str(row.variant),
        )
    label, log = _COST_LABELS[cost]
    values = frame[cost].dropna().to_numpy(float)
    # a log axis spanning less than a decade only adds cramped minor-tick labels
    if log and values.min() > 0 and values.max() / values.min() >= 10:
        panel.set_xscale("log")
        panel.xaxis.set_minor_formatter(NullFormatter())
    else:
        label = label.replace(", log scale", "").replace(" (log scale)", "")
    panel.set_xlabel(label)
    panel.grid(alpha=0.3)


def tradeoff_plot(
    frame: pd.DataFrame,
    *,
    metric: str = "accuracy",
    reference: str | None = None,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """Metric (with interval) against cost: latency, model size and throughput, one panel each.

    Parameters
    ----------
    frame : DataFrame
        One row per variant: ``variant, mean, low, high`` and any of ``median_ms, params, throughput``.
        Cost columns that are absent or all missing get no panel.
    metric : str
        The metric's name, for the axis label and scale.
    reference, ax, palette
        See :mod:`analysis.report.figures`.

    Returns
    -------
    ``(fig, axes)``

    Raises
    ------
    ValueError
        If no cost column has values.
    """
    costs = [c for c in _COST_LABELS if c in frame and frame[c].notna().any()]
    if not costs:
        raise ValueError(f"tradeoff_plot needs at least one of {list(_COST_LABELS)} with values")
    scale, unit = metric_scale(metric)
    colours = colours_for(frame["variant"], palette, reference)
    fig, axes, owned = figure_axes(ax, len(costs), width=1.0 + 3.6 * len(costs), height=3.8, sharey=True)
    for panel, cost in zip(axes, costs, strict=True):
        _cost_panel(panel, frame, cost, scale, colours)
    axes[0].set_ylabel(f"{metric}{unit}")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), title="variant", loc="outside right center")
    title(fig, axes, f"{metric} vs cost (95 % intervals over seeds)", owned)
    return fig, one_or_many(axes)


def _spaced_ticks(low: float, high: float, n: int = 8) -> list[float]:
    """Round ratios within [low, high], 1 first, then others at least 1/n of the log range apart."""
    gap = np.log(high / low) / n
    kept: list[float] = []
    for t in sorted((t for t in _RATIO_TICKS if low <= t <= high), key=lambda t: abs(np.log(t))):
        if all(abs(np.log(t / k)) >= gap for k in kept):
            kept.append(t)
    return sorted(kept)


def latency_ratio_plot(ratios: pd.DataFrame, *, ax=None, palette: Mapping[str, tuple] | None = None):
    """Latency ratio of medians vs the reference per batch size, log scale.

    Parameters
    ----------
    ratios : DataFrame
        :func:`analysis.stats.latency.latency_ratios` output (``variant, reference, batch_size,
        memory_format, ratio, low, high``).
    ax, palette
        See :mod:`analysis.report.figures`.

    Returns
    -------
    ``(fig, ax)``
    """
    batches = sorted(set(ratios["batch_size"]))
    formats = sorted(set(map(str, ratios["memory_format"])))
    references = sorted(set(map(str, ratios["reference"])))
    colours = colours_for([*ratios["variant"], *references], palette, references[0] if references else None)
    fig, axes, owned = figure_axes(ax, width=max(6.4, 1.0 * len(batches) + 4), height=4.2)
    panel = axes[0]
    groups = [(v, f) for v in colours for f in formats]
    width = 0.8 / max(len(groups), 1)
    for i, (variant, fmt) in enumerate(groups):
        part = ratios[(ratios["variant"] == variant) & (ratios["memory_format"].astype(str) == fmt)]
        if part.empty:
            continue
        x = np.array([batches.index(b) for b in part["batch_size"]]) - 0.4 + width * (i + 0.5)
        panel.errorbar(
            x,
            part["ratio"],
            yerr=[part["ratio"] - part["low"], part["high"] - part["ratio"]],
            fmt=MARKERS[formats.index(fmt) % len(MARKERS)],
            color=colours[variant],
            capsize=3,
            label=variant if len(formats) == 1 else f"{variant}, {fmt}",
        )
    panel.set_yscale("log")
    panel.axhline(1, color="0.3", lw=1, ls="--")
    ticks = _spaced_ticks(*panel.get_ylim())
    if len(ticks) >= 2:  # readable ratios (0.8, 1.25) instead of 8 x 10^-1 minor-tick labels
        panel.set_yticks(ticks, [f"{t:g}" for t in ticks])
        panel.yaxis.set_minor_locator(NullLocator())
    panel.set_xticks(range(len(batches)), [str(b) for b in batches])
    panel.set_xlabel("batch size")
    panel.set_ylabel(f"median latency / {', '.join(references)} (log scale)")
    title(fig, axes, "Latency ratio of medians, 95 % intervals (below 1: faster)", owned)
    fig.legend(title="variant", loc="outside right center")
    panel.grid(axis="y", alpha=0.3, which="both")
    return fig, panel
