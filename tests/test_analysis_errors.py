"""Multi-class error statistics against hand-computed answers and planted effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.design import design_frame
from analysis.simulation.multiclass import simulate_multiclass_study
from analysis.stats.difficulty import example_difficulty
from analysis.stats.errors import (
    confused_pair_contrasts,
    confused_pairs,
    confusion_matrices,
    macro_f1,
    per_class_recall,
    run_confusions,
)

LABELS = [0, 0, 1, 1, 2, 2]
# two runs of variant "a" (seeds 0 and 1); the hand-computed answers below follow from these decisions
DECISIONS = {"A": [0, 1, 1, 1, 2, 0], "B": [0, 0, 2, 2, 1, 2]}


def _predictions(decisions: dict[str, list[int]], labels=LABELS, k: int = 3) -> pd.DataFrame:
    """Scores with the argmax at each decision: 0.6 for the decided class, the rest shared."""
    rows = []
    for run, decided in decisions.items():
        for example, (label, choice) in enumerate(zip(labels, decided, strict=True)):
            for c in range(k):
                score = 0.6 if c == choice else 0.4 / (k - 1)
                rows.append((run, example, label, c, score))
    return pd.DataFrame(rows, columns=["run_id", "example_id", "label", "class_index", "score"])


def _runs(ids=("A", "B"), variants=("a", "a"), seeds=(0, 1)) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": list(ids),
            "status": "ok",
            "variant": list(variants),
            "data_fraction": 1.0,
            "seed": list(seeds),
        }
    )


def test_confusion_matrix_pooled_over_seeds_matches_the_hand_count():
    cm = confusion_matrices(_predictions(DECISIONS), _runs())
    counts = cm.pivot(index="true_class", columns="predicted_class", values="count").to_numpy()
    rates = cm.pivot(index="true_class", columns="predicted_class", values="rate").to_numpy()
    np.testing.assert_array_equal(counts, [[3, 1, 0], [0, 2, 2], [1, 1, 2]])
    np.testing.assert_allclose(rates, [[0.75, 0.25, 0], [0, 0.5, 0.5], [0.25, 0.25, 0.5]])
    assert set(cm["n_runs"]) == {2}


def test_ties_go_to_the_lowest_class_and_row_order_does_not_matter():
    preds = _predictions(DECISIONS)
    tie = (preds["run_id"] == "A") & (preds["example_id"] == 0)
    preds.loc[tie, "score"] = 1 / 3  # a three-way tie on a class-0 example: decided as class 0 (right)
    shuffled = preds.sample(frac=1.0, random_state=3)
    _, counts = run_confusions(shuffled, _runs())
    np.testing.assert_array_equal(counts[0], [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    preds.loc[tie & (preds["class_index"] == 0), "score"] = 0.0  # tie between classes 1 and 2 -> 1
    np.testing.assert_array_equal(run_confusions(preds, _runs())[1][0][0], [0, 2, 0])


def test_per_class_recall_is_the_t_interval_of_the_hand_computed_recalls():
    out = per_class_recall(_predictions(DECISIONS), _runs(), n_boot=200)
    # run A recalls [0.5, 1, 0.5], run B [1, 0, 0.5]; two seeds: a t interval with 1 degree of freedom
    for cls, (x, y) in enumerate([(0.5, 1.0), (1.0, 0.0), (0.5, 0.5)]):
        row = out[out["class_index"] == cls].iloc[0]
        half = stats.t.ppf(0.975, 1) * np.std([x, y], ddof=1) / np.sqrt(2)
        assert row["mean"] == pytest.approx((x + y) / 2)
        assert row["low"] == pytest.approx((x + y) / 2 - half)
        assert row["high"] == pytest.approx((x + y) / 2 + half)
        assert row["n_seeds"] == 2 and row["method"] == "t"


def test_most_confused_pairs_and_their_rates_match_the_hand_count():
    out = confused_pairs(_predictions(DECISIONS), _runs(), top=2, n_boot=200)
    # pooled pair rates: {1,2} 3/8, {0,1} 1/8, {0,2} 1/8 (tie broken by class order)
    assert out[["class_a", "class_b"]].values.tolist() == [[1, 2], [0, 1]]
    first = out.iloc[0]
    assert first["mean"] == pytest.approx(0.375)  # run A 0, run B 3/4
    assert first["rate_ab"] == pytest.approx(0.5)  # class 1 given class 2: 2 of 4
    assert first["rate_ba"] == pytest.approx(0.25)  # class 2 given class 1: 1 of 4
    half = stats.t.ppf(0.975, 1) * np.std([0.0, 0.75], ddof=1) / np.sqrt(2)
    assert first["high"] == pytest.approx(0.375 + half)
    assert out.iloc[1]["mean"] == pytest.approx(0.125)


def test_pair_contrast_between_variants_matches_the_hand_computed_difference():
    # variant b on the same two seeds makes no error at all: every pair rate drops to 0
    perfect = {"C": LABELS, "D": LABELS}
    preds = _predictions(DECISIONS | perfect)
    runs = _runs(("A", "B", "C", "D"), ("a", "a", "b", "b"), (0, 1, 0, 1)).assign(model="lenet")
    out = confused_pair_contrasts(preds, runs, top=1, reference="a", n_boot=200)
    row = out.iloc[0]
    assert (row["class_a"], row["class_b"], row["variant"]) == (1, 2, "b")
    assert row["diff"] == pytest.approx(-0.375)  # differences per seed: 0 - 0 and 0 - 0.75
    assert row["p_value"] == pytest.approx(stats.ttest_1samp([0.0, -0.75], 0.0).pvalue)


def test_example_difficulty_counts_the_runs_that_are_wrong():
    preds = _predictions(DECISIONS).assign(source=lambda d: "test[" + d["example_id"].astype(str) + "]")
    out = example_difficulty(preds, _runs())
    assert out["example_id"].tolist() == [1, 2, 3, 4, 5, 0]  # five at 1/2 (by id), then the easy one
    assert out["share_wrong"].tolist() == [0.5] * 5 + [0.0]
    assert out["top_wrong_class"].tolist() == [1, 2, 2, 1, 0, -1]
    assert out["source"].iloc[0] == "test[1]"


def test_macro_f1_from_counts_matches_the_hand_computed_value_and_the_runs_table():
    _, counts = run_confusions(_predictions(DECISIONS), _runs())
    # run A: per-class F1 2/4, 4/5, 2/3
    assert macro_f1(counts)[0] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    study = simulate_multiclass_study(seeds=3, fractions=(1.0,), n_test=60)
    meta, counts = run_confusions(study["predictions"], study["runs"])
    np.testing.assert_allclose(macro_f1(counts), meta["f1"], atol=1e-12)  # runs' f1 is macro F1


def test_failed_runs_are_left_out():
    runs = _runs(("A", "B", "C"), ("a", "a", "a"), (0, 1, 2))
    runs.loc[2, "status"] = "failed"
    preds = _predictions(DECISIONS | {"C": [2, 2, 0, 0, 1, 1]})
    pd.testing.assert_frame_equal(
        confusion_matrices(preds, runs), confusion_matrices(_predictions(DECISIONS), _runs())
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p[p["class_index"] < 2].assign(class_index=1), "not multi-class"),
        (lambda p: p.iloc[1:], "lacks a score"),
        (lambda p: pd.concat([p, p.iloc[:1]]), "more than once"),
        (lambda p: p.assign(label=np.where(p["run_id"] == "B", 0, p["label"])), "disagree on the labels"),
    ],
)
def test_bad_predictions_are_refused_with_the_reason(change, message):
    with pytest.raises(ValueError, match=message):
        run_confusions(change(_predictions(DECISIONS)), _runs())


@pytest.fixture(scope="module")
def planted():
    """LeNet strided confuses classes 0 and 1 (planted weights) and loses 5 points of recall."""
    weights = np.ones((4, 4)) - np.eye(4)
    weights[0, 1] = weights[1, 0] = 12.0
    return simulate_multiclass_study(
        seeds=12,
        fractions=(1.0,),
        n_test=800,
        effects={"lenet:strided": -0.05},
        error_weights={"lenet:strided": weights},
        example_rho=0.0,  # no shared example difficulty: the pooled rates converge on the planted ones
        seed=4,
    )


def test_planted_confusion_matrix_and_recall_are_recovered(planted):
    plan = planted["truth"]["plan"]
    assert planted["truth"]["clipped"] == 0
    runs = design_frame(planted["runs"])
    cm = confusion_matrices(planted["predictions"], runs, by=("arm",))
    recall = per_class_recall(planted["predictions"], runs, by=("arm",), n_boot=2000, seed=1)
    inside = []
    for arm in plan.variants:
        rates = cm[cm["arm"] == arm].pivot(index="true_class", columns="predicted_class", values="rate")
        np.testing.assert_allclose(rates.to_numpy(), plan.expected_confusion(f"lenet:{arm}"), atol=0.03)
        part = recall[recall["arm"] == arm]
        truth = plan.recall_at(f"lenet:{arm}", 1.0)
        inside += list((part["low"] <= truth) & (truth <= part["high"]))
    assert np.mean(inside) >= 0.75  # 12 intervals at 95 %; the seed effect is shared, so they move together


def test_planted_pair_confusion_is_found_and_its_contrast_shown(planted):
    plan = planted["truth"]["plan"]
    runs = planted["runs"]
    strided_runs = runs[runs["variant"] == "strided"]
    pairs = confused_pairs(planted["predictions"], strided_runs, top=1, n_boot=2000)
    assert pairs[["class_a", "class_b"]].values.tolist() == [[0, 1]]
    pc = confused_pair_contrasts(planted["predictions"], runs, top=3, n_boot=2000)
    pc = pc[(pc["class_a"] == 0) & (pc["class_b"] == 1)]
    strided = pc[pc["variant"] == "strided"].iloc[0]

    def pair_rate(arm: str) -> float:  # balanced classes: the mean of the two directions
        m = plan.expected_confusion(arm)
        return (m[0, 1] + m[1, 0]) / 2

    truth = pair_rate("lenet:strided") - pair_rate("lenet:avgpool")
    assert strided["low"] <= truth <= strided["high"]
    assert strided["p_holm"] < 0.01
    maxpool = pc[pc["variant"] == "maxpool"].iloc[0]
    assert maxpool["p_holm"] > 0.05  # nothing planted for maxpool


def test_given_pairs_are_reported_in_their_order_and_bad_ones_refused():
    out = confused_pairs(_predictions(DECISIONS), _runs(), pairs=[(2, 0), (1, 2)], n_boot=200)
    assert out[["class_a", "class_b"]].values.tolist() == [[0, 2], [1, 2]]
    assert out["mean"].tolist() == pytest.approx([0.125, 0.375])
    with pytest.raises(ValueError, match="distinct classes"):
        confused_pairs(_predictions(DECISIONS), _runs(), pairs=[(1, 1)], n_boot=200)


def test_difficulty_per_group_counts_each_groups_runs():
    preds = _predictions(DECISIONS | {"C": LABELS})  # run C (variant b) is always right
    runs = _runs(("A", "B", "C"), ("a", "a", "b"), (0, 1, 0))
    out = example_difficulty(preds, runs, by="variant").set_index(["variant", "example_id"])
    assert out.loc[("a", 1), "share_wrong"] == 0.5 and out.loc[("a", 1), "n_runs"] == 2
    assert (out.loc["b", "share_wrong"] == 0).all() and (out.loc["b", "top_wrong_class"] == -1).all()
