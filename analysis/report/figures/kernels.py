"""First-layer kernel figures: mean absolute unit-norm kernels and radial power spectra."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.report.figures._layout import figure_axes, title
from analysis.report.figures.palette import colours_for


def kernel_maps(mean_abs: dict, *, row_labels: list[str], col_labels: list[str], ax=None):
    """Mean absolute unit-norm first-layer kernel per (row, column) cell, on one shared colour scale.

    Parameters
    ----------
    mean_abs : dict
        ``(row_label, col_label) -> size x size`` array (:func:`analysis.stats.kernels.kernel_summaries`).
    row_labels, col_labels : list of str
        Rows (variants) and columns (e.g. ``unpermuted``, ``permuted``) in display order.
    ax : array of Axes, optional
        ``rows x columns`` axes to draw into; a new figure by default.

    Returns
    -------
    ``(fig, axes)``
    """
    vmax = max((float(np.max(m)) for m in mean_abs.values()), default=1.0)
    shape = (len(row_labels), len(col_labels))
    if ax is None:
        fig = Figure(figsize=(1.9 * shape[1] + 1.4, 1.8 * shape[0] + 0.8), layout="constrained")
        axes, owned = fig.subplots(*shape, squeeze=False), True
    else:
        fig, flat, owned = figure_axes(ax, shape[0] * shape[1])
        axes = flat.reshape(shape)
    image = None
    for i, row in enumerate(row_labels):
        for j, col in enumerate(col_labels):
            panel = axes[i, j]
            panel.set_xticks([])
            panel.set_yticks([])
            if (row, col) in mean_abs:
                image = panel.imshow(mean_abs[(row, col)], cmap="viridis", vmin=0, vmax=vmax)
            else:
                panel.text(
                    0.5, 0.5, "no runs", ha="center", va="center", transform=panel.transAxes, fontsize=8
                )
            if i == 0:
                panel.set_title(col, fontsize=10)
            if j == 0:
                panel.set_ylabel(row, fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="mean |weight| of unit-norm kernels")
    if owned:
        fig.suptitle("First-layer kernels: mean absolute unit-norm kernel", fontsize=10)
    return fig, axes


def kernel_spectra(
    spectra: pd.DataFrame,
    *,
    variant: str = "variant",
    split: str = "permute",
    reference: str | None = None,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """Mean radial power spectrum per variant; solid lines unpermuted, dashed permuted, 95 % t-bands.

    Parameters
    ----------
    spectra : DataFrame
        The ``spectra`` frame of :func:`analysis.stats.kernels.kernel_summaries`.
    variant, split : str
        The column naming the curve's colour (variant or arm) and its line style (permuted or not).
    reference, ax, palette
        See :mod:`analysis.report.figures`.

    Returns
    -------
    ``(fig, ax)``
    """
    fig, axes, owned = figure_axes(ax, width=7.0, height=4.2)
    panel = axes[0]
    colours = colours_for(spectra[variant], palette, reference)
    for (name, level), part in spectra.groupby([variant, split], sort=True):
        colour = colours[str(name)]
        panel.plot(
            part["radius"], part["power"], color=colour, ls="--" if bool(level) else "-", marker="o", ms=3
        )
        panel.fill_between(part["radius"], part["low"], part["high"], color=colour, alpha=0.15, lw=0)
    panel.axhline(1.0, color="0.6", lw=1, ls=":")
    panel.set_yscale("log")
    panel.set_xlabel("spatial frequency (cycles per pixel; 0.5 = Nyquist)")
    panel.set_ylabel("power relative to white noise (log scale)")
    handles = [Line2D([], [], color=c, label=n) for n, c in colours.items()]
    handles += [
        Line2D([], [], color="0.3", ls="-", label="unpermuted"),
        Line2D([], [], color="0.3", ls="--", label="permuted"),
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=8)
    panel.grid(alpha=0.3)
    title(fig, axes, "First-layer kernels: radial power spectrum (white noise = 1)", owned, fontsize=10)
    return fig, panel
