"""Forest plot of paired contrasts against the reference."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from analysis.report.figures._layout import figure_axes, metric_scale, one_or_many, title
from analysis.report.figures.palette import colours_for


def forest_plot(contrasts: pd.DataFrame, *, ax=None, palette: Mapping[str, tuple] | None = None):
    """Paired differences vs the reference with intervals, one panel per metric.

    Parameters
    ----------
    contrasts : DataFrame
        Columns ``metric, variant, reference, data_fraction, diff, low, high`` (pooled rows have
        ``data_fraction`` NaN and are drawn with a filled diamond).
    ax, palette
        See :mod:`analysis.report.figures`.

    Returns
    -------
    ``(fig, axes)``
    """
    metrics = list(dict.fromkeys(contrasts["metric"]))
    rows = contrasts.drop_duplicates(["variant", "data_fraction"]).sort_values(
        ["variant", "data_fraction"], na_position="last"
    )
    labels = [
        f"{v}, pooled" if pd.isna(f) else f"{v}, fraction {f:g}"
        for v, f in zip(rows["variant"], rows["data_fraction"], strict=True)
    ]
    position = {
        key: i for i, key in enumerate(zip(rows["variant"], rows["data_fraction"].fillna(-1), strict=True))
    }
    height = 1.2 + 0.28 * len(labels)
    fig, axes, owned = figure_axes(
        ax, len(metrics), width=3.2 + 3.0 * len(metrics), height=height, sharey=True
    )
    references = sorted(set(map(str, contrasts["reference"])))
    colours = colours_for(
        [*contrasts["variant"], *references], palette, references[0] if references else None
    )
    for panel, metric in zip(axes, metrics, strict=True):
        scale, unit = metric_scale(metric, difference=True)
        for row in contrasts[contrasts["metric"] == metric].itertuples(index=False):
            pooled = pd.isna(row.data_fraction)
            panel.errorbar(
                row.diff * scale,
                position[(row.variant, -1 if pooled else row.data_fraction)],
                xerr=[[max(row.diff - row.low, 0) * scale], [max(row.high - row.diff, 0) * scale]],
                fmt="D" if pooled else "o",
                markersize=7 if pooled else 5,
                color=colours[str(row.variant)],
                capsize=3,
            )
        panel.axvline(0, color="0.3", lw=1, ls="--")
        panel.set_xlabel(f"difference in {metric}{unit}")
        panel.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].invert_yaxis()
    reference = ", ".join(references)
    title(fig, axes, f"Paired differences vs {reference} (95 % intervals, seeds resampled jointly)", owned)
    return fig, one_or_many(axes)
