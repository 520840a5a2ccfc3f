"""Forest plot of the inductive-bias tests, coloured by verdict, with the equivalence margin shaded."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from analysis.report.figures._layout import figure_axes, title
from analysis.report.figures.palette import VERDICT_COLOURS
from analysis.report.format import is_unit_metric


def hypothesis_forest(tests: pd.DataFrame, *, margin: float, ax=None):
    """Every test of the inductive-bias family: estimate, interval, verdict colour; margin band shaded.

    Parameters
    ----------
    tests : DataFrame
        :func:`analysis.verdicts.hypotheses.evaluate_hypotheses` test rows (``hypothesis, subject, part,
        metric, estimate, low, high, kind, verdict``); descriptive rows are left out.
    margin : float
        The equivalence margin, drawn as a grey band around 0.
    ax : Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    ``(fig, ax)``
    """
    rows = tests[tests["kind"] != "estimate"].reset_index(drop=True)
    fig, axes, owned = figure_axes(ax, width=8.5, height=1.2 + 0.3 * max(len(rows), 1))
    panel = axes[0]
    percent = all(is_unit_metric(m) or m.startswith("shift_consistency") for m in rows["metric"])
    scale = 100.0 if percent else 1.0
    panel.axvspan(-margin * scale, margin * scale, color="0.9", zorder=0)
    panel.axvline(0, color="0.4", lw=1, ls="--")
    for y, r in rows.iterrows():
        colour = VERDICT_COLOURS.get(r["verdict"], "0.45")
        lo, hi = r["estimate"] - r["low"], r["high"] - r["estimate"]
        xerr = None if np.isnan(lo) else [[max(lo, 0) * scale], [max(hi, 0) * scale]]
        marker = "s" if r["kind"] == "equivalence" else "o"
        panel.errorbar(r["estimate"] * scale, y, xerr=xerr, fmt=marker, color=colour, capsize=3, ms=5)
    labels = [f"{r.hypothesis} {r.subject}: {r.part}" for r in rows.itertuples()]
    panel.set_yticks(range(len(rows)), labels, fontsize=8)
    panel.invert_yaxis()
    unit = " (percentage points)" if scale == 100 else ""
    panel.set_xlabel(f"contrast{unit}; grey band: equivalence margin +-{margin * scale:g}")
    handles = [Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in VERDICT_COLOURS.items()]
    handles.append(Line2D([], [], color="0.3", marker="s", ls="", label="equivalence test"))
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    panel.grid(axis="x", alpha=0.3)
    text = "Inductive-bias tests: estimates with 95 % intervals, coloured by verdict"
    title(fig, axes, text, owned, fontsize=10)
    return fig, panel
