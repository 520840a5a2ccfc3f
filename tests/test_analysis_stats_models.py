"""Known answers and planted effects for analysis.stats.bias (and McNemar) and analysis.stats.mixed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.simulation import simulate_study
from analysis.simulation.scenarios import runs_from_accuracy, scenario
from analysis.stats import bias, bounded, hypothesis_tests, mixed


def test_mcnemar_known_answers():
    # chi-square with continuity correction: (|10 - 30| - 1)^2 / 40 = 9.025
    statistic, p, method = hypothesis_tests.mcnemar(10, 30)
    assert method == "chi2" and statistic == pytest.approx(9.025)
    assert p == pytest.approx(stats.chi2.sf(9.025, 1))
    # exact: two-sided binomial, 2 * P(X <= 1 | n=10, 1/2) = 2 * 11 / 1024
    statistic, p, method = hypothesis_tests.mcnemar(1, 9)
    assert method == "exact" and statistic == 1 and p == pytest.approx(22 / 1024)


def test_mcnemar_tests_count_a_hand_made_table():
    labels = np.array([1, 1, 0, 0, 1, 0])
    ref_correct = np.array([1, 1, 1, 0, 0, 1], dtype=bool)  # reference right on 0, 1, 2, 5
    var_correct = np.array([0, 1, 1, 1, 1, 0], dtype=bool)  # variant right on 1, 2, 3, 4

    # b = ref right, variant wrong: examples 0, 5 -> 2; c = ref wrong, variant right: 3, 4 -> 2
    def scores(correct):
        predicted = np.where(correct, labels, 1 - labels)
        return np.where(predicted == 1, 0.9, 0.1)

    runs = pd.DataFrame(
        {
            "run_id": ["a", "m"],
            "variant": ["avgpool", "maxpool"],
            "seed": 0,
            "data_fraction": 1.0,
            "status": "ok",
            "threshold": 0.5,
        }
    )
    preds = pd.DataFrame(
        {
            "run_id": np.repeat(["a", "m"], 6),
            "example_id": np.tile(np.arange(6), 2),
            "label": np.tile(labels, 2),
            "class_index": 1,
            "score": np.concatenate([scores(ref_correct), scores(var_correct)]),
        }
    )
    out = bias.mcnemar_tests(preds, runs)
    assert out[["b", "c"]].iloc[0].tolist() == [2, 2]
    assert out["p_value"].iloc[0] == pytest.approx(1.0) and out["method"].iloc[0] == "exact"


@pytest.fixture(scope="module")
def shifted():
    return simulate_study(seeds=10, fpr_shift={"maxpool": 0.08}, n_test=300, seed=11)


def test_bias_over_calls_for_planted_fpr_shift(shifted):
    out = bias.bias_summary(shifted["runs"], n_boot=2000)
    pooled = out[out["data_fraction"].isna()]
    flags = pooled.groupby("variant")["over_calls"].first()
    assert flags["maxpool"] and not flags["avgpool"]
    fpr = pooled[(pooled["measure"] == "fpr")].set_index("variant")
    assert fpr.loc["maxpool", "diff_low"] <= 0.08 <= fpr.loc["maxpool", "diff_high"]
    crit = pooled[(pooled["measure"] == "criterion_c")].set_index("variant")
    assert crit.loc["maxpool", "diff_high"] < 0  # a liberal criterion: more positive calls
    assert (out["low"] <= out["mean"]).all() and (out["mean"] <= out["high"]).all()
    assert set(out["measure"]) == set(bias.BIAS_MEASURES)


def test_bias_no_over_calls_under_the_null():
    null = simulate_study(seeds=10, n_test=300, seed=12)
    out = bias.bias_summary(null["runs"], n_boot=2000)
    pooled = out[out["data_fraction"].isna()]
    assert not pooled["over_calls"].any()


@pytest.fixture(scope="module")
def planted():
    return simulate_study(
        seeds=30,
        effects={"maxpool": -0.04},
        interaction={"strided": 0.015},
        seed_sd=0.02,
        n_test=400,
        seed=21,
    )


def test_mixed_recovers_planted_effects_and_seed_variance(planted):
    result = mixed.fit_mixed(planted["runs"], "accuracy")
    coef = result.coefficients.set_index("term")
    truth = planted["truth"]
    assert (
        coef.loc["variant[maxpool]", "low"]
        <= truth["coef_variant_pp"]["maxpool"]
        <= coef.loc["variant[maxpool]", "high"]
    )
    assert coef.loc["variant[maxpool]", "high"] < 0
    inter = coef.loc["variant[strided]:log2_fraction"]
    assert inter["low"] <= truth["coef_interaction_pp"]["strided"] <= inter["high"] and inter["low"] > 0
    # seed variance 4 pp^2: with 30 seeds its estimate is within a factor of two
    assert truth["seed_variance_pp"] / 2 < result.seed_variance < truth["seed_variance_pp"] * 2
    lrt = result.lrt.set_index("test")
    assert lrt.loc["variant", "p_value"] < 1e-3 and lrt.loc["variant:log2_fraction", "p_value"] < 1e-3
    assert lrt.loc["variant", "df"] == 4 and lrt.loc["variant:log2_fraction", "df"] == 2
    assert result.converged and result.n_seeds == 30


def test_mixed_fit_does_not_depend_on_the_row_order():
    """On this study lbfgs fails for one row order and not another (then bfgs gives other bounds): the
    model sorts its rows before fitting, so shuffled runs give the identical fit (issue 15 item 3)."""
    study = simulate_study(
        seeds=10,
        fractions=(0.25, 0.5, 1.0),
        n_test=100,
        effects={"maxpool": -0.03},
        fpr_shift={"maxpool": 0.04},
        latency_repeats=4,
        latency_drift=0.1,
        seed=31,
    )
    runs = study["runs"][study["runs"]["variant"].isin(["avgpool", "strided"])]
    shuffled = runs.iloc[np.random.default_rng(5).permutation(len(runs))].reset_index(drop=True)
    kw = {"reference": "avgpool", "lrt": False, "sensitivity": False}
    a, b = (mixed.fit_mixed(r, "accuracy", **kw) for r in (runs, shuffled))
    pd.testing.assert_frame_equal(a.coefficients, b.coefficients)
    assert a.warnings == b.warnings


def test_mixed_reports_a_singular_fit():
    # every seed's deviations from the cell means sum to zero, so all seed means agree: seed variance 0
    rng = np.random.default_rng(0)
    cells = [(v, f) for v in ("avgpool", "maxpool") for f in (0.25, 0.5, 1.0)]
    noise = rng.normal(0, 0.01, (3, len(cells)))
    noise -= noise.mean(axis=1, keepdims=True)
    rows = []
    for k, (v, f) in enumerate(cells):
        for rep in range(3):
            for s, sign in ((2 * rep, 1), (2 * rep + 1, -1)):
                rows.append(
                    {
                        "variant": v,
                        "data_fraction": f,
                        "seed": s,
                        "status": "ok",
                        "accuracy": 0.8 + 0.05 * np.log2(f) + sign * noise[rep, k],
                    }
                )
    result = mixed.fit_mixed(pd.DataFrame(rows), "accuracy", lrt=False)
    assert result.seed_variance <= mixed.SINGULAR_TOL * result.residual_variance
    assert any("singular" in w for w in result.warnings)
    assert result.lrt.empty


def test_mixed_one_fraction_and_bad_reference():
    runs = simulate_study(seeds=4, fractions=(1.0,), seed=2)["runs"]
    result = mixed.fit_mixed(runs, "accuracy")
    assert set(result.lrt["test"]) == {"variant"}
    assert any("one data fraction" in w for w in result.warnings)
    with pytest.raises(ValueError, match="choose from"):
        mixed.fit_mixed(runs, "accuracy", reference="avg")


def _scenario_runs(name: str, seeds: int, seed: int, **changes) -> tuple[pd.DataFrame, object]:
    sc = scenario(name).with_(curve="linear", **changes)
    acc = sc.simulate(1, seeds, np.random.default_rng(seed))[0]
    return runs_from_accuracy(acc, sc.n_test), sc


def test_mixed_recovers_a_planted_seed_by_variant_variance():
    """Averaged over 4 simulated studies of 40 seeds, both variance components land near the truth."""
    fits = []
    for seed in range(4):
        runs, sc = _scenario_runs("seed x variant", 40, seed, seed_variant_sd=0.015, n_test=2000)
        fits.append(mixed.fit_mixed(runs, "accuracy", lrt=False, sensitivity=False))
    truth = (100 * sc.seed_variant_sd) ** 2  # 2.25 pp^2, and the seed SD is 1.5 pp as well
    assert np.mean([f.seed_variant_variance for f in fits]) == pytest.approx(truth, rel=0.3)
    assert np.mean([f.seed_variance for f in fits]) == pytest.approx(truth, rel=0.3)
    plain = mixed.fit_mixed(runs, "accuracy", lrt=False, sensitivity=False, seed_variant=False)
    assert np.isnan(plain.seed_variant_variance)
    # the variant effect's interval widens by the seed x variant spread only in the new model

    def width(result):
        row = result.coefficients.set_index("term").loc["variant[maxpool]"]
        return row["high"] - row["low"]

    assert width(fits[-1]) > 1.2 * width(plain)


def test_fractions_at_the_floor_are_left_out_and_named():
    runs, sc = _scenario_runs("floor", 10, 6)
    result = mixed.fit_mixed(runs, "accuracy", lrt=False)
    assert result.floors == (0.05, 0.1)
    assert sum("left out" in w and "60 %" in w for w in result.warnings) == 2
    assert result.n_obs == 3 * 10 * 3
    coef = result.coefficients.set_index("term")
    for variant, effect, slope in zip(
        ("maxpool", "strided"), sc.effects[1:], sc.interaction[1:], strict=True
    ):
        assert (
            coef.loc[f"variant[{variant}]", "low"] <= 100 * effect <= coef.loc[f"variant[{variant}]", "high"]
        )
        inter = coef.loc[f"variant[{variant}]:log2_fraction"]
        assert inter["low"] <= 100 * slope <= inter["high"]
    everything = runs.assign(accuracy=0.6)
    with pytest.raises(ValueError, match="floor"):
        mixed.fit_mixed(everything, "accuracy")


def test_binomial_sensitivity_agrees_with_the_linear_model_on_a_planted_effect():
    runs, sc = _scenario_runs(
        "normal", 10, 7, effects=(0.0, -0.04, 0.0), interaction=(0.0, 0.0, 0.0), n_test=1000
    )
    result = mixed.fit_mixed(runs, "accuracy")
    table = result.sensitivity.set_index("term")
    row = table.loc["variant[maxpool]"]
    assert row["agree"] and row["linear_p"] < 0.05 and row["binomial_p"] < 0.05
    assert (
        row["binomial_estimate"] < 0 and row["binomial_low"] < row["binomial_estimate"] < row["binomial_high"]
    )
    # the binomial coefficient restated in pp at fraction 1 lands on the planted -4 pp like the linear one
    assert row["binomial_pp"] == pytest.approx(-4.0, abs=1.0)
    assert row["linear_estimate"] == pytest.approx(-4.0, abs=1.0)
    assert table.loc["variant (all terms)", "agree"] and table.loc["variant (all terms)", "binomial_p"] < 0.05
    assert mixed.fit_mixed(runs.assign(auroc=runs["accuracy"]), "auroc", lrt=False).sensitivity is None


def test_run_counts_known_answers():
    runs = pd.DataFrame({"tp": [40.0, 10.0], "tn": [50.0, 60.0], "fp": [5.0, 20.0], "fn": [5.0, 10.0]})
    successes, trials = bounded.run_counts(runs, "recall")
    assert successes.tolist() == [40.0, 10.0] and trials.tolist() == [45.0, 20.0]
    successes, trials = bounded.run_counts(runs, "accuracy")
    assert (successes / trials).tolist() == [0.9, 0.7]
    assert bounded.run_counts(runs, "auroc") is None
    assert bounded.run_counts(runs.assign(fp=np.nan), "accuracy") is None
