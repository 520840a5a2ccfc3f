"""Augmentation policies: reproducible from a seed, per-example, global RNG untouched, known answers."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from downscalexr.augment import (
    Augmenter,
    AugmentParams,
    AugmentPolicy,
    apply_params,
    augment_batch,
    get_augment,
    list_augment,
    make_augmenter,
    sample_params,
)

POLICIES = list_augment()
CHANGING = [name for name in POLICIES if not get_augment(name).is_identity]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _images(n: int = 8, c: int = 1, side: int = 12, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, side, side, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _params(n: int, *, hflip=None, vflip=None, angle=None, contrast=None) -> AugmentParams:
    def as_tensor(value, default, dtype):
        return torch.full((n,), default, dtype=dtype) if value is None else torch.tensor(value, dtype=dtype)

    return AugmentParams(
        hflip=as_tensor(hflip, False, torch.bool),
        vflip=as_tensor(vflip, False, torch.bool),
        angle=as_tensor(angle, 0.0, torch.float64),
        contrast=as_tensor(contrast, 1.0, torch.float64),
    )


def test_registry_names_and_unknown_name_lists_valid_ones():
    assert {"none", "flip", "rotate", "contrast", "flip_rotate", "flip_rotate_contrast"} <= set(POLICIES)
    with pytest.raises(ValueError, match="choose from none, flip"):
        get_augment("flip_rotat")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"hflip": 1.5}, "probability"), ({"degrees": -1.0}, "degrees"), ({"contrast": 1.0}, "contrast")],
)
def test_policy_ranges_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AugmentPolicy("bad", **kwargs)


@pytest.mark.parametrize("policy", CHANGING)
def test_same_seed_same_batches_different_seed_different(policy):
    x = _images()
    a, b, c = make_augmenter(policy, 3), make_augmenter(policy, 3), make_augmenter(policy, 4)
    first_a, first_b, first_c = a(x), b(x), c(x)
    assert torch.equal(first_a, first_b)
    assert not torch.equal(first_a, first_c)
    assert torch.equal(a(x), b(x))  # the second batch repeats too ...
    assert not torch.equal(a(x), first_a)  # ... and the stream moves on between batches


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("policy", POLICIES)
def test_shape_and_dtype_kept_and_input_not_modified(policy, channels, dtype):
    x = _images(c=channels, dtype=dtype)
    original = x.clone()
    out = augment_batch(x, policy, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.isfinite(out).all()
    assert torch.equal(x, original)


def test_none_is_the_identity_and_draws_nothing():
    x = _images()
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert augment_batch(x, "none", gen) is x
    assert torch.equal(gen.get_state(), state)


@pytest.mark.parametrize("policy", POLICIES)
def test_global_rng_untouched(policy):
    # The legacy global numpy state is what a library could touch by mistake, so it is what we read.
    np_state = np.random.get_state()  # noqa: NPY002
    torch_state, py_state = torch.get_rng_state(), random.getstate()
    make_augmenter(policy, 0)(_images(c=3))
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    after = np.random.get_state()  # noqa: NPY002
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]


def test_parameters_differ_between_examples_of_one_batch():
    x = _images(n=1).expand(16, -1, -1, -1).contiguous()  # sixteen copies of one image
    out = make_augmenter("flip_rotate_contrast", 0)(x)
    distinct = {tuple(row.flatten().tolist()) for row in out}
    assert len(distinct) == 16


def test_every_policy_draws_the_same_uniforms_so_flips_agree_across_policies():
    flips = sample_params(get_augment("flip"), 64, torch.Generator().manual_seed(9)).hflip
    same = sample_params(get_augment("flip_rotate_contrast"), 64, torch.Generator().manual_seed(9)).hflip
    assert torch.equal(flips, same)


def test_sampled_parameters_stay_in_their_ranges_with_the_stated_flip_rate():
    policy = AugmentPolicy("wide", hflip=0.5, vflip=0.25, degrees=15.0, contrast=0.3)
    p = sample_params(policy, 20_000, torch.Generator().manual_seed(1))
    assert p.angle.abs().max() <= 15.0 and p.angle.abs().max() > 14.9
    assert (p.contrast >= 0.7).all() and (p.contrast <= 1.3).all()
    # Binomial standard errors 0.0035 and 0.0031: six of them as tolerance.
    assert abs(p.hflip.double().mean().item() - 0.5) < 0.021
    assert abs(p.vflip.double().mean().item() - 0.25) < 0.019


# --- known answers of the operations -------------------------------------------------------------


def test_flip_applies_to_flagged_examples_only():
    x = _images(n=3)
    out = apply_params(x, _params(3, hflip=[True, False, True], vflip=[False, False, True]))
    assert torch.equal(out[0], x[0].flip(-1))
    assert torch.equal(out[1], x[1])
    assert torch.equal(out[2], x[2].flip(-1).flip(-2))


def test_rotation_by_90_degrees_is_a_quarter_turn_counter_clockwise():
    # On an even square, 90 degrees about the centre maps pixel centres onto pixel centres: bilinear is exact.
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = apply_params(x, _params(1, angle=[90.0]))
    expected = torch.tensor([[3.0, 7, 11, 15], [2, 6, 10, 14], [1, 5, 9, 13], [0, 4, 8, 12]])
    torch.testing.assert_close(out[0, 0], expected, atol=1e-4, rtol=0)


def test_rotation_fills_uncovered_corners_with_fill():
    x = torch.ones(1, 2, 8, 8)
    out = apply_params(x, _params(1, angle=[45.0]), fill=-3.0)
    assert out[0, :, 0, 0].tolist() == [-3.0, -3.0]
    assert out[0, :, 4, 4].tolist() == [1.0, 1.0]  # the centre keeps its value


def test_contrast_scales_about_the_image_mean_without_clamping():
    x = torch.tensor([[[[-1.0, 3.0], [0.0, 2.0]]]])  # mean 1
    out = apply_params(x, _params(1, contrast=[1.5]))
    expected = 1.0 + 1.5 * (x - 1.0)  # [-2, 4, -0.5, 2.5]: outside [0, 1], kept
    torch.testing.assert_close(out, expected)


def test_contrast_of_rgb_uses_the_grayscale_mean():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 0] = 1.0  # pure red: grayscale 0.2989 everywhere (ITU-R 601-2 luma, as torchvision)
    out = apply_params(x, _params(1, contrast=[2.0]))
    mean = 0.2989
    torch.testing.assert_close(out[0, 0], torch.full((2, 2), mean + 2.0 * (1.0 - mean)), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0, 1], torch.full((2, 2), mean - 2.0 * mean), atol=1e-4, rtol=0)


def test_neutral_examples_come_back_bit_identical():
    x = _images(n=2)
    out = apply_params(x, _params(2, angle=[0.0, 5.0], contrast=[1.0, 1.1]))
    assert torch.equal(out[0], x[0])
    assert not torch.equal(out[1], x[1])


@pytest.mark.parametrize(
    ("bad", "match"),
    [(torch.zeros(1, 8, 8), r"\(B, C, H, W\)"), (torch.zeros(2, 1, 8, 8, dtype=torch.uint8), "floating")],
)
def test_bad_input_is_explained(bad, match):
    with pytest.raises(ValueError, match=match):
        augment_batch(bad, "flip", torch.Generator())


def test_augmenter_holds_its_policy_and_stream():
    gen = torch.Generator().manual_seed(2)
    aug = Augmenter("rotate", gen)
    assert repr(aug) == "Augmenter('rotate')"
    expected = augment_batch(_images(), "rotate", torch.Generator().manual_seed(2))
    assert torch.equal(aug(_images()), expected)
