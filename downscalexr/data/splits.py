"""Stratified index subsets: nested training-data fractions and a stratified validation split.

Both functions return sorted index arrays into ``labels``; the order examples are visited in during
training is the trainer's business (its own seeded stream). Each class draws from its own seeded
stream, so one class's ordering does not depend on how many examples another class has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real

import numpy as np

from downscalexr.seeding import numpy_rng

__all__ = ["nested_fractions", "stratified_split"]


def _as_labels(labels) -> np.ndarray:
    """``labels`` (numpy array, torch tensor or sequence of ints) as a 1-D int64 numpy array."""
    if hasattr(labels, "detach"):  # torch tensor
        labels = labels.detach().cpu().numpy()
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("labels is empty")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64, copy=False)


def _round_half_up(x: float) -> int:
    # Python's round() rounds half to even (round(2.5) == 2); half-up is monotone and unsurprising.
    return int(math.floor(x + 0.5))


def _class_orders(y: np.ndarray, seed: int, stream: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """The classes present in ``y`` and, per class, its example indices in a seeded random order."""
    classes = np.unique(y)
    orders = [numpy_rng(seed, stream, int(c)).permutation(np.flatnonzero(y == c)) for c in classes]
    return classes, orders


def _check_num_classes(classes: np.ndarray, num_classes: int | None) -> None:
    if num_classes is None:
        return
    missing = sorted(set(range(num_classes)) - {int(c) for c in classes})
    if missing:
        raise ValueError(
            f"classes {missing} have no examples, so a stratified subset cannot contain every class"
        )


def nested_fractions(
    labels, fractions: Iterable[float], seed: int, *, num_classes: int | None = None
) -> dict[float, np.ndarray]:
    """Stratified, nested subsets of a training set, one per data fraction.

    For each class, one seeded permutation of its examples is drawn; the subset for fraction ``f``
    takes the first ``max(1, round(f * n_class))`` examples of every class's permutation (rounding
    half up). Hence, for one seed, a smaller fraction's subset is contained in every larger one's,
    each subset keeps the class proportions up to rounding, and every class present in ``labels``
    has at least one example in every subset.

    Parameters
    ----------
    labels : array of int, length N
        Class label of each training example (numpy array, torch tensor or sequence).
    fractions : iterable of float
        Data fractions, each in (0, 1]; 1 gives the whole set.
    seed : int
        Non-negative seed; the same seed gives the same subsets.
    num_classes : int, optional
        When given, every class ``0 .. num_classes - 1`` must occur in ``labels``.

    Returns
    -------
    dict
        ``{fraction: sorted int64 index array into labels}``, in the order the fractions were given.

    Raises
    ------
    ValueError
        A fraction outside (0, 1], no fractions, malformed labels, or (with ``num_classes``) a class
        without examples.

    Examples
    --------
    >>> subsets = nested_fractions([0, 0, 0, 0, 1, 1, 1, 1], [0.25, 0.5, 1.0], seed=0)
    >>> [len(subsets[f]) for f in (0.25, 0.5, 1.0)]
    [2, 4, 8]
    >>> set(subsets[0.25]) <= set(subsets[0.5]) <= set(subsets[1.0])
    True
    """
    y = _as_labels(labels)
    checked = []
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, Real) or not 0.0 < float(f) <= 1.0:
            raise ValueError(f"data fraction {f!r} is not in (0, 1]")
        checked.append(f)
    if not checked:
        raise ValueError("fractions is empty; give at least one data fraction in (0, 1]")
    classes, orders = _class_orders(y, seed, "nested_fractions")
    _check_num_classes(classes, num_classes)
    subsets = {}
    for f in checked:
        parts = [order[: max(1, _round_half_up(float(f) * len(order)))] for order in orders]
        subsets[f] = np.sort(np.concatenate(parts))
    return subsets


def _apportion(counts: np.ndarray, total: int) -> np.ndarray:
    """Per-class quotas summing to ``total``, proportional to ``counts`` (largest remainder),
    with ``1 <= quota <= count - 1`` so each class keeps examples on both sides of the split."""
    exact = total * counts / counts.sum()
    quota = np.clip(np.floor(exact).astype(np.int64), 1, counts - 1)
    while quota.sum() < total:  # at most num_classes steps
        room = quota < counts - 1
        quota[np.argmax(np.where(room, exact - quota, -np.inf))] += 1
    while quota.sum() > total:
        room = quota > 1
        quota[np.argmax(np.where(room, quota - exact, -np.inf))] -= 1
    return quota


def stratified_split(labels, size: int | float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Carve a stratified validation set out of a training set.

    Parameters
    ----------
    labels : array of int, length N
        Class label of each example.
    size : int or float
        Validation-set size: a number of examples (int), or a fraction of N in (0, 1) (float, rounded
        half up). Classes get proportional quotas (largest-remainder rounding), each at least one, and
        each class keeps at least one example in the training part.
    seed : int
        Non-negative seed; the same seed gives the same split.

    Returns
    -------
    (train_idx, val_idx) : two sorted int64 index arrays into ``labels``, disjoint, covering all N.

    Raises
    ------
    ValueError
        If the size is not a valid count or fraction, a class has fewer than two examples, or the
        size leaves no room for one example of every class on both sides.

    Examples
    --------
    >>> train, val = stratified_split([0] * 6 + [1] * 4, size=5, seed=0)
    >>> len(train), len(val)
    (5, 5)
    """
    y = _as_labels(labels)
    n = len(y)
    if isinstance(size, bool) or not isinstance(size, Real):
        raise ValueError(f"validation size must be an int count or a float fraction, got {size!r}")
    if isinstance(size, (int, np.integer)):
        total = int(size)
    else:
        if not 0.0 < float(size) < 1.0:
            raise ValueError(f"validation fraction {size!r} is not in (0, 1)")
        total = _round_half_up(float(size) * n)
    classes, orders = _class_orders(y, seed, "stratified_split")
    counts = np.array([len(order) for order in orders])
    small = [int(c) for c, k in zip(classes, counts, strict=True) if k < 2]
    if small:
        raise ValueError(f"classes {small} have fewer than 2 examples; cannot put one on each side")
    k = len(classes)
    if not k <= total <= n - k:
        raise ValueError(
            f"validation size {total} must be between {k} and {n - k} "
            f"(one example of each of {k} classes on both sides of a {n}-example split)"
        )
    quota = _apportion(counts, total)
    val = np.sort(np.concatenate([order[:q] for order, q in zip(orders, quota, strict=True)]))
    train = np.sort(np.concatenate([order[q:] for order, q in zip(orders, quota, strict=True)]))
    return train, val
