"""Operating points: thresholds chosen on validation only, by hand-checked rules, stored at both points."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from downscalexr import schema
from downscalexr.data.synthetic import make_detection_splits
from downscalexr.metrics import balanced_accuracy, binary_metrics, predicted_positive_rate
from downscalexr.operating_point import choose_threshold, score_operating_points
from experiments.cell import Cell, run_cell, run_id
from experiments.spec import EvaluationSpec, SpecError, load_spec

# Validation set whose answers are worked out by hand in the tests below (sorted by score).
VAL_LABELS = np.array([0, 0, 1, 0, 1, 1, 0, 1, 1, 1])
VAL_SCORES = np.array([0.05, 0.15, 0.2, 0.3, 0.45, 0.55, 0.6, 0.7, 0.8, 0.9])


def test_youden_threshold_by_hand():
    """4 negatives, 6 positives. Calling s >= t positive, J = TPR - FPR at each cut between scores:
    t in (0.15, 0.2]: TPR 6/6, FPR 2/4 -> 0.5;   t in (0.3, 0.45]: TPR 5/6, FPR 1/4 -> 0.583;
    t in (0.6, 0.7]: TPR 3/6, FPR 0 -> 0.5;      every other cut is lower. Best: midpoint 0.375."""
    assert choose_threshold(VAL_LABELS, VAL_SCORES, "youden") == pytest.approx(0.375)


def test_prevalence_threshold_by_hand():
    """6 of 10 are positive, so the 6 highest scores are called positive: the cut lies between 0.3
    (the 7th highest) and 0.45 (the 6th)."""
    t = choose_threshold(VAL_LABELS, VAL_SCORES, "prevalence")
    assert t == pytest.approx(0.375)
    assert predicted_positive_rate(VAL_LABELS, VAL_SCORES, t) == pytest.approx(0.6)


def test_the_two_rules_differ_when_prevalence_and_separation_disagree():
    """2 positives of 8, one scored lowest: J is best (0.5) calling only the top score, while matching
    the prevalence calls the top 2 positive."""
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 1])
    scores = np.array([0.02, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.9])
    # Youden: calling only 0.9 -> TPR 1/2, FPR 0 -> 0.5; calling all (t <= 0.02) -> J = 0.
    assert choose_threshold(labels, scores, "youden") == pytest.approx(0.65)
    # prevalence: call the top 2 (0.9 and 0.4): cut between 0.35 and 0.4.
    assert choose_threshold(labels, scores, "prevalence") == pytest.approx(0.375)


def test_youden_matches_a_brute_force_search_over_a_fine_grid():
    """Independent check: no threshold on a 0.0005 grid has a higher J than the chosen one."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        labels = rng.integers(0, 2, size=60)
        labels[:2] = (0, 1)
        scores = np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1).round(3)
        t = choose_threshold(labels, scores, "youden")
        grid = np.linspace(0, 1, 2001)
        best_on_grid = max(balanced_accuracy(labels, scores, g) for g in grid)
        assert balanced_accuracy(labels, scores, t) == pytest.approx(max(best_on_grid, 0.5))
        assert not np.isin(t, scores)  # never on a validation score


def test_ties_go_to_the_threshold_nearest_one_half():
    """Perfect separation: every cut between 0.2 and 0.8 has J = 1; the midpoint 0.5 wins."""
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(0.5)
    # separated only below 0.5: the one perfect cut is the midpoint 0.25
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.25)


def test_no_cut_better_than_chance_keeps_the_fixed_threshold():
    # positives score lower than negatives: every cut has J <= 0
    assert choose_threshold([1, 1, 0, 0], [0.1, 0.2, 0.7, 0.8], "youden") == 0.5


def test_one_class_validation_and_unknown_rules_are_refused():
    with pytest.raises(ValueError, match="one class only"):
        choose_threshold([1, 1, 1], [0.2, 0.5, 0.7])
    with pytest.raises(ValueError, match="choose from youden, prevalence"):
        choose_threshold(VAL_LABELS, VAL_SCORES, "f1")
    with pytest.raises(ValueError, match="probabilities"):
        choose_threshold([0, 1], [-2.0, 3.0])


def _test_split(prevalence: float, n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < prevalence).astype(int)
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.15), 0, 1)
    return labels, scores


def test_the_chosen_threshold_ignores_the_test_split():
    """Two test sets of very different prevalence: the same threshold, different test metrics."""
    rare, common = _test_split(0.1), _test_split(0.9, seed=1)
    a = score_operating_points(VAL_LABELS, VAL_SCORES, *rare, rule="prevalence", report="chosen")
    b = score_operating_points(VAL_LABELS, VAL_SCORES, *common, rule="prevalence", report="chosen")
    assert a["threshold_chosen"] == b["threshold_chosen"] == pytest.approx(0.375)
    assert a["prevalence"] != pytest.approx(b["prevalence"], abs=0.3)


