"""Operating points in the analysis: the runs at 0.5 or at the validation-chosen threshold, and the bias
section that reports both, against a planted over-calling present at one point only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.design import at_operating_point, reported_point
from analysis.report.document import Settings, Study
from analysis.report.sections import bias
from analysis.simulation import simulate_study

SETTINGS = Settings("avgpool", ("accuracy",), 300, 0.05, 0)
MEASURES = ["fpr", "fnr", "predicted_positive_rate", "accuracy", "criterion_c", "dprime"]


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    """Runs reported at the chosen point (no planted bias) with 0.5 columns where maxpool over-calls."""
    plan = {"seeds": 6, "fractions": (0.5, 1.0), "n_test": 400, "seed": 8}
    fixed = simulate_study(**plan, fpr_shift={"maxpool": 0.12})["runs"]
    chosen = simulate_study(**plan)["runs"]
    return chosen.assign(operating_point="chosen", **{f"{m}_fixed": fixed[m].to_numpy() for m in MEASURES})


def test_at_operating_point_swaps_only_the_threshold_metrics(runs):
    assert reported_point(runs) == "chosen"
    fixed = at_operating_point(runs, "fixed")
    np.testing.assert_array_equal(fixed["fpr"], runs["fpr_fixed"])
    np.testing.assert_array_equal(fixed["auroc"], runs["auroc"])  # threshold-free: untouched
    assert at_operating_point(runs, "chosen") is runs
    old = runs.drop(columns=["operating_point", *[f"{m}_fixed" for m in MEASURES]])
    assert reported_point(old) == "fixed" and at_operating_point(old, "chosen") is None
    with pytest.raises(ValueError, match="choose from"):
        at_operating_point(runs, "youden")


def test_bias_section_reports_both_points_and_finds_the_bias_at_one(runs):
    section, summary = bias.build(Study.of({"runs": runs}, "avgpool"), SETTINGS)
    names = [t.name for t in section.tables]
    assert names == ["bias", "bias_contrasts", "bias_fixed", "bias_contrasts_fixed"]
    assert any("validation-chosen threshold" in line for line in section.text)

    def maxpool_fpr(table_name: str) -> pd.DataFrame:
        data = next(t for t in section.tables if t.name == table_name).raw
        return data[(data["variant"] == "maxpool") & (data["measure"] == "fpr")]

    at_fixed, at_chosen = maxpool_fpr("bias_contrasts_fixed"), maxpool_fpr("bias_contrasts")
    # planted: +12 pp at 0.5 at every fraction, nothing at the chosen point
    # (the same simulator seed draws the same noise, so the two points differ by the plant alone)
    assert (at_fixed["diff_low"] > 0.05).all()
    shift = at_fixed["diff_vs_reference"].to_numpy() - at_chosen["diff_vs_reference"].to_numpy()
    np.testing.assert_allclose(shift, 0.12, atol=0.02)
    assert [f[0] for f in section.figures] == ["bias", "confusion", "bias_fixed"]


def test_bias_section_of_a_study_at_0_5_only_has_one_point(runs):
    old = runs.drop(columns=["operating_point", *[f"{m}_fixed" for m in MEASURES]])
    section, _ = bias.build(Study.of({"runs": old}, "avgpool"), SETTINGS)
    assert [t.name for t in section.tables] == ["bias", "bias_contrasts"]
    assert any("fixed threshold 0.5" in line for line in section.text)
