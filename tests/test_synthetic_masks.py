"""Ground-truth masks of the synthetic test images: where the planted signal is, checked on the images."""

from __future__ import annotations

import pytest
import torch

from downscalexr.data.base import ImageSplits, standardized
from downscalexr.data.registry import load_dataset, permute_splits
from downscalexr.data.synthetic import (
    EDGE_CLASSES_5,
    apply_permutation,
    make_detection_splits,
    make_edges,
    make_edges_splits,
    make_shapes_splits,
    pixel_permutation,
)

SIZES = {"n_train": 20, "n_val": 10, "n_test": 200}
QUIET = {"texture_amplitude": 0.0, "noise": 0.0, "background_intensity": (0.4, 0.4)}


def test_edge_masks_are_the_edge_pixels():
    s = make_edges_splits(**SIZES, classes=EDGE_CLASSES_5)
    masks = s.masks_test
    assert masks.dtype == torch.bool and masks.shape == (200, 32, 32)
    # noise-free: edges are at least 0.6, the background at most 0.3
    assert torch.equal(masks, s.x_test[:, 0] > 0.45)
    has_edge = masks.flatten(1).any(1)
    assert torch.equal(has_edge, s.y_test != EDGE_CLASSES_5.index("none"))


def test_edge_masks_do_not_move_with_pixel_noise():
    clean = make_edges(60, noise=0.0, seed=4, masks=True)
    noisy = make_edges(60, noise=0.3, seed=4, masks=True)
    assert torch.equal(clean[2], noisy[2]) and not torch.equal(clean[0], noisy[0])
    assert len(make_edges(5, seed=4)) == 2  # the images and labels only, unless asked


@pytest.mark.parametrize("occlusion", [0.0, 0.5])
def test_detection_masks_are_the_visible_segment_pixels(occlusion):
    s = make_detection_splits(**SIZES, **QUIET, occlusion=occlusion)
    background = torch.tensor(0.4, dtype=torch.float32)
    # without texture or noise, a pixel differs from the flat background exactly where a segment shows
    assert torch.equal(s.masks_test, s.x_test[:, 0] != background)
    assert not s.masks_test[s.y_test == 0].any()
    if occlusion == 0:
        assert s.masks_test[s.y_test == 1].flatten(1).any(1).all()


def test_detection_masks_belong_to_the_fixed_test_set():
    a = make_detection_splits(**SIZES, seed=1)
    b = make_detection_splits(**SIZES, seed=2, label_noise=0.2)
    c = make_detection_splits(**SIZES, seed=1, test_seed=5)
    assert torch.equal(a.masks_test, b.masks_test)
    assert not torch.equal(a.masks_test, c.masks_test)


@pytest.mark.parametrize("make", [make_edges_splits, make_detection_splits, make_shapes_splits])
def test_masks_are_permuted_with_the_images(make):
    plain = make(**SIZES)
    permuted = make(**SIZES, permute=True, permutation_seed=3)
    perm = pixel_permutation(plain.x_test.shape[-1], seed=3)[0]
    assert torch.equal(permuted.masks_test, apply_permutation(plain.masks_test[:, None], perm)[:, 0])
    # and the registry's permutation (used for real data) does the same to a splits object
    again = permute_splits(plain, seed=3)
    assert torch.equal(again.masks_test, permuted.masks_test) and torch.equal(again.x_test, permuted.x_test)


def test_masks_survive_standardisation_and_are_absent_for_other_data():
    s = load_dataset("edges", seed=0, **SIZES)
    assert standardized(s).masks_test is s.masks_test
    x, y = torch.zeros(3, 1, 4, 4), torch.zeros(3, dtype=torch.long)
    plain = ImageSplits(x, y, x, y, x, y, class_names=("a", "b"))
    assert plain.masks_test is None and permute_splits(plain, 0).masks_test is None


def test_masks_must_match_the_test_images():
    x, y = torch.zeros(3, 1, 4, 4), torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"masks_test must be bool of shape \(3, 4, 4\)"):
        ImageSplits(x, y, x, y, x, y, class_names=("a", "b"), masks_test=torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="masks_test"):
        ImageSplits(
            x, y, x, y, x, y, class_names=("a", "b"), masks_test=torch.zeros(2, 4, 4, dtype=torch.bool)
        )
