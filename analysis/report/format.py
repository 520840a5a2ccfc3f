"""Tidy result frames -> Markdown and LaTeX table strings (no file I/O; ``report.py`` writes files).

Cells that carry an interval read ``estimate [low, high]``. Metrics that live in [0, 1] (accuracy, FPR,
...) are shown in percentage points, with as many decimals as the interval width supports (two
significant digits of the width), so that a table never claims more precision than its interval.
"""

from __future__ import annotations

import math
import re

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

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    # the default OT1 font encoding has no text glyphs for these (and T1 needs extra font packages)
    "<": r"$<$",
    ">": r"$>$",
    "|": r"$|$",
}
_LATEX_UNICODE = {
    "×": r"$\times$",
    "−": "-",
    "–": "--",
    "—": "---",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "±": r"$\pm$",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in [*_LATEX_SPECIAL, *_LATEX_UNICODE]))
_NEGATIVE_NUMBER = re.compile(r"(?<![\w.])-(?=\d)")


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


def _cell_text(value: object) -> str:
    if isinstance(value, float | np.floating):
        return format_value(value)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "n/a"
    return str(value)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub pipe table of ``frame`` (index dropped; floats with three significant digits).

    Examples
    --------
    >>> print(to_markdown(pd.DataFrame({"variant": ["avgpool"], "n": [3]})))
    | variant | n |
    | --- | --- |
    | avgpool | 3 |
    """

    def esc(text: str) -> str:
        return text.replace("|", r"\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(str(c)) for c in frame.columns) + " |"]
    lines.append("| " + " | ".join("---" for _ in frame.columns) + " |")
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(esc(_cell_text(v)) for v in row) + " |")
    return "\n".join(lines)


def latex_escape(text: object) -> str:
    r"""Escape the characters LaTeX treats specially (``_ % & # $ { } ~ ^ \``) and common Unicode symbols.

    A minus sign in front of a number is set as a math minus.

    Examples
    --------
    >>> latex_escape("data_fraction 10% & up")
    'data\\_fraction 10\\% \\& up'
    """
    escaped = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL.get(m.group(), _LATEX_UNICODE.get(m.group())), str(text))
    return _NEGATIVE_NUMBER.sub("$-$", escaped)


def _is_long(column: pd.Series) -> bool:
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    return not numeric and max((len(_cell_text(v)) for v in column), default=0) > 40


def _align(column: pd.Series, n_long: int) -> str:
    """``r`` for numbers, ``l`` for short text, paragraph columns sharing ~55 % of the line for long text."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return "r"
    return f"p{{{min(0.3, 0.55 / max(n_long, 1)):.2f}\\linewidth}}" if _is_long(column) else "l"


def to_latex(frame: pd.DataFrame, *, caption: str, label: str, note: str | None = None) -> str:
    """A standalone booktabs ``table`` environment, ready for ``\\input`` (needs ``booktabs`` loaded).

    Parameters
    ----------
    frame : DataFrame
        The table; cells are formatted like :func:`to_markdown` and escaped.
    caption : str
        Caption text (escaped).
    label : str
        The ``\\label`` key, e.g. ``"tab:contrasts"``; letters, digits and ``:-_.`` only.
    note : str, optional
        A line under the table (interval method, resamples, correction).

    Returns
    -------
    str
        LaTeX source ending in a newline.

    Raises
    ------
    ValueError
        If ``label`` holds characters that break ``\\ref``.
    """
    if not re.fullmatch(r"[A-Za-z0-9:._-]+", label):
        raise ValueError(f"label {label!r} must use only letters, digits and ':._-' (e.g. 'tab:contrasts')")
    n_long = sum(_is_long(frame[c]) for c in frame.columns)
    align = "".join(_align(frame[c], n_long) for c in frame.columns)
    lines = [
        "% generated by analysis.report; needs \\usepackage{booktabs}",
        "\\begin{table}[htbp]",
        "\\centering",
        "\\small",
        f"\\caption{{{latex_escape(caption)}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{align or 'l'}}}",
        "\\toprule",
        " & ".join(latex_escape(c) for c in frame.columns) + " \\\\",
        "\\midrule",
    ]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(latex_escape(_cell_text(v)) for v in row) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    if note:
        lines += ["", "\\smallskip", f"\\parbox{{0.95\\linewidth}}{{\\footnotesize {latex_escape(note)}}}"]
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"
