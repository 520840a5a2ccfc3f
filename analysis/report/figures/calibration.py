"""Reliability diagrams: pooled observed frequency against confidence, one panel per group."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from analysis.report.figures._layout import grid_axes, title
from analysis.report.figures.palette import colours_for


def reliability_diagram(
    curve: pd.DataFrame,
    *,
    group: str = "variant",
    binary: bool = True,
    reference: str | None = None,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """One reliability panel per group: pooled observed frequency vs confidence, with its band.

    Parameters
    ----------
    curve : DataFrame
        :func:`analysis.stats.calibration.reliability_curve` output (``group, confidence, frequency,
        low, high, count, n_runs``).
    group : str
        The grouping column, one panel per value.
    binary : bool
        Axis labels: P(positive) vs fraction positive, or top-label confidence vs accuracy.
    reference, ax, palette
        See :mod:`analysis.report.figures`.

    Returns
    -------
    ``(fig, axes)``
    """
    colours = colours_for(curve[group], palette, reference)
    fig, axes, owned = grid_axes(len(colours), ax, sharex=True, sharey=True)
    xlabel = "predicted P(positive)" if binary else "top-label confidence"
    ylabel = "observed fraction positive" if binary else "observed accuracy"
    for panel, (name, colour) in zip(axes, colours.items(), strict=True):
        part = curve[curve[group].astype(str) == name].sort_values("confidence")
        panel.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":")
        panel.fill_between(part["confidence"], part["low"], part["high"], color=colour, alpha=0.25, lw=0)
        panel.plot(part["confidence"], part["frequency"], marker="o", ms=3, color=colour)
        share = part["count"] / part["count"].sum()
        panel.bar(part["confidence"], share * 0.25, width=0.04, bottom=0, color="0.75", alpha=0.6, zorder=0)
        runs = int(part["n_runs"].max()) if len(part) else 0
        panel.set_title(f"{name} ({runs} runs)", fontsize=10)
        panel.set_xlim(0, 1)
        panel.set_ylim(0, 1)
        panel.grid(alpha=0.3)
        panel.set_xlabel(xlabel)
        panel.set_ylabel(ylabel)
    if owned:
        text = (
            "Reliability, pooled over seeds (bands: 95 % bootstrap over seeds and test examples; "
            "grey bars: share of predictions per bin, x 0.25)"
        )
        title(fig, axes, text, owned, fontsize=10)
    return fig, axes
