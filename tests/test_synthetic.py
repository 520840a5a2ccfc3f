"""Synthetic edge data: shapes, determinism, geometry, location shift, permutation, detection mode."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from downscalexr.data.base import ImageSplits
from downscalexr.data.synthetic import (
    DETECTION_CLASSES,
    EDGE_CLASSES,
    EDGE_CLASSES_3,
    EDGE_CLASSES_5,
    apply_permutation,
    correlated_noise,
    location_shift_regions,
    make_detection_splits,
    make_edges,
    make_edges_splits,
    pixel_permutation,
)

SMALL_DETECTION = {"n_train": 200, "n_val": 50, "n_test": 80}


def digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def edge_masks(x: torch.Tensor) -> np.ndarray:
    """Edge pixels of noise-free ``make_edges`` images (edges >= 0.6 > background <= 0.3)."""
    return x[:, 0].numpy() > 0.45


def splits_digest(s: ImageSplits) -> str:
    return digest(s.x_train, s.y_train, s.x_val, s.y_val, s.x_test, s.y_test)


# --- make_edges ---------------------------------------------------------------------------------------


def test_make_edges_shapes_dtypes_and_balance():
    x, y = make_edges(103, image_size=24, seed=0)
    assert x.shape == (103, 1, 24, 24) and x.dtype == torch.float32
    assert y.shape == (103,) and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.bincount().tolist() == [21, 21, 21, 20, 20]  # exact balance, remainder to the first classes
    assert not torch.equal(y, torch.sort(y).values)  # shuffled


def test_make_edges_same_seed_same_bytes_and_seeds_differ():
    a = make_edges(50, noise=0.05, seed=7)
    b = make_edges(50, noise=0.05, seed=7)
    c = make_edges(50, noise=0.05, seed=8)
    assert digest(*a) == digest(*b)
    assert digest(*a) != digest(*c)


def test_make_edges_class_geometry():
    x, y = make_edges(200, image_size=20, seed=1)
    masks = edge_masks(x)
    for mask, label in zip(masks, y.tolist(), strict=True):
        full_rows, full_cols = mask.all(axis=1), mask.all(axis=0)
        name = EDGE_CLASSES[label]
        if name == "none":
            assert not mask.any()
        elif name == "horizontal":
            assert full_rows.any() and np.array_equal(mask, np.broadcast_to(full_rows[:, None], mask.shape))
        elif name == "vertical":
            assert full_cols.any() and np.array_equal(mask, np.broadcast_to(full_cols[None, :], mask.shape))
        elif name == "both":
            assert full_rows.any() and full_cols.any()
            assert np.array_equal(mask, full_rows[:, None] | full_cols[None, :])
        else:  # diagonal: a line that is neither a full row nor a full column
            assert mask.sum() >= 5 and not full_rows.any() and not full_cols.any()


def test_make_edges_width_and_count():
    x, _ = make_edges(40, classes=("horizontal",), image_size=32, edge_width=(3, 3), edges_per_image=(1, 1))
    rows = edge_masks(x).all(axis=2).sum(axis=1)
    assert np.all(rows == 3)


@pytest.mark.parametrize("r", [0.5, 0.3])
def test_make_edges_location_shift_axis_aligned(r):
    size = 32
    first, rest = location_shift_regions(r)
    for region, allowed in ((first, lambda i: i + 1 <= r * size), (rest, lambda i: i >= r * size)):
        x, y = make_edges(300, classes=("horizontal", "vertical", "both"), image_size=size, region=region)
        for mask in edge_masks(x):
            rows, cols = np.flatnonzero(mask.all(axis=1)), np.flatnonzero(mask.all(axis=0))
            assert len(rows) + len(cols) > 0
            assert all(allowed(i) for i in rows) and all(allowed(j) for j in cols)
            assert np.array_equal(mask, mask.all(axis=1)[:, None] | mask.all(axis=0)[None, :])


@pytest.mark.parametrize("angle", [30, 45, 120, 135])
def test_make_edges_location_shift_diagonal(angle):
    size, r = 32, 0.4
    centre = np.arange(size) + 0.5 - size / 2
    a = math.radians(angle)
    along_normal = centre[None, :] * math.sin(a) + centre[:, None] * math.cos(a)  # (row, col)
    for (start, end), seed in zip(location_shift_regions(r), (0, 1), strict=True):
        x, _ = make_edges(
            100,
            classes=("diagonal",),
            image_size=size,
            diagonal_angles=(angle,),
            region=(start, end),
            seed=seed,
        )
        masks = edge_masks(x)
        assert masks.any(axis=(1, 2)).all()
        s = np.broadcast_to(along_normal, masks.shape)[masks]
        assert s.min() >= start * size - size / 2 and s.max() <= end * size - size / 2


def test_make_edges_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown: circle"):
        make_edges(10, classes=("horizontal", "circle"))
    with pytest.raises(ValueError, match="distinct"):
        make_edges(10, classes=("none", "none"))
    with pytest.raises(ValueError, match="region start must be below"):
        make_edges(10, region=(0.6, 0.4))
    with pytest.raises(ValueError, match="too narrow"):
        make_edges(10, image_size=16, region=(0.0, 0.1))
    with pytest.raises(ValueError, match="region must be"):
        make_edges(10, region=0.5)
    with pytest.raises(ValueError, match="edge_intensity"):
        make_edges(10, edge_intensity=(0.9, 0.1))
    with pytest.raises(ValueError, match="edges_per_image"):
        make_edges(10, edges_per_image=(0, 2))
    with pytest.raises(ValueError, match="diagonal_angles"):
        make_edges(10, diagonal_angles=(45, 90))
    with pytest.raises(ValueError, match="n must be"):
        make_edges(-1)
    with pytest.raises(ValueError, match="location_shift"):
        location_shift_regions(1.0)


# --- make_edges_splits --------------------------------------------------------------------------------


def test_make_edges_splits_basic_and_fixed_test_set():
    s = make_edges_splits(n_train=90, n_val=30, n_test=40, seed=0)
    assert isinstance(s, ImageSplits) and s.class_names == EDGE_CLASSES_3 and s.num_classes == 3
    assert s.input_shape == (1, 32, 32) and len(s.y_test) == 40
    json.dumps(s.info)
    other = make_edges_splits(n_train=60, n_val=30, n_test=40, seed=1)
    assert torch.equal(s.x_test, other.x_test) and torch.equal(s.y_test, other.y_test)
    assert not torch.equal(s.x_val, other.x_val)
    assert not torch.equal(make_edges_splits(n_test=40, test_seed=1).x_test, s.x_test)
    assert splits_digest(s) == splits_digest(make_edges_splits(n_train=90, n_val=30, n_test=40, seed=0))


def test_make_edges_splits_location_shift_train_vs_val_and_test():
    s = make_edges_splits(
        classes=("horizontal", "vertical"), n_train=60, n_val=60, n_test=60, location_shift=0.5
    )
    assert s.info["train_region"] == [0.0, 0.5] and s.info["eval_region"] == [0.5, 1.0]
    for x, in_first_half in ((s.x_train, True), (s.x_val, False), (s.x_test, False)):
        masks = edge_masks(x)
        lines = masks.all(axis=1) | masks.all(axis=2)  # (N, 32): full rows or full columns
        assert lines.any(axis=1).all()
        assert not lines[:, 16:].any() if in_first_half else not lines[:, :16].any()


def test_make_edges_splits_five_classes_and_permutation():
    plain = make_edges_splits(classes=EDGE_CLASSES_5, n_train=50, n_val=20, n_test=20, seed=3)
    permuted = make_edges_splits(
        classes=EDGE_CLASSES_5, n_train=50, n_val=20, n_test=20, seed=3, permute=True, permutation_seed=9
    )
    perm, inverse = pixel_permutation(32, seed=9)
    assert plain.num_classes == 5
    assert torch.equal(permuted.x_train, apply_permutation(plain.x_train, perm))
    assert torch.equal(apply_permutation(permuted.x_test, inverse), plain.x_test)
    assert torch.equal(permuted.y_val, plain.y_val)
    with pytest.raises(ValueError, match="at least two classes"):
        make_edges_splits(classes=("none",))


# --- pixel permutation --------------------------------------------------------------------------------


def test_pixel_permutation_round_trip():
    perm, inverse = pixel_permutation(16, seed=4)
    assert perm.dtype == torch.int64 and torch.equal(torch.sort(perm).values, torch.arange(256))
    assert not torch.equal(perm, torch.arange(256))
    x = torch.rand(5, 2, 16, 16)
    shuffled = apply_permutation(x, perm)
    assert not torch.equal(shuffled, x)
    assert torch.equal(apply_permutation(shuffled, inverse), x)
    assert torch.equal(shuffled.flatten(2)[:, :, 7], x.flatten(2)[:, :, perm[7]])
    assert torch.equal(pixel_permutation(16, seed=4)[0], perm)
    assert not torch.equal(pixel_permutation(16, seed=5)[0], perm)
    with pytest.raises(ValueError, match="does not fit"):
        apply_permutation(torch.rand(1, 1, 8, 8), perm)


# --- detection mode -----------------------------------------------------------------------------------


def test_correlated_noise_unit_variance_and_planted_correlation():
    sigma = 1.5
    field = correlated_noise(np.random.default_rng(0), 400, 32, sigma)
    assert field.dtype == np.float32 and field.shape == (400, 32, 32)
    assert abs(field.std() - 1.0) < 0.02
    lag1 = np.mean(field * np.roll(field, 1, axis=2))
    assert abs(lag1 - math.exp(-1 / (4 * sigma**2))) < 0.02  # Gaussian filter -> Gaussian autocorrelation


def test_detection_shapes_classes_info():
    s = make_detection_splits(**SMALL_DETECTION)
    assert s.class_names == DETECTION_CLASSES == ("normal", "abnormal")
    assert s.input_shape == (1, 64, 64)
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    info = json.loads(json.dumps(s.info))
    for key in ("edge_contrast", "segment_length", "texture_amplitude", "texture_correlation", "occlusion"):
        assert key in info
    assert info["n_positive"] == {"train": 148, "val": 37, "test": 50}


@pytest.mark.parametrize(("n", "prevalence"), [(200, 0.74), (81, 0.625), (7, 0.5), (400, 0.013)])
def test_detection_prevalence_is_exact(n, prevalence):
    s = make_detection_splits(n_train=n, n_val=n, n_test=n, train_prevalence=prevalence, test_prevalence=0.3)
    expected = math.floor(n * prevalence + 0.5)
    assert int(s.y_train.sum()) == expected and int(s.y_val.sum()) == expected  # val follows train
    assert int(s.y_test.sum()) == math.floor(n * 0.3 + 0.5)
    assert int(make_detection_splits(**SMALL_DETECTION, val_prevalence=0.2).y_val.sum()) == 10


def test_detection_same_seed_same_bytes_seeds_differ_test_fixed():
    a = make_detection_splits(**SMALL_DETECTION, seed=1)
    b = make_detection_splits(**SMALL_DETECTION, seed=1)
    c = make_detection_splits(**SMALL_DETECTION, seed=2)
    assert splits_digest(a) == splits_digest(b)
    assert digest(a.x_train) != digest(c.x_train) and digest(a.x_val) != digest(c.x_val)
    assert digest(a.x_test, a.y_test) == digest(c.x_test, c.y_test)  # the study's fixed test set
    # ... which depends on nothing about the training side
    d = make_detection_splits(n_train=37, n_val=11, n_test=80, train_prevalence=0.5, label_noise=0.2, seed=5)
    assert digest(a.x_test, a.y_test) == digest(d.x_test, d.y_test)
    e = make_detection_splits(**SMALL_DETECTION, seed=1, test_seed=1)
    assert digest(a.x_test) != digest(e.x_test) and digest(a.x_train) == digest(e.x_train)


def test_detection_label_noise_train_only_at_the_rate():
    clean = make_detection_splits(**SMALL_DETECTION, seed=3)
    noisy = make_detection_splits(**SMALL_DETECTION, seed=3, label_noise=0.1)
    assert torch.equal(clean.x_train, noisy.x_train)  # images do not move
    assert int((clean.y_train != noisy.y_train).sum()) == 20 == noisy.info["n_label_flips"]
    assert torch.equal(clean.y_val, noisy.y_val) and torch.equal(clean.y_test, noisy.y_test)
    assert noisy.info["n_positive"]["train"] == 148  # counts before flipping


def test_detection_positives_have_edges_negatives_do_not():
    quiet = {"texture_amplitude": 0.0, "occlusion": 0.0, "noise": 0.0, "background_intensity": (0.4, 0.4)}
    s = make_detection_splits(**SMALL_DETECTION, **quiet)
    excess = (s.x_train[:, 0] - 0.4).flatten(1).amax(1)
    assert torch.all(excess[s.y_train == 0] < 1e-6)
    assert torch.all(excess[s.y_train == 1] > 0.02)
    # horizontal segments stay within a band of rows no thicker than the widest edge plus its rim
    h = make_detection_splits(
        **SMALL_DETECTION,
        **quiet,
        edge_types=("horizontal",),
        edge_width=(1.0, 2.0),
        segments_per_image=(1, 1),
    )
    rows = ((h.x_train[h.y_train == 1, 0] - 0.4) > 1e-6).any(dim=2).sum(dim=1)
    assert rows.max() <= 4 and rows.min() >= 1


def test_detection_occlusion_hides_part_of_the_segment():
    quiet = {"texture_amplitude": 0.0, "noise": 0.0, "background_intensity": (0.4, 0.4)}
    mass = [
        float((make_detection_splits(**SMALL_DETECTION, **quiet, occlusion=o).x_train - 0.4).sum())
        for o in (0.0, 0.5)
    ]
    assert 0.3 < mass[1] / mass[0] < 0.7


def test_detection_permutation_applies_to_every_split():
    plain = make_detection_splits(**SMALL_DETECTION)
    permuted = make_detection_splits(**SMALL_DETECTION, permute=True, permutation_seed=2)
    perm, _ = pixel_permutation(64, seed=2)
    assert torch.equal(permuted.x_test, apply_permutation(plain.x_test, perm))
    assert torch.equal(permuted.x_train, apply_permutation(plain.x_train, perm))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_prevalence": 1.0}, "train_prevalence"),
        ({"test_prevalence": 0}, "test_prevalence"),
        ({"label_noise": 1.0}, "label_noise"),
        ({"edge_types": ("curly",)}, "unknown: curly"),
        ({"segment_length": (10.0, 5.0)}, "segment_length"),
        ({"segment_length": (10.0, 40.0)}, "segment_length"),
        ({"n_train": 0}, "n_train"),
        ({"image_size": 8}, "image_size"),
        ({"occlusion": 1.0}, "occlusion"),
        ({"texture_correlation": -1.0}, "texture_correlation"),
    ],
)
def test_detection_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_detection_splits(**{**SMALL_DETECTION, **kwargs})
