"""Grad-CAM figures: mean maps per model/variant and image, and the width of their seed bands."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.report.figures._layout import figure_axes
from analysis.report.figures.palette import colours_for

VALUES = {
    "mean": ("mean Grad-CAM map over seeds", "viridis"),
    "band": ("width of the seed band (high - low)", "magma"),
}


def _grid(part: pd.DataFrame, column: str) -> np.ndarray:
    """A ``row x col`` array of ``column`` from the long rows of one map."""
    return part.pivot(index="row", columns="col", values=column).sort_index().sort_index(axis=1).to_numpy()


def _mosaic(part: pd.DataFrame, images: list, column: str) -> tuple[np.ndarray, list[float]]:
    """The maps of ``images`` side by side (one NaN column between them) and each map's centre column."""
    side = int(part["row"].max()) + 1 if len(part) else 1
    blocks, centres, start = [], [], 0
    for example in images:
        one = part[part["example_id"] == example]
        block = _grid(one, column) if len(one) else np.full((side, side), np.nan)
        blocks += [block, np.full((block.shape[0], 1), np.nan)]
        centres.append(start + (block.shape[1] - 1) / 2)
        start += block.shape[1] + 1
    return np.hstack(blocks[:-1]), centres


def saliency_maps_plot(
    maps: pd.DataFrame,
    *,
    group: str = "variant",
    value: str = "mean",
    level: str = "95 %",
    reference: str | None = None,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """One panel row per group showing its maps side by side, one per image (-1 = the mean over images).

    Parameters
    ----------
    maps : DataFrame
        :func:`analysis.stats.saliency.mean_maps` rows (``group, example_id, row, col, mean, low, high,
        mask``), for the images to draw.
    group : str
        The column naming the rows (variant, or model/variant arm).
    value : str
        ``"mean"`` (the mean map) or ``"band"`` (the band's width, how much the map varies over seeds).
    level : str
        The bands' confidence level, for the colour bar.
    reference, ax, palette
        See :mod:`analysis.report.figures`; the row labels take the group's colour. ``ax`` takes one
        axes per group.

    Returns
    -------
    ``(fig, axes)``

    Notes
    -----
    The ground-truth mask (where the study has one) is outlined in white where grid cells are at least
    half inside it; the mean over images has no single mask and no outline.
    """
    if value not in VALUES:
        raise ValueError(f"value {value!r} is unknown; choose from {', '.join(VALUES)}")
    colours = colours_for(maps[group], palette, reference)
    images = sorted(set(maps["example_id"]), key=lambda e: (e == -1, e))
    if ax is None:  # one panel per group, stacked
        size = (1.7 * len(images) + 1.8, 1.0 + 1.6 * len(colours))
        fig = Figure(figsize=size, layout="constrained")
        axes, owned = np.atleast_1d(fig.subplots(len(colours), 1, squeeze=False)[:, 0]), True
    else:
        fig, axes, owned = figure_axes(ax, len(colours))
    data = maps.assign(band=maps["high"] - maps["low"])
    vmax = 1.0 if value == "mean" else float(np.nanmax(data["band"])) if data["band"].notna().any() else 1.0
    label, cmap = VALUES[value]
    names = ["mean of images" if e == -1 else f"image {e}" for e in images]
    image = None
    for panel, (name, colour) in zip(axes, colours.items(), strict=True):
        part = data[data[group].astype(str) == name]
        mosaic, centres = _mosaic(part, images, value)
        image = panel.imshow(mosaic, cmap=cmap, vmin=0, vmax=vmax)
        # the mean over images has no single mask: no outline there
        mask, _ = _mosaic(part.assign(mask=part["mask"].where(part["example_id"] != -1)), images, "mask")
        if np.isfinite(mask).any() and np.nanmax(mask) > 0:
            panel.contour(np.nan_to_num(mask), levels=[0.5], colors="white", linewidths=1.0)
        panel.set_xticks(centres, names, fontsize=8)
        panel.set_yticks([])
        panel.set_ylabel(name, fontsize=9, color=colour)
        for spine in panel.spines.values():
            spine.set_visible(False)
    if image is not None:
        unit = f" ({level} t band)" if value == "band" else ""
        fig.colorbar(image, ax=axes, shrink=0.8, label=f"{label}{unit}")
    if owned:
        fig.suptitle(f"Grad-CAM: {label}; white outline: ground-truth mask", fontsize=10)
    return fig, axes
