"""Training curves: loss and accuracy against optimiser steps per model/variant and data fraction."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from analysis.report.figures._layout import grid_axes, title
from analysis.report.figures.palette import colours_for

ROWS = (("loss", "train_loss", "val_loss"), ("accuracy (%)", "train_accuracy", "val_accuracy"))


def training_curves_plot(
    curves: pd.DataFrame,
    *,
    group: str = "variant",
    reference: str | None = None,
    level: str = "95 %",
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """Mean training (dashed) and validation (solid, with its band) curves, per group.

    Panels: loss on the top row, accuracy below, one column per data fraction. Bands are drawn for the
    validation curves only (the training ones would hide them) and cut at the measure's range (loss >= 0,
    accuracy in [0, 100] %), which a t band over few seeds can overshoot.

    Parameters
    ----------
    curves : DataFrame
        :func:`analysis.stats.training.training_curves` output (``group, data_fraction, x, measure,
        n_runs, mean, low, high, axis``).
    group : str
        The column naming the lines (variant, or model/variant arm).
    level : str
        The bands' confidence level, for the title.
    reference, ax, palette
        See :mod:`analysis.report.figures`; ``ax`` takes ``2 x fractions`` axes, row by row.

    Returns
    -------
    ``(fig, axes)``
    """
    fractions = sorted(set(curves["data_fraction"]))
    colours = colours_for(curves[group], palette, reference)
    fig, axes, owned = grid_axes(2 * len(fractions), ax, ncols=len(fractions), width=3.4, height=2.9)
    axis = str(curves["axis"].iloc[0]) if len(curves) else "step"
    for r, (ylabel, train, val) in enumerate(ROWS):
        scale = 100.0 if "accuracy" in ylabel else 1.0
        top = 100.0 if "accuracy" in ylabel else np.inf
        for c, fraction in enumerate(fractions):
            panel = axes[r * len(fractions) + c]
            part = curves[curves["data_fraction"] == fraction]
            for name, colour in colours.items():
                for measure, style in ((val, "-"), (train, "--")):
                    line = part[(part[group].astype(str) == name) & (part["measure"] == measure)]
                    line = line.sort_values("x")
                    panel.plot(line["x"], line["mean"] * scale, ls=style, color=colour, lw=1.4)
                    if measure == val:
                        band = line[line["n_runs"] >= 2]
                        low, high = (
                            np.clip(band["low"] * scale, 0, top),
                            np.clip(band["high"] * scale, 0, top),
                        )
                        panel.fill_between(band["x"], low, high, color=colour, alpha=0.18, lw=0)
            panel.grid(alpha=0.3)
            if r == 0:
                panel.set_title(f"data fraction {fraction:g}", fontsize=10)
            if r == len(ROWS) - 1:
                panel.set_xlabel("optimiser steps" if axis == "step" else "epoch")
            if c == 0:
                panel.set_ylabel(ylabel)
    handles = [Line2D([], [], color=colour, label=name) for name, colour in colours.items()]
    handles += [
        Line2D([], [], color="0.3", ls="-", label="validation"),
        Line2D([], [], color="0.3", ls="--", label="training"),
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    text = f"Training curves, mean over seeds (validation bands: {level} t intervals)"
    title(fig, axes, text, owned, fontsize=10)
    return fig, axes
