"""Section "Decision bias": FP/FN measures with intervals, contrasts, and where a variant over-calls."""

from __future__ import annotations

import pandas as pd

from analysis.design import POINT_NAMES, at_operating_point, reported_point
from analysis.report.document import Section, Settings, Study, Table, fraction_label, order_variants
from analysis.report.figures import bias_plot, confusion_matrices
from analysis.report.format import interval_cells
from analysis.stats.bias import BIAS_MEASURES, bias_summary


def applies(study: Study) -> bool:
    """Whether the study is binary: FP/FN, criterion and PPR/prevalence are defined for one positive class.

    A multi-class study (more than two classes scored per example) gets the error analysis instead.
    """
    preds = study.tables.get("predictions")
    return preds is None or preds.empty or preds["class_index"].nunique() <= 2


def _by_variant_and_fraction(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per variant x fraction and one column per bias measure (of the ``cell`` strings)."""
    wide = frame.pivot_table(
        index=["variant", "data_fraction"], columns="measure", values="cell", aggfunc="first", dropna=False
    )
    return wide[[m for m in BIAS_MEASURES if m in wide]]


def _display(wide: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The wide table with the reference first and fractions as text."""
    out = order_variants(wide.reset_index(), reference)
    out["data_fraction"] = out["data_fraction"].map(fraction_label)
    return out


def _point_tables(bs: pd.DataFrame, s: Settings, point: str, suffix: str) -> list[Table]:
    """The levels table and the contrasts table of one operating point's bias summary."""
    levels = _by_variant_and_fraction(bs.assign(cell=interval_cells(bs, metric_column="measure")))
    others = bs[bs["variant"] != s.reference]
    cells = interval_cells(
        others, estimate="diff_vs_reference", low="diff_low", high="diff_high", metric_column="measure"
    )
    diffs = _by_variant_and_fraction(others.assign(cell=cells))
    over = others.groupby(["variant", "data_fraction"], dropna=False)["over_calls"].any()
    diffs["over-calls"] = over.reindex(diffs.index).map({True: "yes", False: "no"})
    at = f", at {POINT_NAMES[point]}"
    return [
        Table(
            f"bias{suffix}",
            f"Bias measures by variant and fraction{at}, mean [{s.level} interval]",
            bs,
            _display(levels, s.reference),
        ),
        Table(
            f"bias_contrasts{suffix}",
            f"Bias measures{at}: difference to {s.reference} [{s.level} interval]",
            others,
            _display(diffs, s.reference),
        ),
    ]


def build(study: Study, s: Settings) -> tuple[Section, pd.DataFrame]:
    """Levels and differences to the reference of every bias measure at both operating points.

    The first tables are at the operating point the study reports (its threshold metrics); when the
    runs also stored the other point (0.5 beside a validation-chosen threshold, or the reverse), its
    tables and figure follow, so a reader sees whether a bias is the threshold's or the operator's.
    Returns the section and the reported point's summary.
    """
    runs = study.standard["runs"]
    point = reported_point(runs)
    other = "fixed" if point == "chosen" else "chosen"
    other_runs = at_operating_point(runs, other)
    bs = bias_summary(runs, reference=s.reference, **s.kw)
    text = [
        "FPR and FNR in pp; ppr_over_prevalence is the predicted-positive rate over the prevalence "
        "(1 = calibrated base rate); criterion_c > 0 means a conservative (negative-leaning) criterion, "
        f"d' the separation. A variant over-calls the positive class only when its {s.level} interval "
        "of the difference in ppr/prevalence or FPR against the reference lies entirely above 0.",
        f"The study reports its threshold metrics at {POINT_NAMES[point]}; every bias claim in this report "
        "uses that point unless it names another.",
    ]
    tables = _point_tables(bs, s, point, "")
    figures = [
        (
            "bias",
            f"False-positive vs false-negative rate, at {POINT_NAMES[point]}",
            bias_plot(bs, palette=study.palette)[0],
        ),
        ("confusion", "Mean confusion matrices", confusion_matrices(runs, palette=study.palette)[0]),
    ]
    if other_runs is not None:
        bs_other = bias_summary(other_runs, reference=s.reference, **s.kw)
        text.append(
            f"The same measures at {POINT_NAMES[other]} follow: the runs stored both points, chosen "
            "without the test split. A bias present at one point only belongs to the threshold, not to "
            "the operator."
        )
        tables += _point_tables(bs_other, s, other, f"_{other}")
        figures.append(
            (
                f"bias_{other}",
                f"False-positive vs false-negative rate, at {POINT_NAMES[other]}",
                bias_plot(bs_other, palette=study.palette)[0],
            )
        )
    return Section("Decision bias: false positives and false negatives", text, tables, figures), bs
