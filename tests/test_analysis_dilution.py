"""The dilution contrast and verdict against hand-computed answers, planted effects and its error rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.simulation.multiclass import simulate_multiclass_study
from analysis.stats.dilution import dilution_contrasts, dilution_row, intersection_union_p
from analysis.verdicts.dilution import dilution_verdict, evaluate_dilution
from analysis.verdicts.rules import CONTRADICTED, REVERSED, SUPPORTED, UNRESOLVED


def _runs(accuracy: dict[tuple[str, str], list[float]], fractions=(1.0,)) -> pd.DataFrame:
    """A runs table: ``accuracy[(model, variant)]`` holds one value per seed (repeated per fraction)."""
    rows = []
    for (model, variant), values in accuracy.items():
        for seed, value in enumerate(values):
            for f in fractions:
                rows.append((f"{model}-{variant}-{seed}-{f}", model, variant, seed, f, value, "ok"))
    frame = pd.DataFrame(
        rows, columns=["run_id", "model", "variant", "seed", "data_fraction", "accuracy", "status"]
    )
    return frame.assign(permute=False, location_shift=np.nan, init="random")


HAND = {
    ("lenet", "avgpool"): [0.80, 0.82, 0.78],
    ("lenet", "maxpool"): [0.74, 0.77, 0.71],  # dL per seed: -0.06, -0.05, -0.07
    ("resnet8", "avgpool"): [0.85, 0.86, 0.84],
    ("resnet8", "maxpool"): [0.84, 0.86, 0.82],  # dR per seed: -0.01, 0.00, -0.02
}


def test_change_and_sum_are_the_hand_computed_paired_contrasts():
    out = dilution_contrasts(_runs(HAND), n_boot=200)
    assert len(out) == 1
    row = out.iloc[0]
    change = np.array([-0.01 + 0.06, 0.00 + 0.05, -0.02 + 0.07])  # dR - dL per seed
    total = np.array([-0.01 - 0.06, 0.00 - 0.05, -0.02 - 0.07])
    assert row["effect_base"] == pytest.approx(-0.06)
    assert row["effect_model"] == pytest.approx(-0.01)
    assert row["magnitude_change"] == pytest.approx(0.01 - 0.06)
    assert row["change"] == pytest.approx(change.mean())
    half = stats.t.ppf(0.975, 2) * total.std(ddof=1) / np.sqrt(3)
    assert (row["sum_low"], row["sum_high"]) == pytest.approx((total.mean() - half, total.mean() + half))
    assert row["p_sum"] == pytest.approx(stats.ttest_1samp(total, 0).pvalue)
    assert row["p_value"] == pytest.approx(max(row["p_change"], row["p_sum"]))
    assert row["n_seeds"] == 3 and row["method"] == "t"


def test_pooled_rows_appear_with_several_fractions():
    out = dilution_contrasts(_runs(HAND, fractions=(0.5, 1.0)), n_boot=200)
    assert out["data_fraction"].isna().sum() == 1 and len(out) == 3
    pooled = out[out["data_fraction"].isna()].iloc[0]
    assert pooled["effect_base"] == pytest.approx(-0.06)


def test_intersection_union_p_needs_opposite_signs():
    assert intersection_union_p(0.05, 0.01, -0.07, 0.03) == 0.03
    assert intersection_union_p(0.05, 0.01, 0.07, 0.03) == 1.0
    assert np.isnan(intersection_union_p(0.05, np.nan, -0.07, 0.03))


@pytest.mark.parametrize(
    ("change", "total", "shown", "negligible", "verdict"),
    [
        ((0.02, 0.08), (-0.09, -0.03), True, False, SUPPORTED),
        ((0.02, 0.08), (0.03, 0.09), False, False, REVERSED),  # |dR| > |dL|: same signs, both shown
        ((-0.08, -0.02), (-0.09, -0.03), False, False, REVERSED),
        ((-0.01, 0.01), (0.03, 0.09), False, True, CONTRADICTED),
        ((-0.01, 0.05), (0.03, 0.09), False, False, UNRESOLVED),
        ((np.nan, 0.05), (0.03, 0.09), False, False, UNRESOLVED),
    ],
)
def test_dilution_verdict_rules(change, total, shown, negligible, verdict):
    assert dilution_verdict(change, total, shown=shown, negligible=negligible) == verdict


@pytest.mark.parametrize(
    ("effects", "expected"),
    [
        ({"lenet:maxpool": -0.06, "resnet8:maxpool": -0.01}, SUPPORTED),  # diluted
        ({"lenet:maxpool": -0.02, "resnet8:maxpool": -0.08}, REVERSED),  # amplified
        ({"lenet:maxpool": -0.05, "resnet8:maxpool": -0.05}, CONTRADICTED),  # the same effect
    ],
)
def test_planted_dilution_gets_its_verdict(effects, expected):
    study = simulate_multiclass_study(
        models=("lenet", "resnet8"),
        variants=("avgpool", "maxpool"),
        fractions=(0.5, 1.0),
        seeds=12,
        n_test=1200,
        effects=effects,
        noise_sd=0.004,
        example_rho=0.0,
        seed=7,
    )
    tests, verdicts = evaluate_dilution(study["runs"], n_boot=2000, seed=3)
    pooled = tests[tests["data_fraction"].isna()].iloc[0]
    truth = study["truth"]["effect"]
    assert pooled["effect_base_low"] <= truth["lenet"]["maxpool"] <= pooled["effect_base_high"]
    assert (
        pooled["change_low"]
        <= truth["resnet8"]["maxpool"] - truth["lenet"]["maxpool"]
        <= pooled["change_high"]
    )
    assert verdicts.set_index(["model", "variant"]).loc[("resnet8", "all"), "verdict"] == expected


@pytest.mark.slow
@pytest.mark.parametrize("sign", [1, -1])
def test_dilution_is_rarely_supported_when_the_magnitudes_are_equal(sign):
    """At the null's boundary |dR| = |dL| = 3 pp, 'supported' comes at most at rate alpha (here 2.5 %).

    With dR = dL the change is 0 and must be shown negative by chance (alpha / 2); with dR = -dL the sum
    is 0 and must be shown positive by chance (alpha / 2).
    """
    rng = np.random.default_rng(11)
    n_seeds, reps, hits = 5, 400, 0
    for rep in range(reps):
        d_lenet = 0.03 + rng.normal(0, 0.015, n_seeds)
        d_resnet = sign * 0.03 + rng.normal(0, 0.015, n_seeds)
        effects = pd.DataFrame({"dL": d_lenet, "dR": d_resnet})
        hits += dilution_row(effects, n_boot=200, alpha=0.05, rng_key=(rep,))["p_value"] < 0.05
    rate, se = hits / reps, np.sqrt(0.025 * 0.975 / reps)
    assert rate <= 0.025 + 3 * se, rate


def test_studies_without_two_models_give_an_empty_family():
    one_model = _runs({k: v for k, v in HAND.items() if k[0] == "lenet"})
    tests, verdicts = evaluate_dilution(one_model, n_boot=200)
    assert tests.empty and verdicts.empty
