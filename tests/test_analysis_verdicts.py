"""The one verdict vocabulary: its rules on hand-made intervals, and the claim and hypothesis registries."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.simulation import simulate_study
from analysis.verdicts import claims, hypotheses, rules

S, R, C, U = rules.SUPPORTED, rules.REVERSED, rules.CONTRADICTED, rules.UNRESOLVED


@pytest.mark.parametrize(
    ("low", "high", "direction", "expected"),
    [
        (0.01, 0.05, 1, S),  # above 0, claimed above
        (-0.05, -0.01, 1, R),  # entirely below, claimed above
        (-0.01, 0.05, 1, U),  # includes 0
        (-0.05, -0.01, -1, S),  # claimed below
        (0.01, 0.05, -1, R),
        (-0.05, -0.01, 0, S),  # two-sided: either side shows it, and nothing is reversed
        (np.nan, np.nan, 1, U),
    ],
)
def test_directional_verdict_from_the_interval(low, high, direction, expected):
    assert rules.directional_verdict(low, high, direction=direction) == expected


def test_directional_verdict_with_a_test_and_a_margin():
    # a Holm-adjusted test decides "shown"; an effect shown smaller than the margin contradicts the claim
    assert rules.directional_verdict(0.001, 0.05, shown=False) == U
    assert rules.directional_verdict(-0.01, 0.01, shown=False, negligible=True) == C
    assert rules.directional_verdict(-0.05, -0.01, shown=False, negligible=True) == R  # reversal first
    assert rules.directional_verdict(0.2, 0.4, null=0.1) == S  # against a null other than 0


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-0.01, 0.01, S),
        (0.001, 0.005, S),
        (0.01, 0.05, C),
        (-0.05, -0.03, C),
        (-0.05, 0.01, U),
        (np.nan, 0.1, U),
    ],
)
def test_equivalence_verdict(low, high, expected):
    assert rules.equivalence_verdict(low, high, margin=0.02) == expected


def test_combine_verdicts_is_the_one_rule():
    assert rules.combine_verdicts([S, S]) == S
    assert rules.combine_verdicts([S, C, U]) == C
    assert rules.combine_verdicts([S, C, R]) == R  # a reversal outweighs a contradiction
    assert rules.combine_verdicts([S, U]) == U
    assert rules.combine_verdicts([S, ""]) == S  # descriptive parts carry no verdict
    assert rules.combine_verdicts([]) == U
    with pytest.raises(ValueError, match="choose from"):
        rules.combine_verdicts(["not supported"])


def test_every_claim_is_a_registered_function_giving_one_row():
    study = simulate_study(seeds=3, fractions=(0.5, 1.0), n_test=60, seed=2)
    table = claims.evaluate_claims(study, n_boot=200)
    assert len(table) == len(claims.CLAIMS) and list(table.columns) == claims.COLUMNS
    assert set(table["verdict"]) <= set(rules.VERDICTS)
    assert len({f.__name__ for f in claims.CLAIMS}) == len(claims.CLAIMS)


def test_claims_on_a_study_with_every_run_at_one_accuracy_are_untestable_not_a_crash():
    """Every classifier calling one class (a study trained too briefly): no variation to model."""
    study = simulate_study(seeds=3, fractions=(0.5, 1.0), n_test=60, seed=2)
    flat = {"runs": study["runs"].assign(accuracy=0.6)}
    row = (
        claims.evaluate_claims(flat, n_boot=200)
        .set_index("claim")
        .loc["pooling helps most at small data fractions (negative pooling x fraction interaction)"]
    )
    assert row["verdict"] == U and "floor" in row["detail"]


def test_over_prediction_claim_is_tested_at_both_operating_points():
    # planted: maxpool over-calls at 0.5 (FPR +12 pp) but not at the validation-chosen threshold
    plan = {"seeds": 6, "fractions": (0.5, 1.0), "n_test": 400, "seed": 4}
    fixed = simulate_study(**plan, fpr_shift={"maxpool": 0.12})["runs"]
    chosen = simulate_study(**plan)["runs"]
    assert (fixed["run_id"].to_numpy() == chosen["run_id"].to_numpy()).all()
    measures = ["fpr", "fnr", "predicted_positive_rate", "accuracy"]
    runs = chosen.assign(operating_point="chosen", **{f"{m}_fixed": fixed[m].to_numpy() for m in measures})
    table = claims.evaluate_claims({"runs": runs}, n_boot=500).set_index("claim")
    at_fixed = table.loc[table.index.str.endswith("at the fixed threshold 0.5")].iloc[0]
    at_chosen = table.loc[table.index.str.endswith("at the validation-chosen threshold")].iloc[0]
    assert at_fixed["verdict"] == S and at_fixed["low"] > 0.05
    assert at_chosen["verdict"] != S and at_chosen["low"] < 0 < at_chosen["high"]
    # a study written before operating points existed is at 0.5 only: the chosen-point claim says so
    old = claims.evaluate_claims({"runs": fixed}, n_boot=200).set_index("claim")
    row = old.loc[old.index.str.endswith("at the validation-chosen threshold")].iloc[0]
    assert row["verdict"] == U and "fixed threshold 0.5 only" in row["detail"]
    assert old.loc[old.index.str.endswith("threshold 0.5")].iloc[0]["verdict"] == S


def test_hypotheses_registry_states_every_hypothesis_once():
    keys = [h.key for h in hypotheses.HYPOTHESES]
    assert keys == ["H1", "H2", "H3", "H3b", "H4", "H5"]
    assert all(hypotheses.STATEMENTS[k].endswith(".") for k in keys)


def test_evaluate_hypotheses_rejects_a_margin_outside_0_1():
    runs = simulate_study(seeds=2, fractions=(1.0,), n_test=40)["runs"]
    with pytest.raises(ValueError, match="margin"):
        hypotheses.evaluate_hypotheses(runs, margin=2.0)
