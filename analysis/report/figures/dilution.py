"""The dilution figure: the operator effect in the LeNet and in the residual model, side by side."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.report.figures._layout import figure_axes, metric_scale, one_or_many, title
from analysis.report.figures.palette import VERDICT_COLOURS, colours_for


def dilution_plot(
    tests: pd.DataFrame, *, level: str = "95 %", ax=None, palette: Mapping[str, tuple] | None = None
):
    """One panel per residual model x variant: both models' operator effects per fraction and pooled.

    Parameters
    ----------
    tests : DataFrame
        :func:`analysis.verdicts.dilution.evaluate_dilution`'s tests (``model, base_model, variant,
        reference, data_fraction, effect_base[_low, _high], effect_model[_low, _high], verdict``).
    level : str
        The intervals' confidence level, for the title.
    ax, palette
        See :mod:`analysis.report.figures`; colours are those of the ``model:variant`` arms.

    Returns
    -------
    ``(fig, axes)``
    """
    panels = list(dict.fromkeys(zip(tests["model"], tests["variant"], strict=True)))
    fig, axes, owned = figure_axes(ax, len(panels), width=1.0 + 3.4 * len(panels), height=4.0, sharey=True)
    metric = str(tests["metric"].iloc[0])
    scale, unit = metric_scale(metric, difference=True)
    for panel, (model, variant) in zip(axes, panels, strict=True):
        part = tests[(tests["model"] == model) & (tests["variant"] == variant)]
        base = str(part["base_model"].iloc[0])
        part = part.sort_values("data_fraction", na_position="last")
        labels = ["pooled" if pd.isna(f) else f"{f:g}" for f in part["data_fraction"]]
        x = np.arange(len(part))
        names = [f"{base}:{variant}", f"{model}:{variant}"]
        colours = colours_for(names, palette) if palette is None or all(n in palette for n in names) else {}
        for k, (name, column) in enumerate(zip(names, ("effect_base", "effect_model"), strict=True)):
            est = part[column].to_numpy(dtype=float) * scale
            low = part[f"{column}_low"].to_numpy(dtype=float) * scale
            high = part[f"{column}_high"].to_numpy(dtype=float) * scale
            panel.errorbar(
                x - 0.12 + 0.24 * k,
                est,
                yerr=[np.nan_to_num(est - low), np.nan_to_num(high - est)],
                fmt="o" if k == 0 else "s",
                color=colours.get(name, ("0.2", "0.55")[k]),
                capsize=3,
                label=name,
            )
        panel.axhline(0, color="0.4", lw=1, ls="--")
        panel.set_xticks(x, labels)
        panel.set_xlabel("data fraction")
        verdict = str(part["verdict"].iloc[-1])
        panel.set_title(
            f"{variant} - {part['reference'].iloc[0]}\n{verdict}",
            fontsize=9,
            color=VERDICT_COLOURS.get(verdict, "black"),
        )
        panel.grid(axis="y", alpha=0.3)
        panel.legend(fontsize=8, loc="best")
    axes[0].set_ylabel(f"operator effect on {metric}{unit}")
    title(fig, axes, f"Operator effect in each model ({level} intervals over seeds)", owned, fontsize=10)
    return fig, one_or_many(axes)