@pytest.mark.parametrize("report", ["fixed", "chosen"])
def test_both_points_are_stored_and_the_reported_one_fills_the_main_columns(report):
    labels, scores = _test_split(0.6)
    row = score_operating_points(VAL_LABELS, VAL_SCORES, labels, scores, report=report)
    t = 0.5 if report == "fixed" else row["threshold_chosen"]
    assert row["threshold"] == t and row["operating_point"] == report
    for point, threshold in (("fixed", 0.5), ("chosen", row["threshold_chosen"])):
        expected = binary_metrics(labels, scores, threshold)
        assert {m: row[f"{m}_{point}"] for m in schema.THRESHOLD_METRICS} == {
            m: expected[m] for m in schema.THRESHOLD_METRICS
        }
    assert {m: row[m] for m in schema.METRIC_COLUMNS} == {
        m: v for m, v in binary_metrics(labels, scores, t).items() if m in schema.METRIC_COLUMNS
    }
    assert set(schema.OPERATING_POINT_COLUMNS) <= set(row)


def test_a_one_class_validation_split_blanks_the_chosen_point_or_refuses_to_report_it():
    labels, scores = _test_split(0.6)
    row = score_operating_points([1, 1, 1], [0.2, 0.6, 0.9], labels, scores, report="fixed")
    assert row["accuracy"] == binary_metrics(labels, scores, 0.5)["accuracy"]
    assert math.isnan(row["threshold_chosen"]) and math.isnan(row["fpr_chosen"])
    with pytest.raises(ValueError, match="one class only"):
        score_operating_points([1, 1, 1], [0.2, 0.6, 0.9], labels, scores, report="chosen")


# ---------------------------------------------------------------- in a real cell


def _cell_and_spec(operating_point: str):
    spec = load_spec("smoke")
    spec = dataclasses.replace(
        spec,
        latency=dataclasses.replace(spec.latency, enabled=False),
        evaluation=EvaluationSpec(operating_point=operating_point),
    )
    return spec, Cell("smoke", "detection", "lenet", "maxpool", seed=0, data_fraction=1.0)


def _smoke_data(test_prevalence: float):
    options = load_spec("smoke").data | {"test_prevalence": test_prevalence, "n_test": 200}
    return make_detection_splits(seed=0, test_seed=1000, **options)


def test_a_trained_cell_chooses_the_same_threshold_whatever_the_test_prevalence():
    """Plant a different test prevalence: the training and validation data are the same, so the
    trained model and its chosen threshold must be too; only the test metrics move."""
    spec, cell = _cell_and_spec("chosen")
    rows = [run_cell(spec, cell, _smoke_data(p))["runs"].iloc[0] for p in (0.2, 0.8)]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[0]["threshold_chosen"] == rows[1]["threshold_chosen"]
    assert rows[0]["threshold"] == rows[0]["threshold_chosen"]
    assert rows[0]["val_auroc"] == rows[1]["val_auroc"]
    assert rows[0]["prevalence"] == pytest.approx(0.2) and rows[1]["prevalence"] == pytest.approx(0.8)


def test_a_cell_stores_the_rule_and_both_points():
    spec, cell = _cell_and_spec("fixed")
    row = run_cell(spec, cell, _smoke_data(0.625))["runs"].iloc[0]
    assert row["operating_point"] == "fixed" and row["threshold_rule"] == "youden"
    assert row["threshold"] == 0.5 and 0.0 <= row["threshold_chosen"] <= 1.0
    assert row["accuracy"] == row["accuracy_fixed"]
    assert not any(math.isnan(row[c]) for c in schema.OPERATING_POINT_COLUMNS)
    assert row["steps_run"] > 0 and row["best_step"] > 0


def test_the_default_evaluation_leaves_run_ids_unchanged():
    spec, cell = _cell_and_spec("fixed")
    plain = dataclasses.replace(spec, evaluation=EvaluationSpec())
    assert run_id(spec, cell) == run_id(plain, cell)
    chosen, _ = _cell_and_spec("chosen")
    assert run_id(chosen, cell) != run_id(spec, cell)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("operating_point", "validation", "choose from fixed, chosen"), ("threshold_rule", "f1", "youden")],
)
def test_evaluation_settings_are_checked(key, value, message):
    with pytest.raises(SpecError, match=message):
        EvaluationSpec(**{key: value})
