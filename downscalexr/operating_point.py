"""Operating points of a binary classifier: the fixed threshold 0.5 and one chosen on validation.

A threshold is chosen from the **validation** labels and scores alone; :func:`choose_threshold` and
:func:`score_operating_points` take the test split only to score it, never to choose. Candidate
thresholds are the midpoints between consecutive distinct validation scores, plus 0 (everything
positive) and a value above the largest score (everything negative) when that is below 1, so a
threshold never sits on a validation score. A prediction is positive when ``score >= threshold``
(:mod:`downscalexr.metrics`).

Rules
-----
``youden``
    Maximise Youden's J = sensitivity + specificity - 1 on validation. It does not depend on the
    validation prevalence (a balanced-accuracy criterion), so it suits a test set whose prevalence
    differs from training. When no cut beats chance (J <= 0) the threshold stays at 0.5.
``prevalence``
    Call as many validation examples positive as there are validation positives (the predicted
    positive rate matches the validation prevalence, as closely as tied scores allow).

Ties between candidates go to the one closest to 0.5, then to the lower threshold.
"""

from __future__ import annotations

import numpy as np

from downscalexr.metrics import _binary, _require, binary_metrics
from downscalexr.schema import OPERATING_POINTS, THRESHOLD_METRICS

THRESHOLD_RULES = ("youden", "prevalence")
FIXED_THRESHOLD = 0.5


def _candidates(scores: np.ndarray) -> np.ndarray:
    """Ascending thresholds: 0, midpoints of consecutive distinct scores, and above the maximum."""
    u = np.unique(scores)
    cuts = [np.zeros(1), (u[:-1] + u[1:]) / 2]
    if u[-1] < 1.0:
        cuts.append(np.array([(u[-1] + 1.0) / 2]))
    return np.unique(np.concatenate(cuts))


def _pick(thresholds: np.ndarray, loss: np.ndarray) -> float:
    """The threshold of least ``loss``; ties to the one closest to 0.5, then to the lower one."""
    best = np.flatnonzero(np.isclose(loss, loss.min(), rtol=0.0, atol=1e-12))
    distance = np.abs(thresholds[best] - FIXED_THRESHOLD)
    return float(thresholds[best[np.argmin(distance)]])  # argmin keeps the first (lower) of equals


def choose_threshold(labels, scores, rule: str = "youden") -> float:
    """The decision threshold that ``rule`` chooses on N validation ``labels`` (0/1) and ``scores``.

    Parameters
    ----------
    labels : array of N 0/1
        Validation labels (1 = positive); both classes must occur.
    scores : array of N floats in [0, 1]
        Validation probabilities of the positive class.
    rule : {"youden", "prevalence"}
        See the module notes.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        Unknown rule, malformed inputs, or a validation split holding one class only.

    Examples
    --------
    >>> choose_threshold([0, 0, 1, 1], [0.1, 0.25, 0.75, 0.9])  # J = 1 between 0.25 and 0.75
    0.5
    >>> choose_threshold([0, 1, 1, 1], [0.125, 0.25, 0.5, 0.75], rule="prevalence")  # call 3 of 4
    0.1875
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"unknown threshold rule {rule!r}; choose from {', '.join(THRESHOLD_RULES)}")
    pos, s = _binary(labels, scores)
    _require(pos, f"choosing a threshold by {rule!r} on validation")
    thresholds = _candidates(s)
    # examples at or above each threshold, among positives and in all (s >= t is the positive call)
    order = np.sort(s)
    called = s.size - np.searchsorted(order, thresholds, side="left")
    true_pos = pos.sum() - np.searchsorted(np.sort(s[pos]), thresholds, side="left")
    if rule == "prevalence":
        return _pick(thresholds, np.abs(called - pos.sum()).astype(np.float64))
    n_pos, n_neg = pos.sum(), (~pos).sum()
    youden = true_pos / n_pos - (called - true_pos) / n_neg
    if youden.max() <= 0:
        return FIXED_THRESHOLD
    return _pick(thresholds, -youden)


def score_operating_points(
    val_labels, val_scores, test_labels, test_scores, rule: str = "youden", report: str = "fixed"
) -> dict[str, float | str]:
    """Test metrics at the fixed 0.5 and at the threshold ``rule`` chooses on validation.

    Returns one ``runs`` row's worth: every key of :func:`~downscalexr.metrics.binary_metrics` at the
    reported point (``report``: ``"fixed"`` or ``"chosen"``) with ``threshold``, plus
    ``operating_point``, ``threshold_rule``, ``threshold_chosen`` and ``<metric>_fixed`` /
    ``<metric>_chosen`` for every threshold metric (see :mod:`downscalexr.schema`). The test split is
    scored only; the threshold depends on ``val_labels`` and ``val_scores`` alone.

    A validation split holding one class cannot choose a threshold: with ``report="fixed"`` the chosen
    columns are then NaN (a study scored at 0.5 runs as before); with ``report="chosen"`` it raises.
    """
    if report not in OPERATING_POINTS:
        raise ValueError(f"unknown operating point {report!r}; choose from {', '.join(OPERATING_POINTS)}")
    fixed = binary_metrics(test_labels, test_scores, FIXED_THRESHOLD)
    one_class = np.unique(np.asarray(val_labels)).size < 2
    if one_class and report == "fixed":
        chosen, at_chosen = float("nan"), dict.fromkeys(THRESHOLD_METRICS, float("nan"))
    else:
        chosen = choose_threshold(val_labels, val_scores, rule)
        at_chosen = binary_metrics(test_labels, test_scores, chosen)
    row: dict[str, float | str] = dict(fixed if report == "fixed" else at_chosen)
    row |= {"operating_point": report, "threshold_rule": rule, "threshold_chosen": chosen}
    for point, metrics in (("fixed", fixed), ("chosen", at_chosen)):
        row |= {f"{m}_{point}": metrics[m] for m in THRESHOLD_METRICS}
    return row
