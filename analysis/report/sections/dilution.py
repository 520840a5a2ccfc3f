"""Section "Dilution": is the operator effect smaller in the residual model than in the LeNet?

Applies to studies with the LeNet and at least one other CNN model (a ResNet) that share the reference
variant. The hypothesis is stated before the numbers, then tested per residual model x variant x data
fraction and pooled, with one verdict each in the report's vocabulary.
"""

from __future__ import annotations

import pandas as pd

from analysis.report.document import INTERVAL_RULE, Section, Settings, Study, Table, fraction_label
from analysis.report.figures.dilution import dilution_plot
from analysis.report.format import format_interval, format_p, is_unit_metric
from analysis.stats.dilution import BASE_MODEL, residual_models
from analysis.verdicts.dilution import STATEMENT, evaluate_dilution


def applies(study: Study) -> bool:
    """Whether the study has the LeNet and a residual model, both with the reference variant."""
    runs = study.tables["runs"]
    ok = runs[runs["status"] == "ok"]
    return BASE_MODEL in set(ok["model"].astype(str)) and bool(residual_models(ok))


def _rules(tests: pd.DataFrame, s: Settings, metric: str) -> list[str]:
    pp = f"{100 * s.margin:g} percentage points" if is_unit_metric(metric) else f"{s.margin:g}"
    eq = f"{100 * (1 - 2 * s.alpha):g} %"
    return [
        f"Design: for each seed, the operator effect dL = {metric}(LeNet, variant) - {metric}(LeNet, "
        f"{s.reference}) and dR the same in the residual model, from runs that share the seed's data subset "
        "and batch order; per data fraction and pooled over fractions (each seed's mean over its fractions). "
        "|dR| < |dL| exactly when the change dR - dL and the sum dR + dL have opposite signs, so both are "
        "tested as paired contrasts (paired t-test; intervals: "
        f"{s.level}, {INTERVAL_RULE}, {s.n_boot} resamples), no direction being chosen from the data.",
        "Verdict rules: supported when the change and the sum are both shown to differ from 0 with opposite "
        f"signs (intersection-union test: the larger of their two p-values, Holm-adjusted across all "
        f"{len(tests)} rows, below {s.alpha:g}); reversed when both {s.level} intervals exclude 0 on the "
        "same side (the effect is larger in the residual model); contradicted when the change's "
        f"{eq} interval lies within +-{pp} (the effect is the same in both models); not resolved at this "
        "seed count otherwise. "
        "A residual model's overall verdict combines its variants' pooled verdicts (all supported -> "
        "supported; any reversed -> reversed; else any contradicted -> contradicted).",
    ]


def _tables(section: Section, tests: pd.DataFrame, verdicts: pd.DataFrame, s: Settings, metric: str) -> None:
    percent = is_unit_metric(metric)
    unit = " (pp)" if percent else ""

    def cell(r, name: str) -> str:
        return format_interval(
            getattr(r, name), getattr(r, f"{name}_low"), getattr(r, f"{name}_high"), percent=percent
        )

    rows = list(tests.itertuples(index=False))
    disp = pd.DataFrame(
        {
            "model": tests["model"],
            "variant": tests["variant"],
            "fraction": tests["data_fraction"].map(fraction_label),
            "seeds": tests["n_seeds"],
            f"effect in {BASE_MODEL}{unit}": [cell(r, "effect_base") for r in rows],
            f"effect in model{unit}": [cell(r, "effect_model") for r in rows],
            f"|dR| - |dL|{unit}": [
                format_interval(r.magnitude_change, float("nan"), float("nan"), percent=percent) for r in rows
            ],
            f"change dR - dL{unit}": [cell(r, "change") for r in rows],
            f"sum dR + dL{unit}": [cell(r, "sum") for r in rows],
            "p (Holm)": tests["p_holm"].map(format_p),
            "verdict": tests["verdict"],
        }
    )
    note = f"Intervals: {s.level}. p (Holm): the intersection-union p-value, Holm-adjusted across the rows."
    caption = f"Dilution: operator effect on {metric} in each model, paired by seed"
    section.tables.append(Table("dilution_tests", caption, tests, disp, note=note))
    caption = "Dilution verdicts per residual model and variant (pooled over fractions)"
    section.tables.append(Table("dilution_verdicts", caption, verdicts, verdicts.copy()))


def build(study: Study, s: Settings) -> tuple[Section, dict]:
    """The hypothesis, then its paired tests per residual model x variant x fraction, verdicts, figure."""
    metric = s.metrics[0]
    tests, verdicts = evaluate_dilution(
        study.tables["runs"], metric=metric, reference=s.reference, margin=s.margin, **s.kw
    )
    section = Section("Dilution: the operator effect in the residual model")
    section.text.append(f"Hypothesis (stated before the numbers): {STATEMENT}")
    if tests.empty:
        section.text.append(
            f"Not tested: no residual model shares the reference variant {s.reference!r} and a "
            "second variant "
            f"with the {BASE_MODEL} on the same seeds."
        )
        return section, {"tests": tests, "verdicts": verdicts, "metric": metric}
    section.text += _rules(tests, s, metric)
    _tables(section, tests, verdicts, s, metric)
    fig = dilution_plot(tests, level=s.level, palette=study.palette)[0]
    section.figures.append(
        ("dilution", f"Operator effect on {metric} in {BASE_MODEL} and the residual model", fig)
    )
    return section, {"tests": tests, "verdicts": verdicts, "metric": metric}
