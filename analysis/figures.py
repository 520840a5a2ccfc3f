"""Report figures from the tidy statistics frames; every function returns ``(fig, ax)`` and never saves.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot), so no global figure registry or
interactive backend is touched; ``fig.savefig`` renders with Agg. Layout is ``constrained`` so labels and
legends do not overlap. Metrics in [0, 1] are plotted in percentage points.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless rendering for the report CLI; the figures below never need a GUI

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import NullFormatter, NullLocator  # noqa: E402
from scipy import stats  # noqa: E402

from analysis.tables import is_unit_metric  # noqa: E402

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_RATIO_TICKS = (0.1, 0.2, 0.25, 0.33, 0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 10.0)


def variant_palette(variants, reference: str | None = None) -> dict[str, tuple]:
    """One colour per variant (the reference first), stable across every figure of a report."""
    names = sorted(set(map(str, variants)))
    if reference in names:
        names.remove(reference)
        names.insert(0, reference)
    return dict(zip(names, sns.color_palette("colorblind", max(len(names), 1)), strict=False))


def _figure(ncols: int = 1, *, width: float = 6.4, height: float = 4.2, sharey: bool = False):
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, sharey=sharey, squeeze=False)[0]
    return fig, (axes[0] if ncols == 1 else axes)


def _scale(metric: str, *, difference: bool = False) -> tuple[float, str]:
    if not is_unit_metric(metric):
        return 1.0, ""
    return 100.0, (" (percentage points)" if difference else " (%)")


def learning_curves(curve: pd.DataFrame, *, metric: str, reference: str | None = None):
    """Metric vs training-set size, one line per variant with its interval band.

    Parameters
    ----------
    curve : DataFrame
        Columns ``variant, n_train, mean, low, high`` (``analysis.curves.learning_curve``).
    metric : str
        Metric name, for the axis label and scale.
    reference : str, optional
        The reference variant (coloured first).
    """
    scale, unit = _scale(metric)
    fig, ax = _figure()
    palette = variant_palette(curve["variant"], reference)
    for variant, part in curve.sort_values("n_train").groupby("variant", sort=True):
        colour = palette[str(variant)]
        ax.plot(part["n_train"], part["mean"] * scale, marker="o", color=colour, label=str(variant))
        ax.fill_between(part["n_train"], part["low"] * scale, part["high"] * scale, color=colour, alpha=0.2)
    ax.set_xscale("log")
    sizes = sorted(set(curve["n_train"]))
    ax.set_xticks(sizes, [f"{n:,.0f}" for n in sizes])  # the design's sizes, not 3x10^2-style minor labels
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training examples (log scale)")
    ax.set_ylabel(f"{metric}{unit}")
    ax.set_title(f"Learning curves: {metric} (bands: 95 % intervals over seeds)")
    ax.legend(title="variant")
    ax.grid(alpha=0.3)
    return fig, ax


def forest_plot(contrasts: pd.DataFrame):
    """Paired differences vs the reference with intervals, one panel per metric.

    Parameters
    ----------
    contrasts : DataFrame
        Columns ``metric, variant, reference, data_fraction, diff, low, high`` (pooled rows have
        ``data_fraction`` NaN and are drawn with a filled diamond).
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
    fig, axes = _figure(len(metrics), width=3.2 + 3.0 * len(metrics), height=height, sharey=True)
    axes = np.atleast_1d(axes)
    references = sorted(set(map(str, contrasts["reference"])))
    palette = variant_palette([*contrasts["variant"], *references], references[0] if references else None)
    for ax, metric in zip(axes, metrics, strict=True):
        scale, unit = _scale(metric, difference=True)
        part = contrasts[contrasts["metric"] == metric]
        for row in part.itertuples(index=False):
            y = position[(row.variant, -1 if pd.isna(row.data_fraction) else row.data_fraction)]
            pooled = pd.isna(row.data_fraction)
            ax.errorbar(
                row.diff * scale,
                y,
                xerr=[[max(row.diff - row.low, 0) * scale], [max(row.high - row.diff, 0) * scale]],
                fmt="D" if pooled else "o",
                markersize=7 if pooled else 5,
                color=palette[str(row.variant)],
                capsize=3,
            )
        ax.axvline(0, color="0.3", lw=1, ls="--")
        ax.set_xlabel(f"difference in {metric}{unit}")
        ax.grid(axis="x", alpha=0.3)
    reference = ", ".join(references)
    axes[0].set_yticks(range(len(labels)), labels)
    axes[0].invert_yaxis()
    fig.suptitle(f"Paired differences vs {reference} (95 % intervals, seeds resampled jointly)")
    return fig, (axes[0] if len(axes) == 1 else axes)


