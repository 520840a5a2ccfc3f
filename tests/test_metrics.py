"""Metrics against scikit-learn (the oracle), hand-checked tiny arrays, planted calibration, bad inputs."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from downscalexr import metrics as M
from downscalexr.schema import METRIC_COLUMNS

RUN_KEYS = (*METRIC_COLUMNS, "threshold")
HYPOTHESIS = settings(max_examples=60, deadline=None)


def _binary_case(seed: int, n: int = 300, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Labels with both classes and informative scores in [0, 1]; ``ties`` rounds scores to 0.1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * (y - 0.5))))
    return y, (np.round(s, 1) if ties else s)


def _multiclass_case(seed: int, n: int = 400, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, p


# ---------------------------------------------------------------- key sets (the runs-row contract)


def test_binary_metrics_has_exactly_the_run_columns_as_floats():
    y, s = _binary_case(0)
    m = M.binary_metrics(y, s, threshold=0.4)
    assert tuple(m) == RUN_KEYS
    assert all(type(v) is float and math.isfinite(v) for v in m.values())
    assert m["threshold"] == 0.4


def test_multiclass_metrics_has_exactly_the_run_columns():
    y, p = _multiclass_case(0)
    m = M.multiclass_metrics(y, p)
    assert tuple(m) == RUN_KEYS
    assert all(type(v) is float for v in m.values())
    assert all(math.isfinite(v) for k, v in m.items() if k != "threshold")
    assert math.isnan(m["threshold"])  # documented: argmax decisions have no threshold


# ---------------------------------------------------------------- scikit-learn as oracle, binary


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_binary_metrics_match_sklearn(seed, ties, threshold):
    y, s = _binary_case(seed, ties=ties)
    pred = (s >= threshold).astype(int)
    m = M.binary_metrics(y, s, threshold)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, zero_division=0),
        "recall": skm.recall_score(y, pred),
        "specificity": skm.recall_score(y, pred, pos_label=0),
        "f1": skm.f1_score(y, pred),
        "auroc": skm.roc_auc_score(y, s),
        "auprc": skm.average_precision_score(y, s),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "fpr": fp / (fp + tn),
        "fnr": fn / (fn + tp),
        "predicted_positive_rate": pred.mean(),
        "prevalence": y.mean(),
        "brier": skm.brier_score_loss(y, s),
        "log_loss": skm.log_loss(y, np.clip(s, 1e-7, 1 - 1e-7)),
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


def test_single_metric_functions_agree_with_binary_metrics():
    y, s = _binary_case(3, ties=True)
    m = M.binary_metrics(y, s, 0.6)
    singles = {
        "accuracy": M.accuracy,
        "balanced_accuracy": M.balanced_accuracy,
        "precision": M.precision,
        "recall": M.recall,
        "specificity": M.specificity,
        "f1": M.f1,
        "fpr": M.false_positive_rate,
        "fnr": M.false_negative_rate,
        "predicted_positive_rate": M.predicted_positive_rate,
        "dprime": M.dprime,
        "criterion_c": M.criterion_c,
    }
    for key, fn in singles.items():
        assert fn(y, s, 0.6) == pytest.approx(m[key], rel=1e-12), key
    assert M.sensitivity(y, s, 0.6) == m["recall"]
    assert tuple(M.confusion_counts(y, s, 0.6)) == (m["tp"], m["fp"], m["tn"], m["fn"])
    assert M.auroc(y, s) == pytest.approx(m["auroc"])
    assert M.auprc(y, s) == pytest.approx(m["auprc"])
    assert M.prevalence(y) == m["prevalence"]
    assert M.expected_calibration_error(y, s) == pytest.approx(m["ece"])
    assert M.brier_score(y, s) == pytest.approx(m["brier"])
    assert M.log_loss(y, s) == pytest.approx(m["log_loss"])


@st.composite
def _labels_and_scores(draw, min_size=2, max_size=40):
    """Both classes present; integer-valued scores so ties are common."""
    n = draw(st.integers(min_size, max_size))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    y[0], y[-1] = 0, 1
    s = np.array(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), dtype=float) / 5
    return y, s


@HYPOTHESIS
@given(_labels_and_scores())
def test_auroc_and_auprc_match_sklearn_with_ties(case):
    y, s = case
    assert M.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert M.auprc(y, s) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)


@HYPOTHESIS
@given(_labels_and_scores())
def test_auroc_ranking_properties(case):
    y, s = case
    a = M.auroc(y, s)
    assert 0.0 <= a <= 1.0
    assert M.auroc(y, np.log(s + 0.1) * 3 - 7) == pytest.approx(a)  # any increasing map, off [0, 1]
    assert M.auroc(y, 1 - s) == pytest.approx(1 - a)
    assert M.auroc(1 - y, s) == pytest.approx(1 - a)
    assert 0.0 < M.auprc(y, s) <= 1.0
    perfect = y + 0.5 * s  # every positive above every negative, ties within a class kept
    assert M.auroc(y, perfect) == 1.0 and M.auprc(y, perfect) == pytest.approx(1.0)


@HYPOTHESIS
@given(_labels_and_scores(min_size=3), st.integers(0, 2**32 - 1))
def test_batch_rows_equal_single_calls(case, seed):
    y, s = case
    rng = np.random.default_rng(seed)
    pos_idx, neg_idx = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    # stratified bootstrap rows, so every row holds both classes
    idx = np.concatenate(
        [rng.choice(pos_idx, (5, pos_idx.size)), rng.choice(neg_idx, (5, neg_idx.size))], axis=1
    )
    ys, ss = y[idx], s[idx]
    np.testing.assert_allclose(
        M.auroc_batch(ys, ss), [M.auroc(a, b) for a, b in zip(ys, ss, strict=True)], atol=1e-12
    )
    np.testing.assert_allclose(
        M.auprc_batch(ys, ss), [M.auprc(a, b) for a, b in zip(ys, ss, strict=True)], atol=1e-12
    )
    # shared labels: one label vector, several score rows (e.g. several models on one test set)
    rows = np.stack([s, 1 - s, np.zeros_like(s)])
    np.testing.assert_allclose(M.auroc_batch(y, rows), [M.auroc(y, r) for r in rows], atol=1e-12)


# ---------------------------------------------------------------- hand-checked tiny arrays


def test_tiny_confusion_and_signal_detection_by_hand():
    y = [1, 1, 1, 0]
    s = [0.9, 0.8, 0.2, 0.1]  # threshold 0.5: tp=2, fn=1, fp=0, tn=1
    assert M.confusion_counts(y, s) == (2, 0, 1, 1)
    h, f = (2 + 0.5) / (3 + 1), (0 + 0.5) / (1 + 1)  # log-linear: 0.625, 0.25
    d, c = M.signal_detection(y, s)
    assert d == pytest.approx(norm.ppf(h) - norm.ppf(f), abs=1e-12)
    assert c == pytest.approx(-(norm.ppf(h) + norm.ppf(f)) / 2, abs=1e-12)
    m = M.binary_metrics(y, s)
    assert m["dprime"] == pytest.approx(d) and m["criterion_c"] == pytest.approx(c)
    assert (m["precision"], m["recall"], m["specificity"]) == (1.0, 2 / 3, 1.0)
    assert m["f1"] == pytest.approx(4 / 5)
    assert (m["fpr"], m["predicted_positive_rate"], m["prevalence"]) == (0.0, 0.5, 0.75)


def test_criterion_sign_liberal_vs_conservative():
    y = np.array([1, 1, 0, 0, 0, 0])
    liberal = M.criterion_c(y, [0.9, 0.9, 0.9, 0.9, 0.9, 0.1])  # calls almost everything positive
    conservative = M.criterion_c(y, [0.9, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert liberal < 0 < conservative


def test_tiny_auroc_with_tie_and_auprc_by_hand():
    # positives 0.8, 0.4; negatives 0.4, 0.1 -> pairs: (0.8>0.4) (0.8>0.1) (0.4=0.4: 1/2) (0.4>0.1)
    y, s = [1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]
    assert M.auroc(y, s) == 3.5 / 4
    # thresholds 0.8: P=1, R=1/2; 0.4: P=2/3, R=1 -> AP = 1/2 * 1 + 1/2 * 2/3
    assert M.auprc(y, s) == pytest.approx(0.5 + 1 / 3)


def test_tiny_calibration_scores_by_hand():
    y, p = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.6, 0.65])
    assert M.brier_score(y, p) == pytest.approx((0.01 + 0.04 + 0.16 + 0.4225) / 4)
    assert M.log_loss(y, p) == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.6, 0.35])))
    # 15 bins: 0.9 -> bin 13, 0.2 -> bin 3, 0.6 and 0.65 -> bin 9 (mean conf 0.625, one positive of two)
    assert M.expected_calibration_error(y, p) == pytest.approx((0.1 + 0.2 + 2 * 0.125) / 4)
    # p = 1 falls in the last bin [14/15, 1], together with 0.95: mean conf 0.975, half positive
    assert M.expected_calibration_error([0, 1], [1.0, 0.95]) == pytest.approx(0.475)
    # log loss clips: a confident mistake costs -log(1e-7), not infinity
    assert M.log_loss([1, 0], [0.0, 1.0]) == pytest.approx(-np.log(1e-7))


def _ece_reference(correct, conf, n_bins=15):
    """Loop version: bins [k/n, (k+1)/n), the last one closed."""
    total = 0.0
    for k in range(n_bins):
        lo, hi = k / n_bins, (k + 1) / n_bins
        inside = (conf >= lo) & ((conf < hi) if k < n_bins - 1 else (conf <= hi))
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


@pytest.mark.parametrize("seed", [0, 1])
def test_ece_matches_loop_reference(seed):
    y, s = _binary_case(seed, n=2000)
    assert M.expected_calibration_error(y, s) == pytest.approx(_ece_reference(y, s), abs=1e-12)
    ym, p = _multiclass_case(seed)
    ref = _ece_reference(p.argmax(1) == ym, p.max(1))
    assert M.expected_calibration_error(ym, p) == pytest.approx(ref, abs=1e-12)
    assert M.multiclass_metrics(ym, p)["ece"] == pytest.approx(ref, abs=1e-12)


# ---------------------------------------------------------------- planted calibration


def test_ece_near_zero_when_calibrated_and_large_when_not():
    rng = np.random.default_rng(7)
    p = rng.uniform(size=200_000)
    y_calibrated = rng.uniform(size=p.size) < p
    assert M.expected_calibration_error(y_calibrated, p) < 0.01
    y_skewed = rng.uniform(size=p.size) < p**2  # P(y=1 | p) = p^2, so E|p - p^2| = 1/6
    assert M.expected_calibration_error(y_skewed, p) == pytest.approx(1 / 6, abs=0.01)


def test_multiclass_ece_calibrated_vs_overconfident():
    rng = np.random.default_rng(8)
    p = rng.dirichlet(np.ones(5), size=100_000)
    y = (rng.uniform(size=(p.shape[0], 1)) > p.cumsum(axis=1)).sum(axis=1)  # y ~ Categorical(p)
    assert M.expected_calibration_error(y, p) < 0.01
    sharp = p**3 / (p**3).sum(axis=1, keepdims=True)  # same argmax, overconfident
    assert M.expected_calibration_error(y, sharp) > 0.1


# ---------------------------------------------------------------- multi-class


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [3, 5])
def test_multiclass_metrics_match_sklearn(seed, k):
    y, p = _multiclass_case(seed, k=k)
    pred = p.argmax(axis=1)
    m = M.multiclass_metrics(y, p)
    mcm = skm.multilabel_confusion_matrix(y, pred, labels=range(k))  # K x [[tn, fp], [fn, tp]]
    tn, fp, fn, tp = (mcm[:, i // 2, i % 2].astype(float) for i in range(4))
    onehot = label_binarize(y, classes=range(k))
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, average="macro", zero_division=0),
        "recall": skm.recall_score(y, pred, average="macro"),
        "f1": skm.f1_score(y, pred, average="macro"),
        "specificity": np.mean(tn / (tn + fp)),
        "auroc": skm.roc_auc_score(y, p, multi_class="ovr", average="macro"),
        "auprc": skm.average_precision_score(onehot, p, average="macro"),
        "tp": tp.mean(),
        "fp": fp.mean(),
        "tn": tn.mean(),
        "fn": fn.mean(),
        "fpr": np.mean(fp / (fp + tn)),
        "fnr": np.mean(fn / (fn + tp)),
        "predicted_positive_rate": 1 / k,
        "prevalence": 1 / k,
        "brier": np.mean(((p - onehot) ** 2).sum(axis=1)),
        "log_loss": skm.log_loss(y, p, labels=range(k)),
    }
    for key, value in expected.items():
        assert m[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # d' and c: macro mean of the binary one-vs-rest values
    per_class = [M.signal_detection(y == c, (pred == c).astype(float)) for c in range(k)]
    assert m["dprime"] == pytest.approx(np.mean([d for d, _ in per_class]))
    assert m["criterion_c"] == pytest.approx(np.mean([c for _, c in per_class]))
    np.testing.assert_array_equal(M.confusion_matrix(y, pred, k), skm.confusion_matrix(y, pred))


def test_two_class_multiclass_agrees_with_binary():
    y, s = _binary_case(4)
    assert not np.any(s == 0.5)  # argmax breaks a 0.5 tie towards class 0, the threshold towards 1
    b, m = M.binary_metrics(y, s), M.multiclass_metrics(y, np.stack([1 - s, s], axis=1))
    for key in ("accuracy", "balanced_accuracy", "auroc", "log_loss"):
        assert m[key] == pytest.approx(b[key]), key
    assert m["brier"] == pytest.approx(2 * b["brier"])  # the multi-class form counts both columns


def test_multiclass_scores_helpers_dispatch_on_shape():
    y, p = _multiclass_case(2)
    m = M.multiclass_metrics(y, p)
    assert M.brier_score(y, p) == m["brier"] and M.log_loss(y, p) == m["log_loss"]


# ---------------------------------------------------------------- degenerate and malformed inputs


@pytest.mark.parametrize(
    "fn", [M.auroc, M.auprc, M.balanced_accuracy, M.dprime, M.criterion_c, M.binary_metrics]
)
@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0, 0]])
def test_one_class_raises_for_metrics_that_need_both(fn, labels):
    with pytest.raises(ValueError, match="one class"):
        fn(labels, [0.2, 0.7, 0.9])


def test_one_class_raises_only_where_the_missing_class_matters():
    only_neg, only_pos, s = [0, 0, 0], [1, 1, 1], [0.2, 0.7, 0.9]
    for fn in (M.recall, M.false_negative_rate, M.f1):
        with pytest.raises(ValueError, match="positive"):
            fn(only_neg, s)
        assert math.isfinite(fn(only_pos, s))
    for fn in (M.specificity, M.false_positive_rate):
        with pytest.raises(ValueError, match="negative"):
            fn(only_pos, s)
        assert math.isfinite(fn(only_neg, s))
    # defined with one class
    assert M.accuracy(only_neg, s) == 1 / 3
    assert M.prevalence(only_pos) == 1.0
    assert M.brier_score(only_pos, s) == pytest.approx(np.mean((1 - np.array(s)) ** 2))
    assert math.isfinite(M.log_loss(only_neg, s)) and math.isfinite(M.expected_calibration_error(only_neg, s))


def test_constant_scores_are_defined():
    y = np.array([0, 1, 1, 0, 1])
    for value in (0.0, 0.5, 1.0):
        s = np.full(y.size, value)
        assert M.auroc(y, s) == 0.5
        assert M.auprc(y, s) == pytest.approx(0.6)  # prevalence
        m = M.binary_metrics(y, s)
        assert all(math.isfinite(v) for v in m.values())


def test_nothing_predicted_positive_gives_zero_precision():
    y, s = [0, 1, 1, 0], [0.1, 0.2, 0.3, 0.4]
    m = M.binary_metrics(y, s)
    assert (m["precision"], m["recall"], m["f1"], m["predicted_positive_rate"]) == (0.0, 0.0, 0.0, 0.0)
    assert M.precision(y, s) == 0.0
    assert math.isfinite(m["dprime"])  # log-linear correction keeps z finite at H = F = 0


@pytest.mark.parametrize(
    ("labels", "scores", "match"),
    [
        ([], [], "empty"),
        ([0, 1], [0.2, 1.3], r"\[0, 1\]"),
        ([0, 1], [-0.1, 0.5], r"\[0, 1\]"),
        ([0, 1], [0.2, np.nan], "NaN"),
        ([0, 1], [0.2, np.inf], "NaN or infinite"),
        ([0, 2], [0.2, 0.3], "0 or 1"),
        ([0, 0.5], [0.2, 0.3], "0 or 1"),
        ([0, 1, 1], [0.2, 0.3], "lengths"),
        ([[0, 1]], [[0.2, 0.3]], "1-D"),
        (["a", "b"], [0.2, 0.3], "numeric"),
    ],
)
def test_malformed_binary_inputs_raise(labels, scores, match):
    with pytest.raises(ValueError, match=match):
        M.binary_metrics(labels, scores)


def test_ranking_metrics_accept_logits_but_probability_metrics_do_not():
    y, s = _binary_case(5)
    logits = np.log(s / (1 - s))
    assert M.auroc(y, logits) == pytest.approx(M.auroc(y, s))
    assert M.auprc(y, logits) == pytest.approx(M.auprc(y, s))
    with pytest.raises(ValueError, match="not logits"):
        M.brier_score(y, logits)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_threshold_outside_unit_interval_raises(threshold):
    with pytest.raises(ValueError, match="threshold"):
        M.binary_metrics([0, 1], [0.2, 0.8], threshold=threshold)


def test_batch_rejects_one_class_rows_and_bad_shapes():
    y = np.array([[0, 1, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="1 of 2 rows hold one class"):
        M.auroc_batch(y, np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="R x N"):
        M.auroc_batch([0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="length"):
        M.auprc_batch([0, 1], np.zeros((4, 3)))


@pytest.mark.parametrize(
    ("labels", "probs", "match"),
    [
        ([0, 1, 1], [[0.5, 0.5], [0.2, 0.8], [0.3, 0.7]] * 1, None),
        ([0, 1, 1], [[0.5, 0.5], [0.2, 0.8]], "length"),
        ([0, 1, 3], np.full((3, 3), 1 / 3), "0..2"),
        ([0, 1, 1], [[0.5, 0.6], [0.2, 0.8], [0.3, 0.7]], "sum to 1"),
        ([0, 1, 1], np.full((3, 3), 1 / 3), r"classes \[2\] never occur"),
        ([0, 1, 1], [[1.5, -0.5], [0.2, 0.8], [0.3, 0.7]], r"\[0, 1\]"),
        ([0, 1, 1], [[1.0], [1.0], [1.0]], "K >= 2"),
    ],
)
def test_multiclass_input_checks(labels, probs, match):
    if match is None:
        assert tuple(M.multiclass_metrics(labels, probs)) == RUN_KEYS
    else:
        with pytest.raises(ValueError, match=match):
            M.multiclass_metrics(labels, probs)


def test_confusion_matrix_checks():
    np.testing.assert_array_equal(
        M.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1], 3), [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    )
    with pytest.raises(ValueError, match="preds must lie in 0..2"):
        M.confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(ValueError, match="equal length"):
        M.confusion_matrix([0, 1], [0], 3)
    with pytest.raises(ValueError, match="integer"):
        M.confusion_matrix([0, 1.5], [0, 1], 3)


def test_docstring_examples_run():
    failures, _ = doctest.testmod(M)
    assert failures == 0


# ---------------------------------------------------------------- torch inputs


def test_torch_tensors_give_the_same_numbers_as_numpy():
    y, s = _binary_case(6)
    from_numpy = M.binary_metrics(y, s.astype(np.float32))
    scores = torch.tensor(s, dtype=torch.float32, requires_grad=True)
    assert M.binary_metrics(torch.tensor(y), scores) == from_numpy
    assert M.binary_metrics(torch.tensor(y, dtype=torch.bool), scores) == from_numpy
    ym, p = _multiclass_case(6)
    assert M.multiclass_metrics(torch.tensor(ym), torch.tensor(p)) == pytest.approx(
        M.multiclass_metrics(ym, p), nan_ok=True
    )
    bf16 = torch.tensor([0.25, 0.75], dtype=torch.bfloat16)
    assert M.auroc(torch.tensor([0, 1]), bf16) == 1.0
