"""Learning curves and per-fraction interval plots (generalization gap)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from analysis.report.figures._layout import figure_axes, metric_scale, title
from analysis.report.figures.palette import colours_for


def learning_curves(
    curve: pd.DataFrame,
    *,
    metric: str,
    reference: str | None = None,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """Metric vs training-set size, one line per variant with its interval band.

    Parameters
    ----------
    curve : DataFrame
        Columns ``variant, n_train, mean, low, high`` (:func:`analysis.stats.curves.learning_curve`).
    metric : str
        Metric name, for the axis label and scale.
    reference, ax, palette
        See :mod:`analysis.report.figures`.

    Returns
    -------
    ``(fig, ax)``
    """
    scale, unit = metric_scale(metric)
    fig, axes, _ = figure_axes(ax)
    panel = axes[0]
    colours = colours_for(curve["variant"], palette, reference)
    for variant, part in curve.sort_values("n_train").groupby("variant", sort=True):
        colour = colours[str(variant)]
        panel.plot(part["n_train"], part["mean"] * scale, marker="o", color=colour, label=str(variant))
        panel.fill_between(
            part["n_train"], part["low"] * scale, part["high"] * scale, color=colour, alpha=0.2
        )
    panel.set_xscale("log")
    sizes = sorted(set(curve["n_train"]))
    panel.set_xticks(sizes, [f"{n:,.0f}" for n in sizes])  # the design's sizes, not 3x10^2-style labels
    panel.xaxis.set_minor_formatter(NullFormatter())
    panel.set_xlabel("training examples (log scale)")
    panel.set_ylabel(f"{metric}{unit}")
    panel.set_title(f"Learning curves: {metric} (bands: 95 % intervals over seeds)")
    panel.legend(title="variant")
    panel.grid(alpha=0.3)
    return fig, panel


def interval_points(
    summary: pd.DataFrame,
    *,
    metric: str,
    title_text: str,
    ylabel: str,
    reference: str | None = None,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """Mean and interval per variant at each data fraction, variants dodged side by side.

    Parameters
    ----------
    summary : DataFrame
        Columns ``variant, data_fraction, mean, low, high`` (:func:`analysis.stats.intervals.seed_summary`).
    metric : str
        Metric name, for the scale.
    title_text, ylabel : str
        The figure's title and the y axis label (the unit is appended).
    reference, ax, palette
        As in :func:`learning_curves`.

    Returns
    -------
    ``(fig, ax)``
    """
    scale, unit = metric_scale(metric, difference=metric == "generalization_gap")
    fractions = sorted(set(summary["data_fraction"]))
    colours = colours_for(summary["variant"], palette, reference)
    fig, axes, owned = figure_axes(ax, width=max(6.4, 1.2 * len(fractions) + 3), height=4.2)
    panel = axes[0]
    width = 0.8 / max(len(colours), 1)
    for i, (variant, colour) in enumerate(colours.items()):
        part = summary[summary["variant"] == variant]
        x = np.array([fractions.index(f) for f in part["data_fraction"]]) - 0.4 + width * (i + 0.5)
        panel.errorbar(
            x,
            part["mean"] * scale,
            yerr=[(part["mean"] - part["low"]) * scale, (part["high"] - part["mean"]) * scale],
            fmt="o",
            color=colour,
            capsize=3,
            label=variant,
        )
    panel.set_xticks(range(len(fractions)), [f"{f:g}" for f in fractions])
    panel.set_xlabel("data fraction")
    panel.set_ylabel(f"{ylabel}{unit}")
    panel.axhline(0, color="0.6", lw=1)
    title(fig, axes, title_text, owned)
    fig.legend(title="variant", loc="outside right center")
    panel.grid(axis="y", alpha=0.3)
    return fig, panel


def generalization_gap_plot(
    summary: pd.DataFrame,
    *,
    reference: str | None = None,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """Generalization gap (train accuracy - test accuracy) per variant x fraction with intervals."""
    return interval_points(
        summary,
        metric="generalization_gap",
        title_text="Generalization gap, 95 % intervals over seeds",
        ylabel="train - test accuracy",
        reference=reference,
        ax=ax,
        palette=palette,
    )
