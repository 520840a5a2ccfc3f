"""Section "Inductive bias": hypotheses stated first, then their paired tests, verdicts, consistency, kernels.

The section appears when :func:`analysis.design.has_inductive_design` says the study has something to
test (MLP runs, a varied factor, measured shift consistency or stored kernels).
"""

from __future__ import annotations

import pandas as pd

from analysis.design import has_inductive_design
from analysis.report.document import INTERVAL_RULE, Section, Settings, Study, Table
from analysis.report.figures import hypothesis_forest
from analysis.report.format import format_interval, format_p
from analysis.report.sections.kernels import add_kernels
from analysis.report.sections.shift_consistency import add_shift_consistency
from analysis.verdicts.hypotheses import STATEMENTS, evaluate_hypotheses

METRIC = "accuracy"  # the metric of H1-H3 and H5


def applies(study: Study) -> bool:
    """Whether the study has anything this section can analyse."""
    return has_inductive_design(study.tables["runs"], study.tables.get("kernels"))


def _rules_text(tests: pd.DataFrame, s: Settings) -> list[str]:
    """The design of the contrasts and the verdict rules, with this report's level and margin."""
    pp = f"{100 * s.margin:g} percentage points"
    eq = f"{100 * (1 - 2 * s.alpha):g} %"
    return [
        "Design: factors a hypothesis does not vary are held at their base level (unpermuted, no "
        "location shift, random init); every contrast is taken within a seed and a data fraction and "
        "then averaged over the fractions, so each seed gives one paired value. "
        f"Intervals: {s.level}, {INTERVAL_RULE}. Equivalence margin: +-{pp}.",
        "Verdict rules. Directional claim: supported when the Holm-adjusted paired t-test p < "
        f"{s.alpha:g} and the estimate is on the claimed side; reversed when the {s.level} interval lies "
        f"entirely on the other side; contradicted when the {eq} interval lies within +-{pp} "
        "(no effect as large as the margin); not resolved at this seed count otherwise. "
        f"'Disappears' (equivalence, TOST): supported when the Holm-adjusted TOST p < {s.alpha:g} "
        f"(for one test: the {eq} interval inside +-{pp}); contradicted when the {s.level} interval "
        "excludes 0; not resolved otherwise. A hypothesis with several parts is supported when all parts "
        "are, reversed when any part is, else contradicted when any part is. "
        f"Holm's correction runs over all {int(tests['in_family'].sum())} tests of this section.",
    ]


def _evidence(parts: pd.DataFrame) -> str:
    cells = [
        f"{r.part}: {format_interval(r.estimate, r.low, r.high, percent=True)} ({r.verdict})"
        for r in parts.itertuples()
    ]
    return "; ".join(cells)


def _tables(section: Section, tests: pd.DataFrame, hyp: pd.DataFrame, s: Settings) -> None:
    """The verdict of every hypothesis x subject with its evidence, every test, and their forest plot."""
    family = tests[tests["in_family"].astype(bool)]
    evidence = [
        _evidence(family[(family["hypothesis"] == h) & (family["subject"] == sub)])
        for h, sub in zip(hyp["hypothesis"], hyp["subject"], strict=True)
    ]
    disp = pd.DataFrame(
        {
            "hypothesis": hyp["hypothesis"],
            "subject": hyp["subject"],
            "verdict": hyp["verdict"],
            f"evidence, pp [{s.level}]": evidence,
        }
    )
    section.tables.append(Table("inductive_hypotheses", "Inductive-bias hypotheses and verdicts", hyp, disp))
    rows = list(tests.itertuples())
    t_disp = pd.DataFrame(
        {
            "hypothesis": tests["hypothesis"],
            "subject": tests["subject"],
            "part": tests["part"],
            "contrast": tests["contrast"],
            "seeds": tests["n_seeds"],
            f"estimate (pp) [{s.level}]": [
                format_interval(r.estimate, r.low, r.high, percent=True) for r in rows
            ],
            f"{100 * (1 - 2 * s.alpha):g} % interval": [
                format_interval(r.estimate, r.low_eq, r.high_eq, percent=True) for r in rows
            ],
            "p": tests["p_value"].map(format_p),
            "p (Holm)": tests["p_holm"].map(format_p),
            "verdict": tests["verdict"].replace("", "(descriptive)"),
        }
    )
    note = "p (Holm): Holm-adjusted across the family (rows with a p)."
    untested = tests[tests["method"] != "t"]
    if len(untested):
        note += (
            f" Not testable: {len(untested)} row(s) with fewer than 3 seeds or the same value on every seed "
            "(no interval, no p; not resolved at this seed count)."
        )
    section.tables.append(
        Table("inductive_tests", "Every paired test of the inductive-bias section", tests, t_disp, note=note)
    )
    fig = hypothesis_forest(tests, margin=s.margin)[0]
    section.figures.append(("inductive_tests", "Inductive-bias tests with intervals and verdicts", fig))


def build(study: Study, s: Settings) -> tuple[Section, dict]:
    """Hypotheses first, then their paired tests and verdicts, shift consistency and first-layer kernels."""
    runs = study.tables["runs"]
    tests, hyp, notes = evaluate_hypotheses(
        runs, reference=s.reference, metric=METRIC, margin=s.margin, **s.kw
    )
    section = Section("Inductive bias")
    tested = list(dict.fromkeys(hyp["hypothesis"]))
    if tested:
        section.text.append(
            "Hypotheses, stated before the numbers (each is tested only where the study has the levels it "
            "needs; contrasts on test accuracy, shift consistency for H4):"
        )
    else:
        section.text.append("No inductive-bias hypothesis can be tested with this study's levels:")
    section.text += [f"{h}: {STATEMENTS[h]}" for h in tested]
    section.text += notes
    if not tests.empty:
        section.text += _rules_text(tests, s)
    result = {"tests": tests, "hypotheses": hyp, "notes": notes, "margin": s.margin}
    if len(hyp):
        _tables(section, tests, hyp, s)
    add_shift_consistency(section, study, s)
    if not study.tables.get("kernels", pd.DataFrame()).empty:
        result["kernels"] = add_kernels(section, study, s)
    return section, result