def bias_plot(bias: pd.DataFrame, *, reference: str | None = None):
    """FPR against FNR per variant x fraction, with interval crosses (``analysis.bias.bias_summary``)."""
    bias = bias[
        bias["data_fraction"].notna()
    ]  # pooled rows (NaN fraction) would repeat the per-fraction ones
    wide = {m: bias[bias["measure"] == m].set_index(["variant", "data_fraction"]) for m in ("fpr", "fnr")}
    fractions = sorted(set(bias["data_fraction"].dropna()))
    palette = variant_palette(bias["variant"], reference)
    fig, ax = _figure(width=6.8, height=5.0)
    for key in wide["fpr"].index.intersection(wide["fnr"].index):
        fpr, fnr = wide["fpr"].loc[key], wide["fnr"].loc[key]
        marker = _MARKERS[fractions.index(key[1]) % len(_MARKERS)] if key[1] in fractions else "o"
        ax.errorbar(
            fpr["mean"] * 100,
            fnr["mean"] * 100,
            xerr=[[(fpr["mean"] - fpr["low"]) * 100], [(fpr["high"] - fpr["mean"]) * 100]],
            yerr=[[(fnr["mean"] - fnr["low"]) * 100], [(fnr["high"] - fnr["mean"]) * 100]],
            fmt=marker,
            color=palette[str(key[0])],
            capsize=2,
            alpha=0.85,
        )
    handles = [Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in palette.items()] + [
        Line2D([], [], color="0.4", marker=_MARKERS[i % len(_MARKERS)], ls="", label=f"{f:g}")
        for i, f in enumerate(fractions)
    ]
    fig.legend(handles=handles, title="variant / fraction", loc="outside right center")
    lim = max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([0, lim], [0, lim], color="0.6", lw=1, ls=":")
    ax.set_xlabel("false-positive rate (%)")
    ax.set_ylabel("false-negative rate (%)")
    fig.suptitle("FPR vs FNR, 95 % intervals (dotted: FPR = FNR)")
    ax.grid(alpha=0.3)
    return fig, ax


