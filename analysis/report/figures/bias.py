"""Decision-bias figures: FPR against FNR with intervals, and mean confusion matrices."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from analysis.report.figures._layout import MARKERS, figure_axes, ok_runs_at_fraction, one_or_many, title
from analysis.report.figures.palette import colours_for


def bias_plot(
    bias: pd.DataFrame, *, reference: str | None = None, ax=None, palette: Mapping[str, tuple] | None = None
):
    """FPR against FNR per variant x fraction, with interval crosses.

    Parameters
    ----------
    bias : DataFrame
        :func:`analysis.stats.bias.bias_summary` output (``variant, data_fraction, measure, mean, low,
        high``); rows pooled over fractions (NaN fraction) are left out, they repeat the others.
    reference, ax, palette
        See :mod:`analysis.report.figures`.

    Returns
    -------
    ``(fig, ax)``
    """
    bias = bias[bias["data_fraction"].notna()]
    wide = {m: bias[bias["measure"] == m].set_index(["variant", "data_fraction"]) for m in ("fpr", "fnr")}
    fractions = sorted(set(bias["data_fraction"].dropna()))
    colours = colours_for(bias["variant"], palette, reference)
    fig, axes, owned = figure_axes(ax, width=6.8, height=5.0)
    panel = axes[0]
    for key in wide["fpr"].index.intersection(wide["fnr"].index):
        fpr, fnr = wide["fpr"].loc[key], wide["fnr"].loc[key]
        marker = MARKERS[fractions.index(key[1]) % len(MARKERS)] if key[1] in fractions else "o"
        panel.errorbar(
            fpr["mean"] * 100,
            fnr["mean"] * 100,
            xerr=[[(fpr["mean"] - fpr["low"]) * 100], [(fpr["high"] - fpr["mean"]) * 100]],
            yerr=[[(fnr["mean"] - fnr["low"]) * 100], [(fnr["high"] - fnr["mean"]) * 100]],
            fmt=marker,
            color=colours[str(key[0])],
            capsize=2,
            alpha=0.85,
        )
    handles = [Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in colours.items()] + [
        Line2D([], [], color="0.4", marker=MARKERS[i % len(MARKERS)], ls="", label=f"{f:g}")
        for i, f in enumerate(fractions)
    ]
    fig.legend(handles=handles, title="variant / fraction", loc="outside right center")
    lim = max(panel.get_xlim()[1], panel.get_ylim()[1])
    panel.plot([0, lim], [0, lim], color="0.6", lw=1, ls=":")
    panel.set_xlabel("false-positive rate (%)")
    panel.set_ylabel("false-negative rate (%)")
    title(fig, axes, "FPR vs FNR, 95 % intervals (dotted: FPR = FNR)", owned)
    panel.grid(alpha=0.3)
    return fig, panel


def _mean_rates(part: pd.DataFrame) -> np.ndarray:
    """Mean row-normalised confusion matrix (true class x predicted class) over runs."""
    negatives = (part["tn"] + part["fp"]).to_numpy(float)
    positives = (part["tp"] + part["fn"]).to_numpy(float)
    return np.array(
        [
            [np.mean(part["tn"] / negatives), np.mean(part["fp"] / negatives)],
            [np.mean(part["fn"] / positives), np.mean(part["tp"] / positives)],
        ]
    )


def confusion_matrices(
    runs: pd.DataFrame,
    *,
    data_fraction: float | None = None,
    reference: str | None = None,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """Mean row-normalised confusion matrix per variant over seeds at one data fraction (default: largest).

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table (``status == "ok"`` rows are used) with ``tp, fp, tn, fn``.
    data_fraction : float, optional
        The fraction to show; the largest in the table by default.
    reference, ax, palette
        See :mod:`analysis.report.figures`.

    Returns
    -------
    ``(fig, axes)``
    """
    ok, fraction = ok_runs_at_fraction(runs, data_fraction)
    variants = list(colours_for(ok["variant"], palette, reference))
    fig, axes, owned = figure_axes(
        ax, len(variants), width=1.0 + 2.6 * len(variants), height=3.2, sharey=True
    )
    for panel, variant in zip(axes, variants, strict=True):
        part = ok[ok["variant"] == variant]
        sns.heatmap(
            _mean_rates(part) * 100,
            ax=panel,
            annot=True,
            fmt=".1f",
            vmin=0,
            vmax=100,
            cmap="Blues",
            cbar=False,
            square=True,
            xticklabels=["neg", "pos"],
            yticklabels=["neg", "pos"],
        )
        panel.set_title(f"{variant} (n={len(part)})")
        panel.set_xlabel("predicted")
    axes[0].set_ylabel("true class")
    text = f"Mean confusion matrices, % of each true class (data fraction {fraction:g})"
    if owned:
        fig.suptitle(text)
    return fig, one_or_many(axes)
