"""Figure machinery shared by the plot modules: new figures or the caller's axes, scales, titles.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot), so no global figure
registry or interactive backend is touched; ``fig.savefig`` renders with Agg. Layout is
``constrained`` so labels and legends do not overlap.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.report.format import is_unit_metric

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def figure_axes(
    ax=None, n: int = 1, *, width: float = 6.4, height: float = 4.2, sharey: bool = False
) -> tuple[Figure, np.ndarray, bool]:
    """``n`` axes in a row: the caller's ``ax`` (one Axes or a sequence of ``n``), or a new figure's.

    Returns
    -------
    tuple
        ``(fig, axes, owned)``: the figure, a 1-D array of ``n`` axes, and whether the figure is new
        (then the plot may decorate it as a whole: suptitle, figure legend).

    Raises
    ------
    ValueError
        If ``ax`` holds a different number of axes than the plot draws.
    """
    if ax is None:
        fig = Figure(figsize=(width, height), layout="constrained")
        return fig, fig.subplots(1, n, sharey=sharey, squeeze=False)[0], True
    axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if len(axes) != n:
        raise ValueError(f"this figure draws {n} panel(s); pass ax with {n} axes, got {len(axes)}")
    return axes[0].figure, axes, False


def grid_axes(n: int, ax=None, *, ncols: int = 4, width: float = 3.0, height: float = 3.0, **kw):
    """``n`` panels: the caller's ``ax`` (``n`` axes), or a new figure's grid of up to ``ncols`` columns.

    Returns ``(fig, axes, owned)`` like :func:`figure_axes`; unused panels of a new grid are hidden.
    """
    if ax is not None:
        return figure_axes(ax, n)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(width * ncols + 0.6, height * nrows + 0.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, **kw).ravel())
    for extra in axes[n:]:
        extra.set_visible(False)
    return fig, axes[:n], True


def one_or_many(axes: np.ndarray):
    """A single Axes for a one-panel figure, else the array (what every plot function returns)."""
    return axes[0] if len(axes) == 1 else axes


def title(fig: Figure, axes: np.ndarray, text: str, owned: bool, **kw) -> None:
    """The figure's title on a figure the plot made, else on the first of the caller's axes."""
    if owned:
        fig.suptitle(text, **kw)
    else:
        axes[0].set_title(text, **kw)


def ok_runs_at_fraction(runs: pd.DataFrame, data_fraction: float | None) -> tuple[pd.DataFrame, float]:
    """The ok runs at one data fraction (the largest when None), and that fraction."""
    ok = runs[runs["status"] == "ok"]
    fraction = float(ok["data_fraction"].max()) if data_fraction is None else float(data_fraction)
    return ok[np.isclose(ok["data_fraction"], fraction)], fraction


def metric_scale(metric: str, *, difference: bool = False) -> tuple[float, str]:
    """Plot scale and unit label: metrics in [0, 1] in percent (percentage points for differences)."""
    if not is_unit_metric(metric):
        return 1.0, ""
    return 100.0, (" (percentage points)" if difference else " (%)")
