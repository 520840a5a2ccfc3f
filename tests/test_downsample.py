"""Downsampling operators: registry-wide contracts, then known answers per operator.

The registry-wide tests loop over ``list_downsample()``, so a newly registered operator gets the
forward, backward, shape, NaN and seeded-initialisation checks without a line of new test code.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from downscalexr.layers import create_downsample, get_downsample, list_downsample
from downscalexr.layers.antialias import (
    FILTER_SIZES,
    BlurPool2d,
    MaxBlurPool2d,
    binomial_filter,
    blur_operator,
)
from downscalexr.layers.polyphase import AdaptivePolyphase2d, Subsample2d
from downscalexr.layers.pooling import LPPool2d, MixedPool2d, SoftPool2d
from downscalexr.layers.space_to_depth import SpaceToDepth2d, space_to_depth_params
from downscalexr.models import count_params, create_model

OPERATORS = list_downsample()
# Every family at a small input where it allows one: 32 -> conv5 28 -> 14 -> conv5 10 -> 5.
MODELS = ["lenet", "lenet_gap", "downscalexr_lenet"]
SMALL = {"input_size": 32}
SHAPES_IDENTICAL = "parameter shapes identical to avgpool"
SHAPES_DIFFER = "parameter shapes differ from avgpool"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny tensors: intra-op threads only add synchronisation, badly so on a loaded machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- registry-wide -------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1e4], ids=["unit", "large"])
@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("op", OPERATORS)
def test_model_forward_backward_finite(op, model_name, scale):
    model = create_model(model_name, downsample=op, seed=0, **SMALL)
    x = scale * torch.randn(3, 1, 32, 32, generator=_gen())  # zero-mean: half the pixels negative
    out = model(x)
    assert out.shape == (3, 1)
    assert torch.isfinite(out).all()
    F.binary_cross_entropy_with_logits(out[:, 0], torch.tensor([0.0, 1.0, 1.0])).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{op}/{model_name}: no gradient for {name}"
        assert torch.isfinite(param.grad).all(), f"{op}/{model_name}: non-finite gradient for {name}"


@pytest.mark.parametrize("size", [(6, 6), (7, 7), (6, 9), (9, 4), (3, 5)])
@pytest.mark.parametrize("op", OPERATORS)
def test_module_alone_halves_with_floor(op, size):
    h, w = size
    x = (1e4 * torch.randn(2, 3, h, w, generator=_gen())).requires_grad_()
    module = create_downsample(op, 3)
    out = module(x)
    if get_downsample(op).conv_stride == 2:
        assert out.shape == x.shape  # the convolution does the halving
    else:
        assert out.shape == (2, 3, h // 2, w // 2)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("op", OPERATORS)
def test_module_same_values_in_channels_last(op):
    module = create_downsample(op, 4)
    x = torch.randn(2, 4, 9, 8, generator=_gen())
    expected = module(x)
    got = module(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("op", OPERATORS)
def test_params_note_states_count_and_shape_contract(op):
    note = get_downsample(op).params_note
    assert (SHAPES_IDENTICAL in note) != (SHAPES_DIFFER in note), note
    assert "parameter" in note
    n_params = count_params(create_downsample(op, 8))
    assert (n_params == 0) == note.startswith("no parameters"), (op, n_params, note)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("op", [op for op in OPERATORS if SHAPES_IDENTICAL in get_downsample(op).params_note])
def test_same_seed_gives_bit_identical_weights_as_avgpool(op, model_name):
    reference = create_model(model_name, downsample="avgpool", seed=7, **SMALL).state_dict()
    state = create_model(model_name, downsample=op, seed=7, **SMALL).state_dict()
    assert state.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(state[key], value), f"{op}: {key} differs from avgpool at the same seed"


def test_different_seeds_give_different_weights():
    a = create_model("lenet", downsample="blurpool", seed=1, **SMALL).state_dict()
    b = create_model("lenet", downsample="blurpool", seed=2, **SMALL).state_dict()
    assert not torch.equal(a["conv1.weight"], b["conv1.weight"])


def test_mixedpool_shared_parameters_match_avgpool_and_extras_are_two_scalars():
    reference = create_model("lenet", downsample="avgpool", seed=7, **SMALL).state_dict()
    state = create_model("lenet", downsample="mixedpool", seed=7, **SMALL).state_dict()
    assert sorted(set(state) - set(reference)) == ["down1.logit", "down2.logit"]
    for key, value in reference.items():
        assert torch.equal(state[key], value), key
    assert state["down1.logit"].item() == 0.0


@pytest.mark.parametrize(
    "op", [op for op in OPERATORS if get_downsample(op).params_note.startswith("no param")]
)
def test_downscalexr_lenet_parameter_count(op):
    # conv 1->6 k5 (156) + conv 6->16 k5 (2,416) + FC 16*77*77 -> 120 (11,383,800) + 120 -> 84 (10,164)
    # + 84 -> 1 (85): the published 11,396,621 at 320x320, for every parameter-free operator.
    expected = (1 * 6 * 25 + 6) + (6 * 16 * 25 + 16) + (16 * 77 * 77 * 120 + 120) + (120 * 84 + 84) + (84 + 1)
    assert expected == 11_396_621
    assert count_params(create_model("downscalexr_lenet", downsample=op, seed=0)) == expected


def test_unknown_operator_lists_valid_names():
    with pytest.raises(ValueError, match="unknown downsampling operator 'maxx'") as info:
        create_downsample("maxx", 3)
    for name in OPERATORS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="choose from"):
        create_model("lenet", downsample="blurpol")


# --- anti-aliasing: blurpool, maxblurpool ----------------------------------------------------------


@pytest.mark.parametrize("size", FILTER_SIZES)
def test_binomial_filter_is_normalised_pascal_row(size):
    row = binomial_filter(size)
    expected = torch.tensor([math.comb(size - 1, i) / 2 ** (size - 1) for i in range(size)])
    torch.testing.assert_close(row, expected)
    assert row.sum().item() == pytest.approx(1.0, abs=1e-7)
    torch.testing.assert_close(row, row.flip(0))


@pytest.mark.parametrize("bad", [1, 6, 0])
def test_blur_filter_size_outside_2_to_5_is_rejected(bad):
    with pytest.raises(ValueError, match="filter size must be one of"):
        BlurPool2d(3, bad)


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("size", FILTER_SIZES)
def test_blur_of_constant_image_is_constant(size, ceil_mode):
    x = torch.full((1, 2, 9, 8), 3.5)
    out = BlurPool2d(2, size, ceil_mode=ceil_mode)(x)
    torch.testing.assert_close(out, torch.full_like(out, 3.5))
    rounding = math.ceil if ceil_mode else math.floor
    assert out.shape[-2:] == (rounding(9 / 2), 4)


@pytest.mark.parametrize("size", FILTER_SIZES)
def test_blur_removes_the_nyquist_checkerboard_which_subsample_aliases(size):
    i = torch.arange(8)
    checker = ((-1.0) ** (i[:, None] + i[None, :])).expand(1, 1, 8, 8)
    torch.testing.assert_close(BlurPool2d(1, size)(checker), torch.zeros(1, 1, 4, 4))
    torch.testing.assert_close(Subsample2d()(checker), torch.ones(1, 1, 4, 4))  # aliased to a constant


def test_blur_size_2_is_average_pooling():
    x = torch.randn(2, 3, 9, 8, generator=_gen())
    torch.testing.assert_close(BlurPool2d(3, 2)(x), F.avg_pool2d(x, 2))


def test_blur_size_3_interior_value_by_hand():
    x = torch.randn(1, 1, 8, 8, generator=_gen())
    k = torch.tensor([1.0, 2.0, 1.0]) / 4
    out = BlurPool2d(1, 3)(x)
    # Output (i, j) is centred on input (2i, 2j): rows/cols 2i-1 .. 2i+1.
    expected = (torch.outer(k, k) * x[0, 0, 3:6, 1:4]).sum()
    torch.testing.assert_close(out[0, 0, 2, 1], expected)


def test_maxblurpool_is_stride1_max_then_blur():
    x = torch.randn(2, 3, 8, 7, generator=_gen())
    dense_max = F.max_pool2d(x, 2, stride=1)  # (2, 3, 7, 6)
    expected = BlurPool2d(3, 3, ceil_mode=True)(dense_max)
    torch.testing.assert_close(MaxBlurPool2d(3)(x), expected)
    assert expected.shape[-2:] == (4, 3)


def test_blur_operator_other_sizes_work_in_models():
    op = blur_operator(5, max_first=True)
    assert op.name == "maxblurpool5"
    model = create_model("lenet", downsample=op, seed=0, **SMALL)
    assert model(torch.randn(2, 1, 32, 32, generator=_gen())).shape == (2, 1)


# --- pooling: lppool, softpool, mixedpool -------------------------------------------------------


def test_lppool_known_window():
    x = torch.tensor([[[[3.0, 4.0], [0.0, 0.0]]]])
    assert LPPool2d()(x).item() == pytest.approx(5.0)
    assert LPPool2d()(-x).item() == pytest.approx(5.0)  # even power: sign does not matter


@pytest.mark.parametrize("p", [1, 3, 1.5])
def test_lppool_rejects_other_p(p):
    with pytest.raises(ValueError, match="p=2 only"):
        LPPool2d(p)


def test_lppool_gradient_at_all_zero_window_is_finite():
    x = torch.zeros(1, 1, 4, 4, requires_grad=True)
    LPPool2d()(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_softpool_matches_definition():
    x = torch.randn(2, 3, 6, 4, generator=_gen(), dtype=torch.float64)
    win = x.reshape(2, 3, 3, 2, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 2, 4)
    expected = (win.exp() * win).sum(-1) / win.exp().sum(-1)
    torch.testing.assert_close(SoftPool2d()(x), expected)


def test_softpool_window_with_one_huge_value_gives_that_value():
    x = torch.tensor([[[[1000.0, 0.0], [1.0, -2.0]]]])
    assert SoftPool2d()(x).item() == pytest.approx(1000.0)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_softpool_stays_between_mean_and_max_at_large_magnitude(scale):
    x = scale * torch.rand(2, 3, 6, 6, generator=_gen())
    out = SoftPool2d()(x)
    assert torch.isfinite(out).all()
    assert (out <= F.max_pool2d(x, 2) + 1e-3).all()
    assert (out >= F.avg_pool2d(x, 2) - 1e-3).all()


def test_mixedpool_at_init_is_mean_of_max_and_avg_and_gradient_by_hand():
    pool = MixedPool2d()
    pool.logit.data.fill_(3.0)
    pool.init_weights(_gen())  # resets to 0 without consuming randomness
    assert pool.alpha.item() == 0.5
    x = torch.randn(2, 3, 6, 6, generator=_gen())
    out = pool(x)
    torch.testing.assert_close(out, (F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)) / 2)
    out.sum().backward()
    # d/da [s(a) max + (1 - s(a)) avg] = s'(0) (max - avg) = (max - avg) / 4
    expected = ((F.max_pool2d(x, 2) - F.avg_pool2d(x, 2)) / 4).sum()
    torch.testing.assert_close(pool.logit.grad, expected)


# --- polyphase: aps, subsample -----------------------------------------------------------------


@pytest.mark.parametrize("phase", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_aps_picks_the_phase_containing_a_hot_pixel(phase):
    p, q = phase
    x = 0.01 * torch.rand(2, 3, 6, 6, generator=_gen())
    x[0, 1, 2 + p, 4 + q] = 10.0  # example 0: hot pixel in phase (p, q)
    x[1, 2, 1 - p, 1 - q] = 10.0  # example 1: hot pixel in the opposite phase
    out = AdaptivePolyphase2d()(x)
    torch.testing.assert_close(out[0], x[0, :, p::2, q::2])
    torch.testing.assert_close(out[1], x[1, :, 1 - p :: 2, 1 - q :: 2])
    assert out[0].max().item() == 10.0


def test_aps_is_shift_equivariant_under_circular_shifts_and_subsample_is_not():
    x = torch.rand(2, 3, 8, 8, generator=_gen())
    shifted = torch.roll(x, shifts=(1, 1), dims=(2, 3))
    for b in range(2):
        # A one-pixel shift permutes the phases; APS keeps the same content (circularly shifted).
        aps_values = torch.sort(AdaptivePolyphase2d()(x)[b].flatten()).values
        aps_shifted = torch.sort(AdaptivePolyphase2d()(shifted)[b].flatten()).values
        torch.testing.assert_close(aps_values, aps_shifted)
        sub = torch.sort(Subsample2d()(x)[b].flatten()).values
        sub_shifted = torch.sort(Subsample2d()(shifted)[b].flatten()).values
        assert not torch.equal(sub, sub_shifted)


def test_subsample_keeps_even_pixels_and_drops_odd_edge():
    x = torch.arange(7 * 5, dtype=torch.float32).reshape(1, 1, 7, 5)
    torch.testing.assert_close(Subsample2d()(x), x[..., 0:6:2, 0:4:2])


# --- space to depth -----------------------------------------------------------------------------


def test_spacetodepth_parameter_count():
    assert count_params(SpaceToDepth2d(6)) == space_to_depth_params(6) == 4 * 36
    base = count_params(create_model("lenet", downsample="avgpool", seed=0))
    s2d = count_params(create_model("lenet", downsample="spacetodepth", seed=0))
    assert s2d - base == 4 * 32**2 + 4 * 64**2 == 20_480


def test_spacetodepth_reproduces_subsample_and_avgpool_with_fixed_weights():
    c = 3
    x = torch.randn(2, c, 7, 6, generator=_gen())
    s2d = SpaceToDepth2d(c)
    with torch.no_grad():
        s2d.mix.weight.zero_()
        for ch in range(c):
            s2d.mix.weight[ch, 4 * ch] = 1.0  # phase (0, 0) of channel ch
    torch.testing.assert_close(s2d(x), Subsample2d()(x))
    with torch.no_grad():
        for ch in range(c):
            s2d.mix.weight[ch, 4 * ch : 4 * ch + 4] = 0.25
    torch.testing.assert_close(s2d(x), F.avg_pool2d(x, 2))
