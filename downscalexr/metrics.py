"""Test-set metrics as pure functions of labels and scores: threshold, ranking, calibration and bias.

Inputs are numpy arrays or anything ``np.asarray`` accepts; torch tensors are converted (detached,
moved to CPU). Nothing here draws random numbers or touches files.

Conventions (one place, so every caller gets the same numbers)
--------------------------------------------------------------
* Binary ``labels`` are 0/1 (or bool); 1 is the positive (abnormal) class. ``scores`` are the
  probabilities of the positive class, in [0, 1]. Only the ranking metrics (:func:`auroc`,
  :func:`auprc` and their ``_batch`` forms) accept any finite real scores, e.g. logits.
* A prediction is positive when ``score >= threshold`` (default 0.5).
* Metrics conditioned on a label class (recall, specificity, balanced accuracy, FPR, FNR, F1, d',
  c, AUROC, AUPRC) raise ``ValueError`` when that class is absent from ``labels``. Precision when
  nothing is predicted positive is **0** (scikit-learn's ``zero_division=0``): a model that never
  calls positive is a legitimate outcome the runner must record, and it found no positives.
  Constant scores are defined: AUROC 0.5, AUPRC = prevalence. No function returns a silent NaN.
* d' and c use the **log-linear correction** (Hautus 1995) applied to every run, not only to
  empty cells: H = (tp + 0.5) / (n_pos + 1), F = (fp + 0.5) / (n_neg + 1); d' = z(H) - z(F),
  c = -(z(H) + z(F)) / 2. Negative c means a liberal observer that over-calls the positive class.
* ECE uses 15 equal-width bins on [0, 1]; an example goes to bin ``min(floor(15 p), 14)``. For
  binary tasks p is the positive-class probability and the bin's accuracy is its fraction of
  positives (calibration of P(y = 1)); for multi-class tasks p is the top-label confidence and the
  bin's accuracy is the fraction whose argmax is right. ECE = sum_b (n_b / N) |acc_b - conf_b|.
* Log loss clips probabilities to [1e-7, 1 - 1e-7], so a confident mistake costs at most
  -log(1e-7) ~ 16.1 instead of infinity.
* Brier score: binary mean((p - y)^2); multi-class mean over examples of sum over classes
  (p_k - [y = k])^2, which for two classes is twice the binary value.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from downscalexr.schema import METRIC_COLUMNS

ECE_BINS = 15
LOG_LOSS_EPS = 1e-7
PROB_SUM_ATOL = 1e-3  # multi-class rows must sum to 1 within this (float32 softmax is far inside it)


class ConfusionCounts(NamedTuple):
    """Binary confusion counts against the positive class."""

    tp: int
    fp: int
    tn: int
    fn: int


# ---------------------------------------------------------------- input checks


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch.Tensor, recognised without importing torch
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()  # numpy has no bfloat16
        x = x.numpy()
    return np.asarray(x)


def _binary_labels(labels, ndim: int = 1) -> np.ndarray:
    """Labels as a bool array (True = positive); ``ndim`` 1 means N, 2 allows R x N too."""
    y = _to_numpy(labels)
    if y.ndim not in (1, ndim):
        wanted = "1-D (N)" if ndim == 1 else "N or R x N"
        raise ValueError(f"labels must be {wanted}, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("labels is empty; metrics need at least one example")
    if y.dtype == bool:
        return y
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"labels must be numeric 0/1, got dtype {y.dtype}")
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise ValueError(f"binary labels must be 0 or 1; found {np.unique(y[bad])[:5].tolist()}")
    return y == 1


def _scores(scores, shape: tuple[int, ...], probabilities: bool, name: str = "scores") -> np.ndarray:
    s = _to_numpy(scores)
    if not (np.issubdtype(s.dtype, np.number) or s.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if s.shape != shape:
        raise ValueError(f"{name} has shape {s.shape} but labels need {shape}; lengths must match")
    finite = np.isfinite(s)
    if not finite.all():
        raise ValueError(f"{name} contain {np.count_nonzero(~finite)} NaN or infinite values")
    if probabilities and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError(
            f"{name} must be probabilities in [0, 1], found range [{s.min():.4g}, {s.max():.4g}]; "
            "pass sigmoid/softmax outputs, not logits"
        )
    return s


def _binary(labels, scores, probabilities: bool = True) -> tuple[np.ndarray, np.ndarray]:
    pos = _binary_labels(labels)
    return pos, _scores(scores, pos.shape, probabilities)


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return t


def _require(pos: np.ndarray, metric: str, need: str = "both") -> None:
    """Raise if ``labels`` lack the class(es) ``metric`` is conditioned on (need: positive/negative/both)."""
    n_pos = int(np.count_nonzero(pos))
    lacks_pos, lacks_neg = n_pos == 0, n_pos == pos.size
    if (need != "negative" and lacks_pos) or (need != "positive" and lacks_neg):
        only = "negative" if lacks_pos else "positive"
        wanted = "both positive and negative" if need == "both" else need
        raise ValueError(
            f"{metric} is undefined when labels hold one class only (all {pos.size} are {only}); "
            f"it needs {wanted} examples"
        )


def _counts(pos: np.ndarray, s: np.ndarray, threshold: float) -> ConfusionCounts:
    pred = s >= threshold
    tp = int(np.count_nonzero(pred & pos))
    fp = int(np.count_nonzero(pred & ~pos))
    fn = int(np.count_nonzero(pos)) - tp
    return ConfusionCounts(tp, fp, pos.size - tp - fp - fn, fn)


def _checked_counts(labels, scores, threshold, metric: str = "", need: str = "both") -> ConfusionCounts:
    pos, s = _binary(labels, scores)
    if metric:
        _require(pos, metric, need)
    return _counts(pos, s, _check_threshold(threshold))


# ---------------------------------------------------------------- threshold metrics


def confusion_counts(labels, scores, threshold: float = 0.5) -> ConfusionCounts:
    """``(tp, fp, tn, fn)`` of the predictions ``scores >= threshold`` against ``labels`` (both length N).

    Examples
    --------
    >>> confusion_counts([1, 1, 0, 0], [0.9, 0.2, 0.7, 0.1])
    ConfusionCounts(tp=1, fp=1, tn=1, fn=1)
    """
    return _checked_counts(labels, scores, threshold)


def accuracy(labels, scores, threshold: float = 0.5) -> float:
    """Fraction of the N examples whose prediction ``scores >= threshold`` equals the label."""
    c = _checked_counts(labels, scores, threshold)
    return (c.tp + c.tn) / sum(c)


def precision(labels, scores, threshold: float = 0.5) -> float:
    """tp / (tp + fp); 0 when nothing is predicted positive (see the module notes)."""
    c = _checked_counts(labels, scores, threshold)
    return c.tp / (c.tp + c.fp) if c.tp + c.fp else 0.0


def recall(labels, scores, threshold: float = 0.5) -> float:
    """Sensitivity, tp / (tp + fn). Raises ``ValueError`` without positive labels."""
    c = _checked_counts(labels, scores, threshold, "recall", need="positive")
    return c.tp / (c.tp + c.fn)


sensitivity = recall


def specificity(labels, scores, threshold: float = 0.5) -> float:
    """tn / (tn + fp). Raises ``ValueError`` without negative labels."""
    c = _checked_counts(labels, scores, threshold, "specificity", need="negative")
    return c.tn / (c.tn + c.fp)


def false_positive_rate(labels, scores, threshold: float = 0.5) -> float:
    """fp / (fp + tn). Raises ``ValueError`` without negative labels."""
    c = _checked_counts(labels, scores, threshold, "FPR", need="negative")
    return c.fp / (c.fp + c.tn)


def false_negative_rate(labels, scores, threshold: float = 0.5) -> float:
    """fn / (fn + tp). Raises ``ValueError`` without positive labels."""
    c = _checked_counts(labels, scores, threshold, "FNR", need="positive")
    return c.fn / (c.fn + c.tp)


def balanced_accuracy(labels, scores, threshold: float = 0.5) -> float:
    """(recall + specificity) / 2. Raises ``ValueError`` unless both classes are present."""
    c = _checked_counts(labels, scores, threshold, "balanced accuracy")
    return (c.tp / (c.tp + c.fn) + c.tn / (c.tn + c.fp)) / 2


def f1(labels, scores, threshold: float = 0.5) -> float:
    """2 tp / (2 tp + fp + fn), the harmonic mean of precision and recall (0 when tp = 0).

    Raises ``ValueError`` without positive labels.
    """
    c = _checked_counts(labels, scores, threshold, "F1", need="positive")
    return 2 * c.tp / (2 * c.tp + c.fp + c.fn)


def predicted_positive_rate(labels, scores, threshold: float = 0.5) -> float:
    """(tp + fp) / N, the fraction called positive; compare with :func:`prevalence` for over-calling."""
    c = _checked_counts(labels, scores, threshold)
    return (c.tp + c.fp) / sum(c)


def prevalence(labels) -> float:
    """Fraction of the N labels that are positive."""
    return float(np.mean(_binary_labels(labels)))


def _rates_to_sdt(tp, fn, fp, tn) -> tuple[np.ndarray, np.ndarray]:
    z_h = ndtri((np.asarray(tp) + 0.5) / (np.asarray(tp) + np.asarray(fn) + 1.0))
    z_f = ndtri((np.asarray(fp) + 0.5) / (np.asarray(fp) + np.asarray(tn) + 1.0))
    return z_h - z_f, -(z_h + z_f) / 2


def signal_detection(labels, scores, threshold: float = 0.5) -> tuple[float, float]:
    """``(d', c)`` of the yes/no decisions ``scores >= threshold``, log-linear corrected.

    H = (tp + 0.5) / (n_pos + 1) and F = (fp + 0.5) / (n_neg + 1) (Hautus 1995, applied to every
    run so the estimate is continuous in the counts); d' = z(H) - z(F), c = -(z(H) + z(F)) / 2.
    Raises ``ValueError`` unless both classes are present.

    Examples
    --------
    >>> d, c = signal_detection([1, 0], [0.9, 0.1])  # H = 0.75, F = 0.25
    >>> round(d, 4), round(c, 4)
    (1.349, 0.0)
    """
    c = _checked_counts(labels, scores, threshold, "d' / criterion c")
    d, crit = _rates_to_sdt(c.tp, c.fn, c.fp, c.tn)
    return float(d), float(crit) + 0.0  # + 0.0 turns -0.0 into 0.0


def dprime(labels, scores, threshold: float = 0.5) -> float:
    """Sensitivity index d' (see :func:`signal_detection`)."""
    return signal_detection(labels, scores, threshold)[0]


def criterion_c(labels, scores, threshold: float = 0.5) -> float:
    """Decision criterion c (see :func:`signal_detection`); c < 0 means over-calling the positive class."""
    return signal_detection(labels, scores, threshold)[1]


# ---------------------------------------------------------------- ranking metrics


def _sorted_groups(pos: np.ndarray, s: np.ndarray, descending: bool):
    """Sort each row of R x N scores; return sorted labels, tie-group first/last index per position."""
    order = np.argsort(-s if descending else s, axis=1, kind="stable")
    sv = np.take_along_axis(s, order, axis=1)
    ps = np.take_along_axis(np.broadcast_to(pos, s.shape), order, axis=1)
    n = s.shape[1]
    idx = np.broadcast_to(np.arange(n), s.shape)
    start = np.ones(s.shape, dtype=bool)
    start[:, 1:] = sv[:, 1:] != sv[:, :-1]
    end = np.ones(s.shape, dtype=bool)
    end[:, :-1] = start[:, 1:]
    first = np.maximum.accumulate(np.where(start, idx, 0), axis=1)
    last = np.minimum.accumulate(np.where(end, idx, n)[:, ::-1], axis=1)[:, ::-1]
    return ps, first, last


def _batch_inputs(labels, scores_matrix, probabilities: bool = False) -> tuple[np.ndarray, np.ndarray]:
    pos = _binary_labels(labels, ndim=2)
    s = _to_numpy(scores_matrix)
    if s.ndim != 2:
        raise ValueError(f"scores_matrix must be R x N (rows = resamples), got shape {s.shape}")
    if pos.ndim == 1 and pos.shape[0] != s.shape[1]:
        raise ValueError(f"labels have length {pos.shape[0]} but scores_matrix rows have {s.shape[1]}")
    s = _scores(s, s.shape if pos.ndim == 1 else pos.shape, probabilities, name="scores_matrix")
    n_pos = np.count_nonzero(np.broadcast_to(pos, s.shape), axis=1)
    bad = np.flatnonzero((n_pos == 0) | (n_pos == s.shape[1]))
    if bad.size:
        raise ValueError(
            f"{bad.size} of {s.shape[0]} rows hold one class only (first: row {bad[0]}); AUROC/AUPRC need "
            "both classes in every row (resample within each class to guarantee it)"
        )
    return pos, s


def auroc_batch(labels, scores_matrix) -> np.ndarray:
    """AUROC of each row of ``scores_matrix`` (R x N, rows = e.g. bootstrap resamples or models).

    ``labels`` is either N (shared by every row) or R x N (one label row per score row). Ties count
    one half (average ranks, the Mann-Whitney U statistic / (n_pos n_neg)). Returns R floats.
    Raises ``ValueError`` if any row holds one class only.
    """
    pos, s = _batch_inputs(labels, scores_matrix)
    ps, first, last = _sorted_groups(pos, s, descending=False)
    ranks = (first + last) / 2.0 + 1.0  # average 1-based rank of each tie group
    n_pos = np.count_nonzero(ps, axis=1).astype(np.float64)
    n_neg = s.shape[1] - n_pos
    rank_sum = np.where(ps, ranks, 0.0).sum(axis=1)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auprc_batch(labels, scores_matrix) -> np.ndarray:
    """Average precision of each row of ``scores_matrix`` (R x N); ``labels`` N or R x N.

    AP = sum_k (R_k - R_{k-1}) P_k over the distinct score thresholds in decreasing order, as
    scikit-learn's ``average_precision_score`` defines it (no interpolation; tied scores share one
    threshold). Returns R floats. Raises ``ValueError`` if any row holds one class only.
    """
    pos, s = _batch_inputs(labels, scores_matrix)
    ps, _, last = _sorted_groups(pos, s, descending=True)
    tp = np.cumsum(ps, axis=1)
    precision_at = tp / np.arange(1, s.shape[1] + 1)
    # every positive contributes 1/n_pos recall at the precision of its tie group's last position
    prec_of_group = np.take_along_axis(precision_at, last, axis=1)
    return np.where(ps, prec_of_group, 0.0).sum(axis=1) / tp[:, -1]


def auroc(labels, scores) -> float:
    """Area under the ROC curve for N labels and N real scores (ties count one half).

    Constant scores give 0.5. Raises ``ValueError`` unless both classes are present.

    Examples
    --------
    >>> auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    pos, s = _binary(labels, scores, probabilities=False)
    _require(pos, "AUROC")
    return float(auroc_batch(pos, s[None, :])[0])


def auprc(labels, scores) -> float:
    """Average precision (area under the precision-recall curve, sklearn's definition) for N examples.

    Constant scores give the prevalence. Raises ``ValueError`` unless both classes are present.

    Examples
    --------
    >>> auprc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])  # (1/2)(1) + (1/2)(2/3)
    0.8333333333333333
    """
    pos, s = _binary(labels, scores, probabilities=False)
    _require(pos, "AUPRC")
    return float(auprc_batch(pos, s[None, :])[0])


# ---------------------------------------------------------------- calibration and proper scores


def _ece(hit: np.ndarray, conf: np.ndarray, n_bins: int) -> float:
    b = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    gap = np.bincount(b, weights=hit.astype(np.float64), minlength=n_bins) - np.bincount(
        b, weights=conf, minlength=n_bins
    )
    return float(np.abs(gap).sum() / conf.size)


def _multiclass(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    p = _to_numpy(probs)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must be N x K with K >= 2 classes, got shape {p.shape}")
    y = _to_numpy(labels)
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise ValueError(f"labels must be a 1-D array of length {p.shape[0]} (rows of probs), got {y.shape}")
    if y.size == 0:
        raise ValueError("labels is empty; metrics need at least one example")
    if not np.issubdtype(y.dtype, np.number) or (y != np.round(y)).any():
        raise ValueError("multi-class labels must be integers 0..K-1")
    y = y.astype(np.int64)
    k = p.shape[1]
    if y.min() < 0 or y.max() >= k:
        raise ValueError(
            f"labels must lie in 0..{k - 1} (K = {k} columns of probs); found {y.min()}..{y.max()}"
        )
    p = _scores(p, p.shape, probabilities=True, name="probs")
    worst = float(np.abs(p.sum(axis=1) - 1.0).max())
    if worst > PROB_SUM_ATOL:
        raise ValueError(f"rows of probs must sum to 1 (softmax outputs); worst row is off by {worst:.3g}")
    return y, p


def expected_calibration_error(labels, probs, n_bins: int = ECE_BINS) -> float:
    """ECE with ``n_bins`` equal-width bins.

    ``probs`` of length N (binary: positive-class probability against 0/1 labels) or N x K
    (multi-class: top-label confidence against argmax correctness). See the module notes.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    if _to_numpy(probs).ndim == 2:
        y, p = _multiclass(labels, probs)
        return _ece(p.argmax(axis=1) == y, p.max(axis=1), n_bins)
    pos, s = _binary(labels, probs)
    return _ece(pos, s, n_bins)


