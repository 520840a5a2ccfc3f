"""Multi-class error figures: a row-normalised confusion matrix, and the hardest test examples."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.report.figures._layout import figure_axes, title
from analysis.report.figures.palette import colours_for

ANNOTATE_UP_TO = 12  # classes up to which every cell of a matrix is labelled with its value


def confusion_heatmap(matrix: pd.DataFrame, *, label: str, ax=None, colour: tuple | None = None):
    """One row-normalised confusion matrix (true class in rows), in percent, cells labelled.

    Parameters
    ----------
    matrix : DataFrame
        One group's rows of :func:`analysis.stats.errors.confusion_matrices` (``true_class,
        predicted_class, rate, n_runs``).
    label : str
        What the matrix is of (a model/variant), for the title.
    ax : Axes, optional
        Draw into it; a new figure by default.
    colour : tuple, optional
        The group's colour in the study palette, used for the title.

    Returns
    -------
    ``(fig, ax)``
    """
    grid = matrix.pivot(index="true_class", columns="predicted_class", values="rate").sort_index()
    grid = grid.reindex(columns=grid.index)
    k = len(grid)
    size = min(8.0, 2.5 + 0.45 * k)
    fig, axes, owned = figure_axes(ax, width=size + 1.2, height=size)
    panel = axes[0]
    image = panel.imshow(grid.to_numpy() * 100, cmap="Blues", vmin=0, vmax=100)
    if k <= ANNOTATE_UP_TO:
        for (i, j), value in np.ndenumerate(grid.to_numpy() * 100):
            if np.isfinite(value):
                shade = "white" if value > 60 else "black"
                panel.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8, color=shade)
    ticks = [str(c) for c in grid.index]
    panel.set_xticks(range(k), ticks)
    panel.set_yticks(range(k), ticks)
    panel.set_xlabel("predicted class")
    panel.set_ylabel("true class")
    runs = int(matrix["n_runs"].max()) if len(matrix) else 0
    fig.colorbar(image, ax=panel, shrink=0.8, label="% of the true class (row)")
    title(fig, axes, f"{label}: confusion matrix pooled over {runs} runs", owned, color=colour or "black")
    return fig, panel


def difficulty_heatmap(
    shares: pd.DataFrame,
    *,
    labels: list[str],
    reference: str | None = None,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """Share of runs that get each of the hardest test examples wrong, per model/variant.

    Parameters
    ----------
    shares : DataFrame
        Rows: the hardest examples (hardest first), columns: models/variants, values in [0, 1].
    labels : list of str
        One row label per example (its id, class and source).
    reference, ax, palette
        See :mod:`analysis.report.figures`; the column labels take the variant's colour.

    Returns
    -------
    ``(fig, ax)``
    """
    colours = colours_for(shares.columns, palette, reference)
    columns = list(colours)
    values = shares[columns].to_numpy(dtype=float) * 100
    fig, axes, owned = figure_axes(ax, width=3.5 + 0.75 * len(columns), height=1.2 + 0.36 * len(shares))
    panel = axes[0]
    image = panel.imshow(values, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        panel.text(
            j,
            i,
            f"{value:.0f}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if value > 60 else "black",
        )
    panel.set_xticks(range(len(columns)), columns, rotation=35, ha="right")
    for tick, name in zip(panel.get_xticklabels(), columns, strict=True):
        tick.set_color(colours[name])
    panel.set_yticks(range(len(labels)), labels, fontsize=8)
    fig.colorbar(image, ax=panel, shrink=0.8, label="% of runs wrong")
    title(fig, axes, "Hardest test examples: share of runs that get them wrong", owned, fontsize=10)
    return fig, panel