def confusion_matrices(
    runs: pd.DataFrame, *, data_fraction: float | None = None, reference: str | None = None
):
    """Mean row-normalised confusion matrix per variant over seeds at one data fraction (default: largest).

    Parameters
    ----------
    runs : DataFrame
        The ``runs`` table (``status == "ok"`` rows are used) with ``tp, fp, tn, fn``.
    data_fraction : float, optional
        The fraction to show; the largest in the table by default.
    """
    ok = runs[runs["status"] == "ok"]
    fraction = float(ok["data_fraction"].max()) if data_fraction is None else float(data_fraction)
    ok = ok[np.isclose(ok["data_fraction"], fraction)]
    variants = list(variant_palette(ok["variant"], reference))
    fig, axes = _figure(len(variants), width=1.0 + 2.6 * len(variants), height=3.2, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, variant in zip(axes, variants, strict=True):
        part = ok[ok["variant"] == variant]
        negatives = (part["tn"] + part["fp"]).to_numpy(float)
        positives = (part["tp"] + part["fn"]).to_numpy(float)
        rates = np.array(
            [
                [np.mean(part["tn"] / negatives), np.mean(part["fp"] / negatives)],
                [np.mean(part["fn"] / positives), np.mean(part["tp"] / positives)],
            ]
        )
        sns.heatmap(
            rates * 100,
            ax=ax,
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
        ax.set_title(f"{variant} (n={len(part)})")
        ax.set_xlabel("predicted")
    axes[0].set_ylabel("true class")
    fig.suptitle(f"Mean confusion matrices, % of each true class (data fraction {fraction:g})")
    return fig, (axes[0] if len(axes) == 1 else axes)


def _mean_band(curves: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise mean and t-interval of the mean over rows (runs) of ``curves``."""
    n = curves.shape[0]
    mean = curves.mean(axis=0)
    if n < 2:
        return mean, mean, mean
    half = stats.t.ppf(1 - alpha / 2, n - 1) * curves.std(axis=0, ddof=1) / np.sqrt(n)
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


def roc_pr_curves(
    predictions: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    data_fraction: float | None = None,
    reference: str | None = None,
    points: int = 101,
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
    points : int, default 101
        Grid points on the FPR and recall axes.
    """
    ok = runs[runs["status"] == "ok"]
    fraction = float(ok["data_fraction"].max()) if data_fraction is None else float(data_fraction)
    ok = ok[np.isclose(ok["data_fraction"], fraction)].set_index("run_id")["variant"]
    preds = predictions[(predictions["class_index"] == 1) & predictions["run_id"].isin(ok.index)]
    grid = np.linspace(0, 1, points)
    palette = variant_palette(ok, reference)
    fig, (ax_roc, ax_pr) = _figure(2, width=10.0, height=4.4)
    for variant in palette:
        rocs, prs = [], []
        for run_id in ok.index[ok == variant]:
            part = preds[preds["run_id"] == run_id]
            if part.empty:
                continue
            roc, pr = _run_curves(part["label"].to_numpy(int), part["score"].to_numpy(float), grid)
            rocs.append(roc)
            prs.append(pr)
        if not rocs:
            continue
        colour = palette[variant]
        for ax, curves in ((ax_roc, np.array(rocs)), (ax_pr, np.array(prs))):
            mean, low, high = _mean_band(curves)
            ax.plot(grid, mean, color=colour, label=f"{variant} (n={len(curves)})")
            ax.fill_between(grid, low, high, color=colour, alpha=0.2)
    ax_roc.plot([0, 1], [0, 1], color="0.6", lw=1, ls=":")
    ax_roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
    ax_pr.set(xlabel="recall", ylabel="precision (interpolated)", title="Precision-recall")
    for ax in (ax_roc, ax_pr):
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
    ax_roc.legend(title="variant", loc="lower right")
    fig.suptitle(f"Mean curves over seeds, 95 % bands (data fraction {fraction:g})")
    return fig, np.array([ax_roc, ax_pr])


_COST_LABELS = {
    "median_ms": ("median latency (ms, log scale)", True),
    "params": ("parameters (log scale)", True),
    "throughput": ("throughput (images/s, log scale)", True),
}


def tradeoff_plot(frame: pd.DataFrame, *, metric: str = "accuracy", reference: str | None = None):
    """Metric (with interval) against cost: latency, model size and throughput, one panel each.

    Parameters
    ----------
    frame : DataFrame
        One row per variant: ``variant, mean, low, high`` and any of ``median_ms, params, throughput``.
        Cost columns that are absent or all missing get no panel.
    """
    costs = [c for c in _COST_LABELS if c in frame and frame[c].notna().any()]
    if not costs:
        raise ValueError(f"tradeoff_plot needs at least one of {list(_COST_LABELS)} with values")
    scale, unit = _scale(metric)
    palette = variant_palette(frame["variant"], reference)
    fig, axes = _figure(len(costs), width=1.0 + 3.6 * len(costs), height=3.8, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, cost in zip(axes, costs, strict=True):
        for row in frame.itertuples(index=False):
            x = getattr(row, cost)
            if pd.isna(x):
                continue
            ax.errorbar(
                x,
                row.mean * scale,
                yerr=[[(row.mean - row.low) * scale], [(row.high - row.mean) * scale]],
                fmt="o",
                color=palette[str(row.variant)],
                capsize=3,
                label=str(row.variant),
            )
        label, log = _COST_LABELS[cost]
        values = frame[cost].dropna().to_numpy(float)
        # a log axis spanning less than a decade only adds cramped minor-tick labels
        if log and values.min() > 0 and values.max() / values.min() >= 10:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            label = label.replace(", log scale", "").replace(" (log scale)", "")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{metric}{unit}")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), title="variant", loc="outside right center")
    fig.suptitle(f"{metric} vs cost (95 % intervals over seeds)")
    return fig, (axes[0] if len(axes) == 1 else axes)


def interval_points(
    summary: pd.DataFrame, *, metric: str, title: str, ylabel: str, reference: str | None = None
):
    """Mean and interval per variant at each data fraction, variants dodged side by side.

    Parameters
    ----------
    summary : DataFrame
        Columns ``variant, data_fraction, mean, low, high`` (``analysis.bootstrap.seed_summary``).
    """
    scale, unit = _scale(metric, difference=metric == "generalization_gap")
    fractions = sorted(set(summary["data_fraction"]))
    palette = variant_palette(summary["variant"], reference)
    fig, ax = _figure(width=max(6.4, 1.2 * len(fractions) + 3), height=4.2)
    width = 0.8 / max(len(palette), 1)
    for i, (variant, colour) in enumerate(palette.items()):
        part = summary[summary["variant"] == variant]
        x = np.array([fractions.index(f) for f in part["data_fraction"]]) - 0.4 + width * (i + 0.5)
        ax.errorbar(
            x,
            part["mean"] * scale,
            yerr=[(part["mean"] - part["low"]) * scale, (part["high"] - part["mean"]) * scale],
            fmt="o",
            color=colour,
            capsize=3,
            label=variant,
        )
    ax.set_xticks(range(len(fractions)), [f"{f:g}" for f in fractions])
    ax.set_xlabel("data fraction")
    ax.set_ylabel(f"{ylabel}{unit}")
    ax.axhline(0, color="0.6", lw=1)
    fig.suptitle(title)
    fig.legend(title="variant", loc="outside right center")
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def generalization_gap_plot(summary: pd.DataFrame, *, reference: str | None = None):
    """Generalization gap (train accuracy - test accuracy) per variant x fraction with intervals."""
    return interval_points(
        summary,
        metric="generalization_gap",
        title="Generalization gap, 95 % intervals over seeds",
        ylabel="train - test accuracy",
        reference=reference,
    )


def _spaced_ticks(low: float, high: float, n: int = 8) -> list[float]:
    """Round ratios within [low, high], 1 first, then others at least 1/n of the log range apart."""
    gap = np.log(high / low) / n
    kept: list[float] = []
    for t in sorted((t for t in _RATIO_TICKS if low <= t <= high), key=lambda t: abs(np.log(t))):
        if all(abs(np.log(t / k)) >= gap for k in kept):
            kept.append(t)
    return sorted(kept)


def latency_ratio_plot(ratios: pd.DataFrame):
    """Latency ratio of medians vs the reference per batch size, log scale (``analysis.latency``).

    Parameters
    ----------
    ratios : DataFrame
        Columns ``variant, reference, batch_size, memory_format, ratio, low, high``.
    """
    batches = sorted(set(ratios["batch_size"]))
    formats = sorted(set(map(str, ratios["memory_format"])))
    references = sorted(set(map(str, ratios["reference"])))
    palette = variant_palette([*ratios["variant"], *references], references[0] if references else None)
    fig, ax = _figure(width=max(6.4, 1.0 * len(batches) + 4), height=4.2)
    groups = [(v, f) for v in palette for f in formats]
    width = 0.8 / max(len(groups), 1)
    for i, (variant, fmt) in enumerate(groups):
        part = ratios[(ratios["variant"] == variant) & (ratios["memory_format"].astype(str) == fmt)]
        if part.empty:
            continue
        x = np.array([batches.index(b) for b in part["batch_size"]]) - 0.4 + width * (i + 0.5)
        ax.errorbar(
            x,
            part["ratio"],
            yerr=[part["ratio"] - part["low"], part["high"] - part["ratio"]],
            fmt=_MARKERS[formats.index(fmt) % len(_MARKERS)],
            color=palette[variant],
            capsize=3,
            label=variant if len(formats) == 1 else f"{variant}, {fmt}",
        )
    ax.set_yscale("log")
    ax.axhline(1, color="0.3", lw=1, ls="--")
    low, high = ax.get_ylim()
    ticks = _spaced_ticks(low, high)
    if len(ticks) >= 2:  # readable ratios (0.8, 1.25) instead of 8 x 10^-1 minor-tick labels
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
        ax.yaxis.set_minor_locator(NullLocator())
    ax.set_xticks(range(len(batches)), [str(b) for b in batches])
    ax.set_xlabel("batch size")
    reference = ", ".join(references)
    ax.set_ylabel(f"median latency / {reference} (log scale)")
    fig.suptitle("Latency ratio of medians, 95 % intervals (below 1: faster)")
    fig.legend(title="variant", loc="outside right center")
    ax.grid(axis="y", alpha=0.3, which="both")
    return fig, ax
