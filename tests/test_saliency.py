"""Grad-CAM and saliency outcomes against hand-computed answers, planted effects and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from downscalexr.models import create_model
from downscalexr.saliency import (
    cam_layer,
    class_probabilities,
    deletion_area,
    deletion_curves,
    gradcam_maps,
    localisation,
    saliency_outcomes,
    saliency_subset,
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _linear(weights: list[list[float]], side: int = 2) -> nn.Module:
    """Flatten then a bias-free linear layer with the given rows (one per output)."""
    w = torch.tensor(weights)
    model = nn.Sequential(nn.Flatten(), nn.Linear(side * side, len(weights), bias=False))
    with torch.no_grad():
        model[1].weight.copy_(w)
    return model


def _gap_model(head: list[list[float]], relu: bool) -> nn.Sequential:
    """conv 1x1 (1 -> 2, weights +1 and -1, no bias) [-> in-place ReLU] -> global mean -> linear ``head``."""
    conv = nn.Conv2d(1, 2, 1, bias=False)
    linear = nn.Linear(2, len(head), bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
        linear.weight.copy_(torch.tensor(head))
    act = [nn.ReLU(inplace=True)] if relu else []
    return nn.Sequential(conv, *act, nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)


def _normalised(t: torch.Tensor) -> torch.Tensor:
    return t / t.max() if t.max() > 0 else t


X4 = torch.tensor([[3.0, -1.0, 2.0, 0.5], [1.0, 4.0, -2.0, 1.5], [2.5, 0.5, 1.0, 3.5], [-0.5, 2.0, 1.0, 1.0]])


# --- localisation --------------------------------------------------------------------------------


def test_localisation_of_planted_maps_by_hand():
    cams = torch.tensor(
        [
            [[3.0, 1.0], [0.0, 0.0]],  # 3 of 4 inside
            [[3.0, -5.0], [1.0, 0.0]],  # negative values carry no mass: 3 of 4
            [[1.0, 1.0], [1.0, 1.0]],  # uniform map, mask of 2 pixels: 2 of 4
            [[0.0, 0.0], [0.0, 2.0]],  # all mass outside
        ]
    )
    masks = torch.tensor(
        [
            [[True, False], [False, False]],
            [[True, False], [False, False]],
            [[True, True], [False, False]],
            [[True, False], [False, False]],
        ]
    )
    np.testing.assert_allclose(localisation(cams, masks), [0.75, 0.75, 0.5, 0.0])
    np.testing.assert_allclose(localisation(cams, masks[:, None]), [0.75, 0.75, 0.5, 0.0])  # (N, 1, H, W)


def test_localisation_is_nan_where_undefined():
    cams = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    masks = torch.tensor([[[True, False], [False, False]], [[False, False], [False, False]]])
    assert np.isnan(localisation(cams, masks)).all()  # no mass; empty mask


@pytest.mark.parametrize(
    ("masks", "match"),
    [(torch.ones(1, 2, 2), "boolean"), (torch.ones(1, 3, 3, dtype=torch.bool), "one shape")],
)
def test_localisation_rejects_bad_masks(masks, match):
    with pytest.raises(ValueError, match=match):
        localisation(torch.ones(1, 2, 2), masks)


# --- deletion curve ------------------------------------------------------------------------------


def test_deletion_area_of_planted_binary_model_by_hand():
    # z = 2 x0 + x1 - x3 on an all-ones 2x2 image; the map deletes pixels 0, 1, 2, 3 in that order.
    model = _linear([[2.0, 1.0, 0.0, -1.0]])
    images = torch.ones(2, 1, 2, 2)
    cam = torch.tensor([[4.0, 3.0], [2.0, 1.0]])
    cams = torch.stack([cam, cam])
    curves, fractions = deletion_curves(model, images, [1, 0], cams, steps=4)
    logits = [2.0, 0.0, -1.0, -1.0, 0.0]  # after removing 0, 1, 2, 3, 4 pixels
    positive = [_sigmoid(z) for z in logits]
    negative = [1.0 - p for p in positive]
    np.testing.assert_allclose(fractions, [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curves, [positive, negative], rtol=1e-6)
    trapezoid = [sum((c[k] + c[k + 1]) / 2 * 0.25 for k in range(4)) for c in (positive, negative)]
    np.testing.assert_allclose(deletion_area(curves, fractions), trapezoid, rtol=1e-6)


def test_deletion_of_multiclass_model_with_uneven_stages_by_hand():
    # Three classes; 3 stages over 4 pixels remove floor(k * 4 / 3) = 0, 1, 2, 4 pixels.
    model = _linear([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    images = torch.tensor([[[[2.0, 1.0], [1.0, 0.0]]]])
    cams = torch.tensor([[[1.0, 3.0], [2.0, 0.0]]])  # order: pixel 1, pixel 2, pixel 0, pixel 3
    curves, fractions = deletion_curves(model, images, [1], cams, steps=3)
    logit_sets = [(2.0, 1.0, 1.0), (2.0, 0.0, 1.0), (2.0, 0.0, 0.0), (0.0, 0.0, 0.0)]
    expected = [math.exp(z[1]) / sum(math.exp(v) for v in z) for z in logit_sets]
    np.testing.assert_allclose(fractions, [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(curves[0], expected, rtol=1e-6)
    widths = [0.25, 0.25, 0.5]
    area = sum((expected[k] + expected[k + 1]) / 2 * widths[k] for k in range(3))
    np.testing.assert_allclose(deletion_area(curves, fractions), [area], rtol=1e-6)


def test_deletion_ties_go_to_the_earlier_pixel_and_baseline_is_used():
    model = _linear([[0.1, 0.2, 0.3, 0.4]])
    images = torch.ones(1, 1, 2, 2)
    curves, _ = deletion_curves(model, images, [1], torch.ones(1, 2, 2), steps=4, baseline=-1.0)
    # Row-major order among equal scores: x0, x1, x2, x3, each going from 1 to -1.
    logits = [1.0, 0.8, 0.4, -0.2, -1.0]
    np.testing.assert_allclose(curves[0], [_sigmoid(z) for z in logits], rtol=1e-6)


def test_faithful_map_has_lower_deletion_area_than_reversed_map():
    # Planted: the logit reads only the top-left 3x3 block of an 8x8 image.
    weights = torch.zeros(8, 8)
    weights[:3, :3] = 1.0
    model = _linear([(weights.flatten() * 0.5).tolist()], side=8)
    images = torch.ones(1, 1, 8, 8)
    on_signal = (weights + 0.01 * torch.arange(64.0).reshape(8, 8) / 64)[None]  # signal first
    reversed_map = (1.0 - weights)[None]  # signal last
    good = deletion_area(*deletion_curves(model, images, [1], on_signal, steps=16))
    bad = deletion_area(*deletion_curves(model, images, [1], reversed_map, steps=16))
    assert good[0] < bad[0] - 0.3


def test_class_probabilities_binary_and_multiclass():
    z = torch.tensor([[0.0], [2.0]])
    np.testing.assert_allclose(class_probabilities(z).numpy(), [[0.5, 0.5], [1 - _sigmoid(2), _sigmoid(2)]])
    logits = torch.tensor([[0.0, math.log(3.0)]])
    np.testing.assert_allclose(class_probabilities(logits).numpy(), [[0.25, 0.75]], rtol=1e-6)


# --- Grad-CAM: known answers ---------------------------------------------------------------------


def test_gradcam_single_logit_negative_class_uses_the_negated_logit():
    # A = (x, -x); z = 2 mean(A0) + 1 mean(A1) = mean(x): the positive class's map is relu(x), the
    # negative class's (score -z) is relu(-x), each divided by its maximum.
    model = _gap_model([[2.0, 1.0]], relu=False)
    x = X4[None, None]
    cams = gradcam_maps(model, x.expand(2, -1, -1, -1), [1, 0], layer=model[0])
    torch.testing.assert_close(cams[0], _normalised(X4.clamp_min(0)))
    torch.testing.assert_close(cams[1], _normalised((-X4).clamp_min(0)))


def test_gradcam_multiclass_by_hand_zero_map_stays_zero():
    # Class weights on (mean A0, mean A1): class 0 -> x, class 1 -> -3x, class 2 -> 0.
    model = _gap_model([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0]], relu=False)
    x = X4[None, None].expand(3, -1, -1, -1)
    cams = gradcam_maps(model, x, [0, 1, 2], layer=model[0])
    torch.testing.assert_close(cams[0], _normalised(X4.clamp_min(0)))
    torch.testing.assert_close(cams[1], _normalised((-X4).clamp_min(0)))
    assert torch.equal(cams[2], torch.zeros(4, 4))


def test_gradcam_through_an_inplace_relu_by_hand_and_caller_model_untouched():
    # With ReLU after the hooked conv, channel k's gradient is v_k / 16 on its positive pixels:
    # alpha = (2 * 13/16, 1 * 3/16) / 16 (13 of 16 pixels of X4 are positive), so the map is
    # relu((2 * 13 - 3) x) / max = relu(x) / max for class 1 and relu(-x) / max for class 0.
    model = _gap_model([[2.0, 1.0]], relu=True).train()
    assert int((X4 > 0).sum()) == 13
    x = X4[None, None].expand(2, -1, -1, -1)
    with torch.no_grad():  # a caller's no_grad must not break the backward pass
        cams = gradcam_maps(model, x, [1, 0], layer=model[0])
    torch.testing.assert_close(cams[0], _normalised(X4.clamp_min(0)))
    torch.testing.assert_close(cams[1], _normalised((-X4).clamp_min(0)))
    assert model[1].inplace and model.training


# --- Grad-CAM on the model families --------------------------------------------------------------

FAMILIES = [
    ("lenet", {"in_channels": 1, "num_outputs": 1, "input_size": 32}),
    ("lenet", {"in_channels": 3, "num_outputs": 10, "input_size": 32}),
    ("resnet8", {"in_channels": 1, "num_outputs": 1, "input_size": 16}),
    ("resnet8", {"in_channels": 3, "num_outputs": 10, "input_size": 16}),
]


@pytest.mark.parametrize("op", ["maxpool", "strided"])
@pytest.mark.parametrize(
    ("family", "shape"), FAMILIES, ids=["lenet-bin", "lenet-10", "resnet-bin", "resnet-10"]
)
def test_gradcam_on_families_is_deterministic_normalised_and_leaves_the_model(family, shape, op):
    side, k = shape["input_size"], max(2, shape["num_outputs"])
    images = torch.randn(6, shape["in_channels"], side, side, generator=torch.Generator().manual_seed(0))
    targets = np.arange(6) % k
    model = create_model(family, downsample=op, seed=11, **shape).train()
    before = {key: v.clone() for key, v in model.state_dict().items()}
    first = gradcam_maps(model, images, targets)
    again = gradcam_maps(model, images, targets)
    twin = gradcam_maps(create_model(family, downsample=op, seed=11, **shape), images, targets)
    assert first.shape == (6, side, side) and first.dtype == torch.float32
    assert torch.equal(first, again) and torch.equal(first, twin)
    assert (first >= 0).all() and (first <= 1).all()
    assert ((first.amax(dim=(1, 2)) == 1) | (first.amax(dim=(1, 2)) == 0)).all()
    assert (first.amax(dim=(1, 2)) == 1).any()  # some map is not empty
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm statistics included


def test_default_layers_are_the_last_conv_stage():
    lenet = create_model("lenet", seed=0, input_size=32)
    resnet = create_model("resnet8", seed=0, input_size=16)
    assert cam_layer(lenet) is lenet.down2
    assert cam_layer(resnet) is resnet.stage3


def test_unknown_family_and_foreign_layer_are_explained():
    model = _gap_model([[1.0, 1.0]], relu=False)
    with pytest.raises(ValueError, match="pass layer="):
        gradcam_maps(model, torch.ones(1, 1, 4, 4), [1])
    with pytest.raises(ValueError, match="not a module of"):
        gradcam_maps(model, torch.ones(1, 1, 4, 4), [1], layer=nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match="out of range"):
        gradcam_maps(model, torch.ones(1, 1, 4, 4), [2], layer=model[0])
    with pytest.raises(ValueError, match="one target per image"):
        gradcam_maps(model, torch.ones(2, 1, 4, 4), [1], layer=model[0])


def test_saliency_outcomes_bundle_the_pieces():
    model = create_model("resnet8", downsample="avgpool", seed=2, in_channels=1, num_outputs=1, input_size=16)
    images = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    masks = torch.zeros(3, 16, 16, dtype=torch.bool)
    masks[:, 4:12, 4:12] = True
    result = saliency_outcomes(model, images, [1, 1, 0], masks, steps=8)
    torch.testing.assert_close(result.cams, gradcam_maps(model, images, [1, 1, 0]))
    np.testing.assert_array_equal(result.localisation, localisation(result.cams, masks))
    curves, fractions = deletion_curves(model, images, [1, 1, 0], result.cams, steps=8)
    np.testing.assert_array_equal(result.deletion_curves, curves)
    np.testing.assert_array_equal(result.deletion_area, deletion_area(curves, fractions))
    assert result.deletion_curves.shape == (3, 9)
    assert np.isnan(saliency_outcomes(model, images, [1, 1, 0], steps=2).localisation).all()


# --- the fixed subset ----------------------------------------------------------------------------


def test_saliency_subset_depends_on_test_seed_only():
    a = saliency_subset(500, 20, 3)
    assert np.array_equal(a, saliency_subset(500, 20, 3))
    assert not np.array_equal(a, saliency_subset(500, 20, 4))
    assert a.dtype == np.int64 and len(np.unique(a)) == 20
    assert np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 500
    assert np.array_equal(np.sort(saliency_subset(20, 20, 3)), np.arange(20))


@pytest.mark.parametrize(
    ("n_test", "n_images", "match"), [(10, 11, "exceeds"), (10, 0, "positive"), (0, 1, "positive")]
)
def test_saliency_subset_rejects_bad_sizes(n_test, n_images, match):
    with pytest.raises(ValueError, match=match):
        saliency_subset(n_test, n_images, 0)
