"""Known answers, properties and planted effects: intervals, contrasts, seeds x examples, simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from analysis import stats
from analysis.simulation import simulate_study
from downscalexr import schema


@pytest.fixture(scope="module")
def study():
    return simulate_study(seeds=10, effects={"maxpool": -0.05}, n_test=200, seed=3)


def _runs(values: dict[str, list[float]], fraction: float = 1.0) -> pd.DataFrame:
    """A minimal runs table: one row per variant x seed with an accuracy value."""
    rows = [
        {"variant": v, "seed": s, "data_fraction": fraction, "status": "ok", "accuracy": x}
        for v, xs in values.items()
        for s, x in enumerate(xs)
    ]
    return pd.DataFrame(rows)


def test_t_interval_matches_hand_computation():
    mean, low, high = stats.t_interval(np.array([1.0, 2.0, 3.0, 4.0]))
    # sd = sqrt(5/3), se = sd / 2, t_{0.975, 3} = 3.182446 (table value)
    half = 3.182446305 * np.sqrt(5 / 3) / 2
    assert mean == 2.5
    assert low == pytest.approx(2.5 - half, rel=1e-8)
    assert high == pytest.approx(2.5 + half, rel=1e-8)


def test_t_interval_needs_two_values():
    mean, low, high = stats.t_interval(np.array([0.7]))
    assert mean == 0.7 and np.isnan(low) and np.isnan(high)


def test_holm_hand_worked_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.06, 0.04) = 0.06
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm(p), multipletests(p, method="holm")[1])


def test_holm_ignores_missing_and_caps_at_one():
    out = stats.holm([0.5, np.nan, 0.6])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [1.0, 1.0])


def test_t_procedure_matches_scipy_row_by_row():
    """An independent implementation: scipy's one-sample t-test and its confidence interval."""
    rng = np.random.default_rng(7)
    values = rng.normal(0.3, 1.0, (40, 8))
    values[rng.random(values.shape) < 0.2] = np.nan  # rows with 3-8 seeds
    values[:, :3] = rng.normal(0.3, 1.0, (40, 3))
    out = stats.t_procedure(values, 0.1, null=0.2)
    for k, row in enumerate(values):
        x = row[~np.isnan(row)]
        test = scipy_stats.ttest_1samp(x, 0.2)
        ci = test.confidence_interval(0.9)
        assert out.loc[k, "n_seeds"] == x.size and out.loc[k, "method"] == "t"
        assert out.loc[k, "mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert out.loc[k, "p_value"] == pytest.approx(test.pvalue, rel=1e-9)
        assert (out.loc[k, "low"], out.loc[k, "high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_t_procedure_p_below_alpha_exactly_when_the_interval_excludes_the_null():
    rng = np.random.default_rng(8)
    values = rng.normal(rng.normal(0, 1, (4000, 1)), 1.0, (4000, 5))
    out = stats.t_procedure(values, 0.05)
    significant = out["p_value"] < 0.05
    excludes = (out["low"] > 0) | (out["high"] < 0)
    assert 0.2 < significant.mean() < 0.8  # both outcomes occur, so the check has teeth
    assert (significant == excludes).all()


@pytest.mark.parametrize("n", [0, 1, 2])
def test_rows_with_fewer_than_three_seeds_are_not_enough_seeds(n):
    values = np.full((1, 6), np.nan)
    values[0, :n] = [0.81, 0.84][:n]
    out = stats.t_procedure(values).iloc[0]
    assert out["method"] == "not enough seeds" and out["n_seeds"] == n
    assert np.isnan(out["low"]) and np.isnan(out["high"]) and np.isnan(out["p_value"])
    assert np.isnan(out["mean"]) if n == 0 else out["mean"] == pytest.approx(np.mean([0.81, 0.84][:n]))
    assert stats.MIN_SEEDS == 3


def test_identical_differences_are_not_testable_even_with_rounding_noise():
    # every seed one error fewer out of 300 on each of 5 fractions: the pooled mean carries rounding noise
    per_fraction = np.array([0.9966666666666667, 0.99, 0.9933333333333333, 0.98, 0.9866666666666667])
    ref = per_fraction - 1 / 300
    pooled = np.array([np.mean(per_fraction - ref)] * 3) + np.array([0.0, 2e-17, -3e-17])
    assert pooled.std(ddof=1) > 0  # not exactly constant: the case that gave p = 1e-27
    for row in (np.full(3, 1 / 300), pooled, np.zeros(4)):
        out = stats.t_procedure(row).iloc[0]
        assert out["method"] == "no variation" and np.isnan(out["p_value"]), row
        assert np.isnan(out["low"]) and np.isnan(out["high"])
        assert np.isnan(stats.paired_t_test(row))
    # a real difference of one error on one seed of 1,000 test examples is testable
    assert stats.t_procedure(np.array([0.001, 0.0, 0.0])).loc[0, "method"] == "t"


def test_seed_intervals_rows_with_missing_seeds_get_their_own_seed_count():
    values = np.vstack(
        [np.arange(12.0), np.r_[np.arange(5.0), [np.nan] * 7], np.r_[[1.0, 2.0], [np.nan] * 10]]
    )
    out = stats.seed_intervals(values)
    assert out["method"].tolist() == ["t", "t", "not enough seeds"]
    assert out["n_seeds"].tolist() == [12, 5, 2]
    assert out.loc[1, "mean"] == 2.0
    assert (out.loc[1, "low"], out.loc[1, "high"]) == pytest.approx(stats.t_interval(np.arange(5.0))[1:])


def test_percentile_interval_known_answer_and_missing_replicates():
    assert stats.percentile_interval(np.arange(101.0), 0.1).tolist() == [5.0, 95.0]
    with_nan = np.r_[np.arange(101.0), [np.nan] * 50]
    assert stats.percentile_interval(with_nan, 0.1).tolist() == [5.0, 95.0]
    per_row = stats.percentile_interval(np.vstack([np.arange(101.0), np.arange(101.0) * 2]), 0.1, axis=1)
    np.testing.assert_allclose(per_row, [[5.0, 10.0], [95.0, 190.0]])


def test_t_band_matches_t_interval_column_by_column():
    curves = np.random.default_rng(3).normal(size=(6, 4))
    mean, half = stats.t_band(curves, 0.1)
    for k in range(4):
        m, low, high = stats.t_interval(curves[:, k], 0.1)
        assert (mean[k], mean[k] - half[k], mean[k] + half[k]) == pytest.approx((m, low, high))
    assert np.isnan(stats.t_band(curves[:1])[1]).all()


def test_bca_equals_percentile_for_symmetric_data():
    x = np.array([-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0])
    idx = stats.resample_indices(x.size, 20000, np.random.default_rng(0))
    mean, low, high = stats.bca_means(x[None, :], idx, expand=False)
    boot = x[idx].mean(1)
    lo_p, hi_p = np.quantile(boot, [0.025, 0.975])
    assert mean[0] == 0.0
    assert low[0] == pytest.approx(lo_p, abs=0.05)
    assert high[0] == pytest.approx(hi_p, abs=0.05)


def test_bca_expansion_widens_and_constant_data_collapse():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 10))
    idx = stats.resample_indices(10, 5000, rng)
    _, lo_plain, hi_plain = stats.bca_means(x, idx, expand=False)
    _, lo_exp, hi_exp = stats.bca_means(x, idx, expand=True)
    assert lo_exp[0] < lo_plain[0] and hi_exp[0] > hi_plain[0]
    mean, low, high = stats.bca_means(np.full((1, 10), 0.3), idx)
    assert low[0] == high[0] == mean[0] == pytest.approx(0.3)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_bca_means_takes_any_number_of_values_per_row(n):
    """Issue 13 item 6: a row with 1 value among rows with 10 made ``bca_means`` index with NaN."""
    x = np.vstack([np.arange(10.0), np.r_[np.arange(n, dtype=float), [np.nan] * (10 - n)]])
    idx = stats.resample_indices(10, 500, np.random.default_rng(0))
    mean, low, high = stats.bca_means(x, idx)
    assert np.isfinite([low[0], high[0]]).all()
    assert np.isnan(low[1]) == (n < 2) and np.isnan(high[1]) == (n < 2)
    assert np.isnan(mean[1]) == (n == 0)


def test_seed_summary_methods_and_bounds(study):
    out = stats.seed_summary(study["runs"], "accuracy")
    assert len(out) == 15 and set(out["method"]) == {"t"}
    assert (out["low"] <= out["mean"]).all() and (out["mean"] <= out["high"]).all()
    for row in out.itertuples():
        x = study["runs"].query("variant == @row.variant and data_fraction == @row.data_fraction")["accuracy"]
        assert (row.mean, row.low, row.high) == pytest.approx(stats.t_interval(x.to_numpy()))
    few = study["runs"][study["runs"]["seed"] < 2]
    out_few = stats.seed_summary(few, "accuracy")
    assert set(out_few["method"]) == {"not enough seeds"} and out_few["low"].isna().all()


def test_seed_summary_rejects_unknown_metric(study):
    with pytest.raises(ValueError, match="choose from"):
        stats.seed_summary(study["runs"], "acuracy")


def test_paired_contrasts_small_known_answer():
    runs = _runs({"avgpool": [0.80, 0.70, 0.90], "maxpool": [0.82, 0.69, 0.95]})
    out = stats.paired_contrasts(runs, "accuracy", n_boot=1000)
    row = out.iloc[0]
    d = np.array([0.02, -0.01, 0.05])
    mean, low, high = stats.t_interval(d)
    assert row["diff"] == pytest.approx(d.mean())
    assert (row["low"], row["high"]) == pytest.approx((low, high))
    assert row["dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert row["prob_superior"] == pytest.approx(2 / 3)
    assert row["method"] == "t" and row["n_seeds"] == 3


def test_paired_contrasts_test_and_interval_never_disagree(study):
    out = stats.paired_contrasts(study["runs"], ["accuracy", "fpr", "auroc"])
    significant = out["p_value"] < 0.05
    assert significant.any() and (~significant).any()
    assert (significant == ((out["low"] > 0) | (out["high"] < 0))).all()


def test_paired_contrasts_recover_planted_effect(study):
    out = stats.paired_contrasts(study["runs"], ["accuracy"], n_boot=2000)
    pooled = out[out["data_fraction"].isna()].set_index("variant")
    assert pooled.loc["maxpool", "low"] <= -0.05 <= pooled.loc["maxpool", "high"]
    assert pooled.loc["maxpool", "high"] < 0 and pooled.loc["maxpool", "p_holm"] < 0.05
    # the null variant is not declared different after Holm (the family-wise error is controlled)
    assert (out.loc[out["variant"] == "strided", "p_holm"] > 0.05).all()
    assert (out["p_holm"] >= out["p_value"]).all()
    assert list(out.columns) == [
        "metric",
        "variant",
        "reference",
        "data_fraction",
        "n_seeds",
        "diff",
        "low",
        "high",
        "p_value",
        "p_holm",
        "dz",
        "prob_superior",
        "method",
    ]


def test_paired_contrasts_unknown_reference(study):
    with pytest.raises(ValueError, match="choose from"):
        stats.paired_contrasts(study["runs"], "accuracy", reference="avgpol")


def test_contrasts_and_summaries_draw_nothing_so_the_seed_changes_nothing(study):
    a = stats.paired_contrasts(study["runs"], "accuracy", n_boot=1000, seed=1)
    b = stats.paired_contrasts(study["runs"], "accuracy", n_boot=200, seed=2)
    pd.testing.assert_frame_equal(a, b)
    s1 = stats.seed_summary(study["runs"], "accuracy", n_boot=1000, seed=1)
    s2 = stats.seed_summary(study["runs"], "accuracy", n_boot=200, seed=2)
    pd.testing.assert_frame_equal(s1, s2)


def test_hierarchical_interval_matches_runs_and_brackets(study):
    out = stats.hierarchical_interval(study["predictions"], study["runs"], metric="accuracy")
    means = study["runs"].groupby(["variant", "data_fraction"])["accuracy"].mean().to_numpy()
    np.testing.assert_allclose(out["estimate"], means)
    assert (out["low"] < out["estimate"]).all() and (out["estimate"] < out["high"]).all()
    assert (out["n_examples"] == 200).all() and (out["n_seeds"] == 10).all()
    assert set(out["method"]) == {"crossed t"} and out["seed_share"].between(0, 1).all()
    for metric in ("fpr", "precision", "balanced_accuracy"):
        got = stats.hierarchical_interval(study["predictions"], study["runs"], metric=metric)
        expected = study["runs"].groupby(["variant", "data_fraction"])[metric].mean()
        np.testing.assert_allclose(got["estimate"], expected, rtol=1e-10)


def test_linearised_values_average_to_each_runs_metric():
    labels = np.array([1, 1, 1, 0, 0])
    predicted = np.array([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=float)
    expected = {  # by hand: tp, fp, tn, fn per run = (2,1,1,1), (1,0,2,2), (3,2,0,0)
        "accuracy": [3 / 5, 3 / 5, 3 / 5],
        "recall": [2 / 3, 1 / 3, 1.0],
        "precision": [2 / 3, 1.0, 3 / 5],
        "fpr": [1 / 2, 0.0, 1.0],
        "balanced_accuracy": [(2 / 3 + 1 / 2) / 2, (1 / 3 + 1) / 2, (1 + 0) / 2],
    }
    for metric, values in expected.items():
        got = stats.linearised_values(predicted, labels, metric).mean(axis=1)
        np.testing.assert_allclose(got, values, rtol=1e-12, err_msg=metric)


def test_crossed_interval_known_answers():
    rng = np.random.default_rng(11)
    a, b = rng.normal(0, 0.03, 6), rng.normal(0, 0.1, 40)
    # additive seeds + examples, no interaction: Var = var(a) / n + var(b) / N exactly
    out = stats.crossed_mean_interval(0.8 + a[:, None] + b[None, :])
    assert out["se"] ** 2 == pytest.approx(a.var(ddof=1) / 6 + b.var(ddof=1) / 40, rel=1e-10)
    # examples identical for every seed: the t interval of the seeds' means, n - 1 degrees of freedom
    seeds_only = np.repeat((0.8 + a)[:, None], 40, axis=1)
    out = stats.crossed_mean_interval(seeds_only, 0.1)
    assert out["df"] == pytest.approx(5) and out["seed_share"] == pytest.approx(1.0)
    assert (out["low"], out["high"]) == pytest.approx(stats.t_interval(0.8 + a, 0.1)[1:], rel=1e-10)
    # every seed identical: the t interval of the examples' means, N - 1 degrees of freedom
    examples_only = np.repeat((0.8 + b)[None, :], 6, axis=0)
    out = stats.crossed_mean_interval(examples_only)
    assert out["df"] == pytest.approx(39) and out["seed_share"] == pytest.approx(0.0)
    assert (out["low"], out["high"]) == pytest.approx(stats.t_interval(0.8 + b)[1:], rel=1e-10)
    stacked = stats.crossed_mean_interval(np.stack([seeds_only, examples_only]))
    assert stacked["low"][1] == pytest.approx(out["low"])
    # below 5 seeds the seed term's n - 1 degrees of freedom are used, whatever dominates
    few = stats.crossed_mean_interval(examples_only[:4])
    assert few["df"] == 3 and few["se"] == pytest.approx(np.std(0.8 + b, ddof=1) / np.sqrt(40))


def test_hierarchical_interval_needs_three_seeds_and_variation():
    runs = pd.DataFrame(
        {
            "run_id": ["r0", "r1", "r2", "q0", "q1"],
            "variant": ["a", "a", "a", "b", "b"],
            "seed": [0, 1, 2, 0, 1],
            "data_fraction": 1.0,
            "status": "ok",
            "threshold": 0.5,
        }
    )
    labels = np.array([0, 1, 1, 0])
    preds = pd.DataFrame(
        {
            "run_id": np.repeat(runs["run_id"], 4),
            "example_id": np.tile(np.arange(4), 5),
            "label": np.tile(labels, 5),
            "class_index": 1,
            "score": np.tile(labels * 0.8 + 0.1, 5),  # every run right on every example
        }
    )
    out = stats.hierarchical_interval(preds, runs, metric="accuracy").set_index("variant")
    assert out.loc["a", "method"] == "no variation" and out.loc["b", "method"] == "not enough seeds"
    assert out["estimate"].tolist() == [1.0, 1.0] and out[["low", "high"]].isna().all().all()
    with pytest.raises(ValueError, match="choose from"):
        stats.hierarchical_interval(preds, runs, metric="auroc")


def test_simulate_tables_are_schema_valid_and_consistent(study):
    for name in ("runs", "epochs", "predictions", "latency"):
        schema.validate(name, study[name])
    runs, preds = study["runs"], study["predictions"]
    merged = preds.assign(correct=(preds["score"] >= 0.5).astype(int) == preds["label"])
    acc = merged.groupby("run_id")["correct"].mean()
    np.testing.assert_allclose(runs.set_index("run_id").loc[acc.index, "accuracy"], acc)
    assert study["truth"]["accuracy_diff"]["maxpool"][0.5] == -0.05 and study["truth"]["clipped"] == 0


def test_simulate_is_deterministic_and_rejects_unknown_variants():
    a = simulate_study(seeds=2, fractions=(1.0,), n_test=50, seed=4, n_failed=1)
    b = simulate_study(seeds=2, fractions=(1.0,), n_test=50, seed=4, n_failed=1)
    pd.testing.assert_frame_equal(a["runs"], b["runs"])
    assert (a["runs"]["status"] == "failed").sum() == 1
    with pytest.raises(ValueError, match="choose from"):
        simulate_study(effects={"maxpol": 0.1})


def test_multiclass_predictions_are_decided_by_the_most_probable_class():
    """3 classes, 4 examples: run r0 gets examples 0-2 right, r1 gets examples 0 and 3 right."""
    runs = pd.DataFrame(
        {
            "run_id": ["r0", "r1"],
            "variant": "a",
            "seed": [0, 1],
            "data_fraction": 1.0,
            "status": "ok",
            "threshold": np.nan,
        }
    )
    labels = np.array([0, 1, 2, 2])
    probs = {
        "r0": [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1]],
        "r1": [[0.4, 0.3, 0.3], [0.5, 0.2, 0.3], [0.1, 0.8, 0.1], [0.0, 0.1, 0.9]],
    }
    preds = pd.DataFrame(
        [
            {"run_id": r, "example_id": e, "label": labels[e], "class_index": k, "score": p[e][k]}
            for r, p in probs.items()
            for e in range(4)
            for k in range(3)
        ]
    )
    meta, got_labels, predicted = stats.prediction_matrix(preds, runs)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_array_equal(predicted, [[0, 1, 2, 0], [0, 0, 1, 2]])
    out = stats.hierarchical_interval(preds, runs, metric="accuracy")
    assert out.loc[0, "estimate"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    with pytest.raises(ValueError, match="binary"):
        stats.hierarchical_interval(preds, runs, metric="recall")


def test_a_cell_whose_runs_all_diverged_keeps_its_row_with_0_seeds():
    """Issue 13 item 6: a cell left with 0 seeds says "not enough seeds" instead of vanishing."""
    runs = pd.DataFrame(
        {
            "variant": np.repeat(["a", "b", "c"], 3),
            "data_fraction": 1.0,
            "seed": np.tile([0, 1, 2], 3),
            "accuracy": [0.7, 0.8, 0.9, 0.6, 0.7, 0.9, 0.1, 0.1, 0.1],
            "status": ["ok"] * 6 + ["diverged"] * 3,
        }
    )
    summary = stats.seed_summary(runs, "accuracy").set_index("variant")
    assert summary.index.tolist() == ["a", "b", "c"]
    assert summary.loc["c", "n_seeds"] == 0 and summary.loc["c", "method"] == "not enough seeds"
    assert np.isnan(summary.loc["c", ["mean", "low", "high"]].astype(float)).all()
    assert summary.loc["a", "mean"] == pytest.approx(0.8) and summary.loc["a", "method"] == "t"
    pc = stats.paired_contrasts(runs, "accuracy", reference="a").set_index("variant")
    assert pc.loc["b", "diff"] == pytest.approx(-0.2 / 3) and pc.loc["b", "method"] == "t"
    assert pc.loc["c", "n_seeds"] == 0 and pc.loc["c", "method"] == "not enough seeds"
    assert np.isnan(pc.loc["c", ["low", "high", "p_value", "p_holm"]].astype(float)).all()
