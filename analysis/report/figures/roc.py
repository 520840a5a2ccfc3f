"""ROC and precision-recall curves, mean over seeds with t-bands."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.report.figures._layout import figure_axes, ok_runs_at_fraction, title
from analysis.report.figures.palette import colours_for
from analysis.stats.intervals import t_band


def _mean_band(curves: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise mean and t-interval of the mean over rows (runs) of ``curves``, clipped to [0, 1]."""
    mean, half = t_band(curves, alpha)
    if curves.shape[0] < 2:
        return mean, mean, mean
    return mean, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1)


def _run_curves(labels: np.ndarray, scores: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TPR on an FPR grid (ROC) and precision on a recall grid (PR, interpolated precision) for one run."""
    order = np.argsort(-scores, kind="stable")
    y = labels[order]
    tp = np.concatenate([[0], np.cumsum(y)])
    fp = np.concatenate([[0], np.cumsum(1 - y)])
    pos, neg = max(tp[-1], 1), max(fp[-1], 1)
    tpr, fpr = tp / pos, fp / neg
    roc = np.interp(grid, fpr, tpr)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    # interpolated precision: the best precision at recall >= r, which makes the curve monotone
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    pr = envelope[np.minimum(np.searchsorted(tpr, grid, side="left"), len(tpr) - 1)]
    return roc, pr


def _variant_curves(preds: pd.DataFrame, run_ids, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC and PR curves of every run of one variant that has predictions: (runs, grid) each."""
    rocs, prs = [], []
    for run_id in run_ids:
        part = preds[preds["run_id"] == run_id]
        if part.empty:
            continue
        roc, pr = _run_curves(part["label"].to_numpy(int), part["score"].to_numpy(float), grid)
        rocs.append(roc)
        prs.append(pr)
    return np.array(rocs), np.array(prs)


def roc_pr_curves(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    data_fraction: float | None = None,
    reference: str | None = None,
    points: int = 101,
    ax=None,
    palette: Mapping[str, tuple] | None = None,
):
    """Pooled ROC and precision-recall curves per variant, mean over seeds with 95 % t-bands.

    Parameters
    ----------
    predictions : DataFrame
        The ``predictions`` table (binary: ``class_index == 1``, ``score`` = P(positive)).
    runs : DataFrame
        The ``runs`` table, to map ``run_id`` to variant and fraction (``status == "ok"`` only).
    data_fraction : float, optional
        The fraction to show; the largest by default.
    reference : str, optional
        The reference variant (coloured first when no ``palette`` is given).
    points : int, default 101
        Grid points on the FPR and recall axes.
    ax, palette
        See :mod:`analysis.report.figures`.

    Returns
    -------
    ``(fig, axes)``
    """
    ok, fraction = ok_runs_at_fraction(runs, data_fraction)
    ok = ok.set_index("run_id")["variant"]
    preds = predictions[(predictions["class_index"] == 1) & predictions["run_id"].isin(ok.index)]
    grid = np.linspace(0, 1, points)
    colours = colours_for(ok, palette, reference)
    fig, axes, owned = figure_axes(ax, 2, width=10.0, height=4.4)
    ax_roc, ax_pr = axes
    for variant, colour in colours.items():
        rocs, prs = _variant_curves(preds, ok.index[ok == variant], grid)
        if not len(rocs):
            continue
        for panel, curves in ((ax_roc, rocs), (ax_pr, prs)):
            mean, low, high = _mean_band(curves)
            panel.plot(grid, mean, color=colour, label=f"{variant} (n={len(curves)})")
            panel.fill_between(grid, low, high, color=colour, alpha=0.2)
    ax_roc.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":")
    ax_roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    ax_pr.set(xlabel="recall", ylabel="precision (interpolated)", title="Precision-recall")
    for panel in axes:
        panel.set_xlim(0, 1)
        panel.grid(alpha=0.3)
    ax_roc.legend(title="variant", loc="lower right")
    if owned:
        title(fig, axes, f"Mean curves over seeds, 95 % bands (data fraction {fraction:g})", owned)
    return fig, axes
