"""Compression figure: a metric of every compression level against the model's size and its latency."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from analysis.report.figures._layout import MARKERS, figure_axes, metric_scale, title
from analysis.report.figures.palette import colours_for

_COSTS = {
    "size_kb": "serialized state dict (kB, log scale)",
    "latency_ms": "median latency at batch 1 (ms, log scale)",
}


def compression_tradeoff_plot(
    frame: pd.DataFrame,
    *,
    metric: str = "accuracy",
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """The metric (with interval) of every arm and compression level against size and against latency.

    Parameters
    ----------
    frame : DataFrame
        One row per arm and level: ``arm, compression, mean, low, high`` and the costs ``size_kb``
        and ``latency_ms`` (missing costs leave a point out of that panel).
    metric : str
        The metric's name, for the axis label and scale.
    ax : sequence of two Axes, optional
        Where to draw (size panel, latency panel); a new figure when None.
    palette : mapping of str to colour, optional
        One colour per arm (variant), the study's palette.

    Returns
    -------
    ``(fig, axes)``

    Raises
    ------
    ValueError
        If ``frame`` is empty.
    """
    if frame.empty:
        raise ValueError("compression_tradeoff_plot needs at least one arm x level row")
    fig, axes, owned = figure_axes(ax, 2, width=10.0, height=4.2, sharey=True)
    colours = colours_for(frame["arm"], palette)
    levels = list(dict.fromkeys(["none", *sorted(set(frame["compression"]) - {"none"})]))
    marker = {level: MARKERS[i % len(MARKERS)] for i, level in enumerate(levels)}
    scale, unit = metric_scale(metric)
    for panel, (cost, label) in zip(axes, _COSTS.items(), strict=True):
        for row in frame.itertuples(index=False):
            x = getattr(row, cost)
            if pd.isna(x) or pd.isna(row.mean):
                continue
            panel.errorbar(
                x,
                row.mean * scale,
                yerr=[[(row.mean - row.low) * scale], [(row.high - row.mean) * scale]],
                fmt=marker[row.compression],
                color=colours[str(row.arm)],
                capsize=3,
                markersize=7,
                markerfacecolor="white" if row.compression == "none" else colours[str(row.arm)],
            )
        if (frame[cost] > 0).any():
            panel.set_xscale("log")  # ratios of costs read as equal distances
            panel.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            panel.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
            panel.xaxis.set_minor_formatter(NullFormatter())
        panel.set_xlabel(label)
        panel.grid(alpha=0.3)
    axes[0].set_ylabel(f"{metric}{unit}")
    handles = [Line2D([], [], color=c, marker="o", linestyle="", label=a) for a, c in colours.items()]
    handles += [
        Line2D([], [], color="0.3", marker=marker[level], linestyle="", label=level, markerfacecolor="white")
        for level in levels
    ]
    axes[-1].legend(handles=handles, fontsize="small", loc="best")
    title(fig, axes, f"{metric} of every compression level against its costs", owned)
    return fig, axes
