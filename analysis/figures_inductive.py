"""Figures of the calibration and inductive-bias sections; each returns ``(fig, axes)`` and never saves.

Same conventions as :mod:`analysis.figures`: a bare :class:`matplotlib.figure.Figure` (no pyplot state),
constrained layout, the colour-blind palette with the reference variant first, metrics in [0, 1] in
percentage points.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.figures import variant_palette
from analysis.tables import is_unit_metric

VERDICT_COLOURS = {"supported": "#1b7837", "not supported": "#b2182b", "inconclusive": "0.45"}


def _grid(n: int, *, ncols: int = 4, width: float = 3.0, height: float = 3.0, **kw):
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(width * ncols + 0.6, height * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, **kw).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes


def reliability_diagram(curve: pd.DataFrame, *, group: str = "variant", binary: bool = True, reference=None):
    """One reliability panel per group: pooled observed frequency vs confidence, with its band.

    Parameters
    ----------
    curve : DataFrame
        :func:`analysis.reliability.reliability_curve` output (``group, confidence, frequency, low,
        high, count, n_runs``).
    group : str
        The grouping column, one panel per value.
    binary : bool
        Axis labels: P(positive) vs fraction positive, or top-label confidence vs accuracy.
    """
    names = list(variant_palette(curve[group], reference))
    palette = variant_palette(curve[group], reference)
    fig, axes = _grid(len(names), sharex=True, sharey=True)
    xlabel = "predicted P(positive)" if binary else "top-label confidence"
    ylabel = "observed fraction positive" if binary else "observed accuracy"
    for ax, name in zip(axes, names, strict=False):
        part = curve[curve[group].astype(str) == name].sort_values("confidence")
        colour = palette[name]
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":")
        ax.fill_between(part["confidence"], part["low"], part["high"], color=colour, alpha=0.25, lw=0)
        ax.plot(part["confidence"], part["frequency"], marker="o", ms=3, color=colour)
        share = part["count"] / part["count"].sum()
        ax.bar(part["confidence"], share * 0.25, width=0.04, bottom=0, color="0.75", alpha=0.6, zorder=0)
        runs = int(part["n_runs"].max()) if len(part) else 0
        ax.set_title(f"{name} ({runs} runs)", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    for ax in axes:
        if ax.get_visible():
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
    fig.suptitle(
        "Reliability, pooled over seeds (bands: 95 % bootstrap over seeds and test examples; "
        "grey bars: share of predictions per bin, x 0.25)",
        fontsize=10,
    )
    return fig, axes


def kernel_maps(mean_abs: dict, *, row_labels: list[str], col_labels: list[str]):
    """Mean absolute unit-norm first-layer kernel per (row, column) cell, on one shared colour scale.

    Parameters
    ----------
    mean_abs : dict
        ``(row_label, col_label) -> size x size`` array (:func:`analysis.kernels.kernel_summaries`).
    row_labels, col_labels : list of str
        Rows (variants) and columns (e.g. ``unpermuted``, ``permuted``) in display order.
    """
    maps = [m for m in mean_abs.values()]
    vmax = max(float(np.max(m)) for m in maps) if maps else 1.0
    fig = Figure(figsize=(1.9 * len(col_labels) + 1.4, 1.8 * len(row_labels) + 0.8), layout="constrained")
    axes = fig.subplots(len(row_labels), len(col_labels), squeeze=False)
    image = None
    for i, row in enumerate(row_labels):
        for j, col in enumerate(col_labels):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (row, col) in mean_abs:
                image = ax.imshow(mean_abs[(row, col)], cmap="viridis", vmin=0, vmax=vmax)
            else:
                ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            if i == 0:
                ax.set_title(col, fontsize=10)
            if j == 0:
                ax.set_ylabel(row, fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="mean |weight| of unit-norm kernels")
    fig.suptitle("First-layer kernels: mean absolute unit-norm kernel", fontsize=10)
    return fig, axes


def kernel_spectra(
    spectra: pd.DataFrame, *, variant: str = "variant", split: str = "permute", reference=None
):
    """Mean radial power spectrum per variant; solid lines unpermuted, dashed permuted, 95 % t-bands."""
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.subplots()
    palette = variant_palette(spectra[variant], reference)
    for (name, level), part in spectra.groupby([variant, split], sort=True):
        colour = palette[str(name)]
        ls = "--" if bool(level) else "-"
        ax.plot(part["radius"], part["power"], color=colour, ls=ls, marker="o", ms=3)
        ax.fill_between(part["radius"], part["low"], part["high"], color=colour, alpha=0.15, lw=0)
    ax.axhline(1.0, color="0.6", lw=1, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("spatial frequency (cycles per pixel; 0.5 = Nyquist)")
    ax.set_ylabel("power relative to white noise (log scale)")
    handles = [Line2D([], [], color=c, label=n) for n, c in palette.items()]
    handles += [Line2D([], [], color="0.3", ls="-", label="unpermuted"),
                Line2D([], [], color="0.3", ls="--", label="permuted")]  # fmt: skip
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle("First-layer kernels: radial power spectrum (white noise = 1)", fontsize=10)
    return fig, ax


def hypothesis_forest(tests: pd.DataFrame, *, margin: float):
    """Every test of the inductive-bias family: estimate, interval, verdict colour; margin band shaded.

    Parameters
    ----------
    tests : DataFrame
        :func:`analysis.inductive.inductive_tests` rows (``hypothesis, subject, part, metric, estimate,
        low, high, kind, verdict``).
    margin : float
        The equivalence margin, drawn as a grey band around 0.
    """
    rows = tests[tests["kind"] != "estimate"].reset_index(drop=True)
    fig = Figure(figsize=(8.5, 1.2 + 0.3 * max(len(rows), 1)), layout="constrained")
    ax = fig.subplots()
    scale = (
        100.0 if all(is_unit_metric(m) or m.startswith("shift_consistency") for m in rows["metric"]) else 1.0
    )
    ax.axvspan(-margin * scale, margin * scale, color="0.9", zorder=0)
    ax.axvline(0, color="0.4", lw=1, ls="--")
    for y, r in rows.iterrows():
        colour = VERDICT_COLOURS.get(r["verdict"], "0.45")
        lo, hi = r["estimate"] - r["low"], r["high"] - r["estimate"]
        xerr = None if np.isnan(lo) else [[max(lo, 0) * scale], [max(hi, 0) * scale]]
        marker = "s" if r["kind"] == "equivalence" else "o"
        ax.errorbar(r["estimate"] * scale, y, xerr=xerr, fmt=marker, color=colour, capsize=3, ms=5)
    labels = [f"{r.hypothesis} {r.subject}: {r.part}" for r in rows.itertuples()]
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    unit = " (percentage points)" if scale == 100 else ""
    ax.set_xlabel(f"contrast{unit}; grey band: equivalence margin +-{margin * scale:g}")
    handles = [Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in VERDICT_COLOURS.items()]
    handles.append(Line2D([], [], color="0.3", marker="s", ls="", label="equivalence test"))
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Inductive-bias tests: estimates with 95 % intervals, coloured by verdict", fontsize=10)
    return fig, ax
