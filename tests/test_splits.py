"""Nested, stratified data fractions and the stratified validation split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from downscalexr.data.splits import nested_fractions, stratified_split

FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)

# Label vectors with 1..4 classes, each class present 1..60 times, in a shuffled order.
label_vectors = st.lists(st.integers(1, 60), min_size=1, max_size=4).flatmap(
    lambda counts: st.permutations(np.repeat(np.arange(len(counts)), counts).tolist())
)
fraction_lists = st.lists(st.floats(0.01, 1.0), min_size=1, max_size=5)


def test_nested_fractions_hand_checked():
    labels = np.array([0] * 20 + [1] * 10)
    subsets = nested_fractions(labels, [0.1, 0.5, 1.0], seed=3)
    assert list(subsets) == [0.1, 0.5, 1.0]
    assert [np.bincount(labels[subsets[f]]).tolist() for f in (0.1, 0.5, 1.0)] == [[2, 1], [10, 5], [20, 10]]
    assert np.array_equal(subsets[1.0], np.arange(30))
    for idx in subsets.values():
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # sorted, no repeats


def test_nested_fractions_round_half_up_and_at_least_one():
    labels = np.array([0] * 2 + [1] * 100)
    subsets = nested_fractions(labels, [0.25, 0.01], seed=0)
    assert np.bincount(labels[subsets[0.25]]).tolist() == [1, 25]  # 0.5 rounds up to 1
    assert np.bincount(labels[subsets[0.01]]).tolist() == [1, 1]  # never drops a class


@settings(max_examples=60, deadline=None)
@given(labels=label_vectors, fractions=fraction_lists, seed=st.integers(0, 2**32))
def test_nested_fractions_properties(labels, fractions, seed):
    y = np.asarray(labels)
    subsets = nested_fractions(y, fractions, seed)
    assert subsets.keys() == set(fractions)
    ordered = sorted(subsets)
    for small, large in zip(ordered, ordered[1:], strict=False):
        assert set(subsets[small]) <= set(subsets[large])  # nested
    counts = np.bincount(y)
    for f, idx in subsets.items():
        got = np.bincount(y[idx], minlength=len(counts))
        expected = np.maximum(1, np.floor(f * counts + 0.5))
        assert np.array_equal(got, expected)  # stratified, every class present
    again = nested_fractions(torch.as_tensor(y), fractions, seed)  # torch labels, same answer
    assert all(np.array_equal(subsets[f], again[f]) for f in fractions)


def test_nested_fractions_seeds_differ_and_classes_are_independent():
    labels = np.repeat([0, 1], 500)
    a, b = (nested_fractions(labels, [0.1], seed=s)[0.1] for s in (0, 1))
    assert not np.array_equal(a, b)
    # Adding examples of class 1 leaves the class-0 choice untouched (one stream per class).
    more = np.concatenate([labels, np.ones(100, dtype=int)])
    c = nested_fractions(more, [0.1], seed=0)[0.1]
    assert np.array_equal(a[labels[a] == 0], c[more[c] == 0])


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.5"])
def test_nested_fractions_rejects_bad_fraction(bad):
    with pytest.raises(ValueError, match="data fraction"):
        nested_fractions([0, 1, 0, 1], [0.5, bad], seed=0)


def test_nested_fractions_rejects_bad_labels_and_missing_classes():
    with pytest.raises(ValueError, match="empty"):
        nested_fractions([], [0.5], seed=0)
    with pytest.raises(ValueError, match="fractions is empty"):
        nested_fractions([0, 1], [], seed=0)
    with pytest.raises(ValueError, match="one-dimensional"):
        nested_fractions(np.zeros((2, 2), dtype=int), [0.5], seed=0)
    with pytest.raises(ValueError, match="integers"):
        nested_fractions([0.0, 1.0], [0.5], seed=0)
    with pytest.raises(ValueError, match=r"classes \[1\] have no examples"):
        nested_fractions([0, 0, 2], [0.5], seed=0, num_classes=3)


def test_stratified_split_hand_checked():
    labels = np.array([0] * 60 + [1] * 40)
    train, val = stratified_split(labels, 0.2, seed=0)
    assert np.bincount(labels[val]).tolist() == [12, 8]
    assert np.bincount(labels[train]).tolist() == [48, 32]
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(100))
    train2, val2 = stratified_split(labels, 20, seed=0)  # an int count gives the same split
    assert np.array_equal(val, val2) and np.array_equal(train, train2)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(2, 50), min_size=1, max_size=4),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
)
def test_stratified_split_properties(counts, share, seed):
    y = np.random.default_rng(0).permutation(np.repeat(np.arange(len(counts)), counts))
    k, n = len(counts), len(y)
    size = k + round(share * (n - 2 * k))  # any feasible size
    train, val = stratified_split(y, size, seed)
    assert len(val) == size and len(train) == n - size
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(n))
    assert np.all(np.bincount(y[val], minlength=k) >= 1)
    assert np.all(np.bincount(y[train], minlength=k) >= 1)
    # proportional up to the rounding and the one-per-side floor
    assert np.all(np.abs(np.bincount(y[val], minlength=k) - size * np.asarray(counts) / n) < k + 1)
    again = stratified_split(y, size, seed)
    assert np.array_equal(again[1], val)


def test_stratified_split_rejects_bad_sizes():
    labels = [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="between 2 and 4"):
        stratified_split(labels, 1, seed=0)
    with pytest.raises(ValueError, match="between 2 and 4"):
        stratified_split(labels, 5, seed=0)
    with pytest.raises(ValueError, match=r"validation fraction 1\.0 is not in \(0, 1\)"):
        stratified_split(labels, 1.0, seed=0)
    with pytest.raises(ValueError, match="int count or a float fraction"):
        stratified_split(labels, "3", seed=0)
    with pytest.raises(ValueError, match=r"classes \[2\] have fewer than 2"):
        stratified_split([0, 0, 1, 1, 2], 2, seed=0)
