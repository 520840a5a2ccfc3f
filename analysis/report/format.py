"""Numbers -> table cells: estimates with intervals, p-values, values at the precision they support.

Cells that carry an interval read ``estimate [low, high]``. Metrics that live in [0, 1] (accuracy, FPR,
...) are shown in percentage points, with as many decimals as the interval width supports (two
significant digits of the width), so that a table never claims more precision than its interval.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# metrics bounded in [0, 1] (and differences between them): shown in percentage points
UNIT_METRICS = frozenset(
    {
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "specificity",
        "f1",
        "auroc",
        "auprc",
        "fpr",
        "fnr",
        "predicted_positive_rate",
        "prevalence",
        "ece",
        "train_accuracy",
        "val_accuracy",
        "val_auroc",
        "generalization_gap",
    }
)


def is_unit_metric(name: str) -> bool:
    """Whether ``name`` is a metric in [0, 1] that tables show in percentage points."""
    return str(name) in UNIT_METRICS


def decimals_for(width: float, *, digits: int = 2, max_decimals: int = 4) -> int:
    """Decimals that show ``digits`` significant digits of an interval ``width`` (0 for wide intervals).

    Examples
    --------
    >>> decimals_for(3.4), decimals_for(0.034), decimals_for(250.0)
    (1, 3, 0)
    """
    if not np.isfinite(width) or width <= 0:
        return min(max_decimals, 3)
    return int(min(max_decimals, max(0, digits - 1 - math.floor(math.log10(width)))))


def format_value(value: float, *, decimals: int | None = None, percent: bool = False) -> str:
    """One number as text; ``percent`` multiplies by 100; missing values become ``"n/a"``.

    Without ``decimals``, three significant digits are shown.
    """
    if value is None or pd.isna(value):
        return "n/a"
    value = float(value) * (100.0 if percent else 1.0)
    if decimals is None:
        if value == 0 or not np.isfinite(value):
            return f"{value:g}"
        decimals = int(min(6, max(0, 2 - math.floor(math.log10(abs(value))))))
    text = f"{value:.{decimals}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def format_interval(
    estimate: float, low: float, high: float, *, percent: bool = False, digits: int = 2
) -> str:
    """Format one cell as ``"estimate [low, high]"`` with decimals set by the interval width.

    Parameters
    ----------
    estimate, low, high : float
        The point estimate and the interval bounds, on the metric's own scale.
    percent : bool, default False
        Show values x100 (percentage points), for metrics in [0, 1].
    digits : int, default 2
        Significant digits of the interval width to show.

    Examples
    --------
    >>> format_interval(0.91234, 0.8951, 0.9287, percent=True)
    '91.2 [89.5, 92.9]'
    >>> format_interval(-0.031, -0.04, -0.022, percent=True)
    '-3.1 [-4.0, -2.2]'
    """
    if estimate is None or pd.isna(estimate):
        return "n/a"
    scale = 100.0 if percent else 1.0
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return format_value(estimate, percent=percent)
    d = decimals_for(abs(float(high) - float(low)) * scale, digits=digits)
    est, lo, hi = (format_value(v, decimals=d, percent=percent) for v in (estimate, low, high))
    return f"{est} [{lo}, {hi}]"


def format_p(p: float) -> str:
    """A p-value as text: three decimals, ``"<0.001"`` below that, ``"n/a"`` when missing."""
    if p is None or pd.isna(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def interval_cells(
    frame: pd.DataFrame,
    *,
    estimate: str = "mean",
    low: str = "low",
    high: str = "high",
    metric: str | None = None,
    metric_column: str = "metric",
) -> pd.Series:
    """One ``"estimate [low, high]"`` string per row of ``frame``.

    The percent scale is chosen per row from ``metric`` if given, else from the row's ``metric_column``.
    """
    cells = []
    for _, row in frame.iterrows():
        name = metric if metric is not None else row.get(metric_column, "")
        cells.append(format_interval(row[estimate], row[low], row[high], percent=is_unit_metric(name)))
    return pd.Series(cells, index=frame.index, dtype=object)


def cell_text(value: object) -> str:
    """One table cell as text: floats with three significant digits, missing values as ``"n/a"``."""
    if isinstance(value, float | np.floating):
        return format_value(value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "n/a"
    return str(value)