def brier_score(labels, probs) -> float:
    """Binary (length N): mean (p - y)^2. Multi-class (N x K): mean over examples of sum_k (p_k - [y=k])^2."""
    if _to_numpy(probs).ndim == 2:
        y, p = _multiclass(labels, probs)
        return _brier_multiclass(y, p)
    pos, s = _binary(labels, probs)
    return float(np.mean((s - pos) ** 2))


def log_loss(labels, probs) -> float:
    """Mean negative log-likelihood with probabilities clipped to [1e-7, 1 - 1e-7].

    ``probs`` of length N (binary, positive-class probability) or N x K (multi-class).
    """
    if _to_numpy(probs).ndim == 2:
        y, p = _multiclass(labels, probs)
        return _log_loss_multiclass(y, p)
    pos, s = _binary(labels, probs)
    q = np.clip(np.where(pos, s, 1.0 - s), LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return float(-np.mean(np.log(q)))


def _brier_multiclass(y: np.ndarray, p: np.ndarray) -> float:
    sq = (p**2).sum(axis=1) - 2 * p[np.arange(y.size), y] + 1.0  # sum_k (p_k - onehot_k)^2
    return float(sq.mean())


def _log_loss_multiclass(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(p[np.arange(y.size), y], LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return float(-np.mean(np.log(q)))


# ---------------------------------------------------------------- one row of the runs table


def binary_metrics(labels, scores, threshold: float = 0.5) -> dict[str, float]:
    """Every test metric of a binary task, keyed exactly as ``schema.METRIC_COLUMNS`` plus ``"threshold"``.

    ``labels`` and ``scores`` have length N; ``scores`` are positive-class probabilities. All values
    are Python floats (counts too), ready to become one ``runs`` row. Raises ``ValueError`` if
    labels hold one class only (a test set always holds both) or inputs are malformed.

    Examples
    --------
    >>> m = binary_metrics([1, 1, 0, 0], [0.9, 0.6, 0.4, 0.1])
    >>> m["accuracy"], m["auroc"], m["tp"]
    (1.0, 1.0, 2.0)
    """
    pos, s = _binary(labels, scores)
    _require(pos, "binary_metrics")
    t = _check_threshold(threshold)
    tp, fp, tn, fn = _counts(pos, s, t)
    n = pos.size
    rec, spec = tp / (tp + fn), tn / (tn + fp)
    d, crit = _rates_to_sdt(tp, fn, fp, tn)
    q = np.clip(np.where(pos, s, 1.0 - s), LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    row = s[None, :]
    values = {
        "accuracy": (tp + tn) / n,
        "balanced_accuracy": (rec + spec) / 2,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": rec,
        "specificity": spec,
        "f1": 2 * tp / (2 * tp + fp + fn),
        "auroc": auroc_batch(pos, row)[0],
        "auprc": auprc_batch(pos, row)[0],
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "fpr": fp / (fp + tn),
        "fnr": fn / (fn + tp),
        "predicted_positive_rate": (tp + fp) / n,
        "prevalence": (tp + fn) / n,
        "criterion_c": crit + 0.0,
        "dprime": d,
        "ece": _ece(pos, s, ECE_BINS),
        "brier": np.mean((s - pos) ** 2),
        "log_loss": -np.mean(np.log(q)),
    }
    out = {key: float(values[key]) for key in METRIC_COLUMNS}
    out["threshold"] = t
    return out


def confusion_matrix(labels, preds, num_classes: int) -> np.ndarray:
    """K x K int64 counts; row = true class, column = predicted class (scikit-learn's layout)."""
    y, yhat = _to_numpy(labels), _to_numpy(preds)
    if y.ndim != 1 or y.shape != yhat.shape:
        raise ValueError(f"labels and preds must be 1-D of equal length, got {y.shape} and {yhat.shape}")
    if y.size == 0:
        raise ValueError("labels is empty; metrics need at least one example")
    for name, a in (("labels", y), ("preds", yhat)):
        if not np.issubdtype(a.dtype, np.number) or (a != np.round(a)).any():
            raise ValueError(f"{name} must be integer class indices")
        if a.min() < 0 or a.max() >= num_classes:
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}; found {a.min()}..{a.max()}")
    flat = y.astype(np.int64) * num_classes + yhat.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def multiclass_metrics(labels, probs) -> dict[str, float]:
    """Every ``METRIC_COLUMNS`` key for a K-class task (plus ``"threshold"``), from N labels and N x K probs.

    Predictions are the argmax (ties go to the lowest class index). Keys mean:

    * ``accuracy``: fraction correct; ``balanced_accuracy``: mean per-class recall.
    * ``precision``, ``recall``, ``specificity``, ``f1``, ``fpr``, ``fnr``, ``tp``, ``fp``, ``tn``, ``fn``,
      ``dprime``, ``criterion_c``: one-vs-rest per class (class k positive, the rest negative), then the
      unweighted mean over classes (macro). Per-class precision is 0 when class k is never predicted;
      ``f1`` is the mean of per-class F1 (scikit-learn's macro F1), not F1 of the macro means.
    * ``predicted_positive_rate`` and ``prevalence``: macro means of per-class rates, hence exactly
      1/K by construction; kept only so the ``runs`` row is complete.
    * ``auroc``, ``auprc``: macro one-vs-rest over the K probability columns.
    * ``ece``: top-label confidence; ``brier``, ``log_loss``: multi-class forms (module notes).
    * ``threshold``: NaN, because argmax decisions use no threshold (the one documented NaN).

    Raises ``ValueError`` if a class never occurs in ``labels`` (its recall would be undefined).
    """
    y, p = _multiclass(labels, probs)
    n, k = p.shape
    missing = np.setdiff1d(np.arange(k), y)
    if missing.size:
        raise ValueError(f"classes {missing.tolist()} never occur in labels; every one of the {k} is needed")
    cm = confusion_matrix(y, p.argmax(axis=1), k)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = n - tp - fp - fn
    rec, spec = tp / (tp + fn), tn / (tn + fp)
    prec = np.divide(tp, tp + fp, out=np.zeros(k), where=(tp + fp) > 0)
    d, crit = _rates_to_sdt(tp, fn, fp, tn)
    onehot = y[None, :] == np.arange(k)[:, None]  # K x N
    values = {
        "accuracy": tp.sum() / n,
        "balanced_accuracy": rec.mean(),
        "precision": prec.mean(),
        "recall": rec.mean(),
        "specificity": spec.mean(),
        "f1": (2 * tp / (2 * tp + fp + fn)).mean(),
        "auroc": auroc_batch(onehot, p.T).mean(),
        "auprc": auprc_batch(onehot, p.T).mean(),
        "tp": tp.mean(),
        "fp": fp.mean(),
        "tn": tn.mean(),
        "fn": fn.mean(),
        "fpr": (fp / (fp + tn)).mean(),
        "fnr": (fn / (fn + tp)).mean(),
        "predicted_positive_rate": ((tp + fp) / n).mean(),
        "prevalence": ((tp + fn) / n).mean(),
        "criterion_c": crit.mean() + 0.0,
        "dprime": d.mean(),
        "ece": _ece(p.argmax(axis=1) == y, p.max(axis=1), ECE_BINS),
        "brier": _brier_multiclass(y, p),
        "log_loss": _log_loss_multiclass(y, p),
    }
    out = {key: float(values[key]) for key in METRIC_COLUMNS}
    out["threshold"] = float("nan")
    return out
