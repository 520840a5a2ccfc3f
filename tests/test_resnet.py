"""The residual family: registry-wide contracts over every operator, then hand-computed facts.

The registry-wide tests loop over ``list_downsample()``, so a newly registered operator gets the
build, forward, backward, optimiser-step, shape and seeded-initialisation checks for free.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from downscalexr.layers import get_downsample, list_downsample
from downscalexr.layers.polyphase import Subsample2d
from downscalexr.models import ResNet, count_params, create_model, list_models

OPERATORS = list_downsample()
FAMILIES = ["resnet8", "resnet14", "resnet20"]
SHAPES_IDENTICAL = "parameter shapes identical to avgpool"
IDENTICAL_OPS = [op for op in OPERATORS if SHAPES_IDENTICAL in get_downsample(op).params_note]
RGB = {"in_channels": 3, "num_outputs": 10, "input_size": 16}
GRAY = {"in_channels": 1, "num_outputs": 1, "input_size": 16}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _one_step(model: nn.Module, x: torch.Tensor, loss_fn) -> torch.Tensor:
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    out = model(x)
    loss_fn(out).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"
    opt.step()
    return out


# --- registry-wide -------------------------------------------------------------------------------


def test_families_are_registered():
    assert set(FAMILIES) <= set(list_models())


@pytest.mark.parametrize("shape", [RGB, GRAY], ids=["rgb10", "gray1"])
@pytest.mark.parametrize("op", OPERATORS)
def test_every_operator_builds_and_takes_one_finite_step(op, shape):
    model = create_model("resnet8", downsample=op, seed=0, **shape)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = 3.0 * torch.randn(4, shape["in_channels"], 16, 16, generator=_gen())  # half the pixels negative
    if shape["num_outputs"] == 1:
        y = torch.tensor([0.0, 1.0, 1.0, 0.0])
        out = _one_step(model, x, lambda o: F.binary_cross_entropy_with_logits(o[:, 0], y))
    else:
        y = torch.tensor([0, 3, 9, 3])
        out = _one_step(model, x, lambda o: F.cross_entropy(o, y))
    assert out.shape == (4, shape["num_outputs"])
    assert torch.isfinite(out).all()
    after = model.state_dict()
    for key, value in after.items():
        assert torch.isfinite(value.float()).all(), f"{op}: {key} not finite after one step"
    assert not torch.equal(after["stem.0.weight"], before["stem.0.weight"]), "the step changed nothing"
    model.eval()
    assert torch.isfinite(model(x)).all()  # running statistics usable after the step


@pytest.mark.parametrize("stem_down", [False, True])
@pytest.mark.parametrize("op", OPERATORS)
def test_every_operator_reaches_the_same_feature_shape(op, stem_down):
    model = create_model("resnet8", downsample=op, seed=0, stem_down=stem_down, **RGB)
    side = 16 // (8 if stem_down else 4)
    assert model.feature_shape == (64, side, side)
    with torch.no_grad():
        assert model.eval().features(torch.zeros(2, 3, 16, 16)).shape == (2, 64, side, side)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("op", IDENTICAL_OPS)
def test_same_seed_gives_bit_identical_weights_as_avgpool(op, family):
    reference = create_model(family, downsample="avgpool", seed=7, **RGB).state_dict()
    state = create_model(family, downsample=op, seed=7, **RGB).state_dict()
    assert state.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(state[key], value), f"{family}/{op}: {key} differs from avgpool at the same seed"


@pytest.mark.parametrize("op", OPERATORS)
def test_same_seed_same_model_and_output_different_seed_different(op):
    x = torch.randn(2, 3, 16, 16, generator=_gen(1))
    a, b = (create_model("resnet14", downsample=op, seed=3, **RGB).eval() for _ in range(2))
    c = create_model("resnet14", downsample=op, seed=4, **RGB).eval()
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert not torch.equal(a(x), c(x))


def test_building_does_not_touch_global_rng():
    state = torch.get_rng_state()
    create_model("resnet20", downsample="spacetodepth", seed=0, **RGB)
    assert torch.equal(torch.get_rng_state(), state)


# --- where the operator sits ---------------------------------------------------------------------


@pytest.mark.parametrize(("stem_down", "expected"), [(False, 4), (True, 5)])
def test_every_reduction_uses_the_operator_shortcuts_included(stem_down, expected):
    # Two stage transitions, each on the main path and the shortcut (+ the stem with stem_down).
    pooled = create_model("resnet20", downsample="avgpool", seed=0, stem_down=stem_down, **RGB)
    assert sum(isinstance(m, nn.AvgPool2d) for m in pooled.modules()) == expected
    assert all(m.stride == (1, 1) for m in pooled.modules() if isinstance(m, nn.Conv2d))
    strided = create_model("resnet20", downsample="strided", seed=0, stem_down=stem_down, **RGB)
    assert sum(m.stride == (2, 2) for m in strided.modules() if isinstance(m, nn.Conv2d)) == expected
    assert not any(isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)) for m in strided.modules())


def test_subsample_shortcut_is_the_strided_projection():
    # Every second pixel, then a 1x1 convolution == a 1x1 convolution at stride 2, with the same weights.
    sub = create_model("resnet8", downsample="subsample", seed=5, **RGB).eval()
    strided = create_model("resnet8", downsample="strided", seed=5, **RGB).eval()
    assert isinstance(sub.stage2[0].shortcut[0], Subsample2d)
    x = torch.randn(2, 16, 16, 16, generator=_gen(2))
    with torch.no_grad():
        torch.testing.assert_close(sub.stage2[0].shortcut(x), strided.stage2[0].shortcut(x))


# --- hand-computed parameter counts --------------------------------------------------------------


def _hand_count(blocks: int, c_in: int, k: int) -> int:
    """ResNet-(6n+2), widths 16/32/64, bias-free convs, BN (2 per channel), 1x1 projections, FC 64->k."""
    stem = c_in * 16 * 9 + 2 * 16
    same = {w: 2 * (w * w * 9 + 2 * w) for w in (16, 32, 64)}  # a block that keeps its width

    def reducing(a: int, b: int) -> int:
        return a * b * 9 + 2 * b + b * b * 9 + 2 * b + a * b + 2 * b

    stages = blocks * same[16] + reducing(16, 32) + (blocks - 1) * same[32]
    stages += reducing(32, 64) + (blocks - 1) * same[64]
    return stem + stages + 64 * k + k


@pytest.mark.parametrize(("family", "blocks"), [("resnet8", 1), ("resnet14", 2), ("resnet20", 3)])
@pytest.mark.parametrize("op", IDENTICAL_OPS)
def test_parameter_count_by_hand(family, blocks, op):
    assert _hand_count(1, 3, 10) == 78_042  # the model card's figure, by hand
    assert count_params(create_model(family, downsample=op, seed=0, **RGB)) == _hand_count(blocks, 3, 10)
    assert count_params(create_model(family, downsample=op, seed=0, **GRAY)) == _hand_count(blocks, 1, 1)


def test_spacetodepth_adds_four_c_squared_per_instance():
    base = count_params(create_model("resnet8", seed=0, **RGB))
    extra = 4 * (32**2 + 64**2) + 4 * (16**2 + 32**2)  # main paths at the output width, shortcuts at input
    assert count_params(create_model("resnet8", downsample="spacetodepth", seed=0, **RGB)) == base + extra
    stem = count_params(create_model("resnet8", downsample="spacetodepth", seed=0, stem_down=True, **RGB))
    assert stem == base + extra + 4 * 16**2


def test_mixedpool_adds_one_scalar_per_instance_and_keeps_shared_weights():
    reference = create_model("resnet8", downsample="avgpool", seed=7, **RGB).state_dict()
    state = create_model("resnet8", downsample="mixedpool", seed=7, **RGB).state_dict()
    extra = sorted(set(state) - set(reference))
    assert extra == [
        "stage2.0.down.logit",
        "stage2.0.shortcut.0.logit",
        "stage3.0.down.logit",
        "stage3.0.shortcut.0.logit",
    ]
    for key, value in reference.items():
        assert torch.equal(state[key], value), key


# --- errors and helpers --------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"input_size": 30}, "not divisible by 4"),
    ({"input_size": 20, "stem_down": True}, "not divisible by 8"),
    ({"input_size": 2}, ">= 4"),
    ({"blocks": 0}, "positive integer"),
    ({"widths": (16, 32)}, "three stage widths"),
])  # fmt: skip
def test_bad_arguments_explain_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNet("avgpool", **kwargs)


def test_unknown_operator_lists_valid_names():
    with pytest.raises(ValueError, match="choose from avgpool"):
        create_model("resnet8", downsample="maxx", seed=0)


def test_defaults_are_cifar_shaped():
    model = create_model("resnet20", seed=0)
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert model.feature_shape == (64, 8, 8)


def test_quant_fuse_groups_name_existing_modules_in_conv_bn_order():
    model = create_model("resnet14", downsample="strided", seed=0, **RGB)
    groups = model.quant_fuse_groups()
    assert len(groups) == 1 + 2 * 6 + 2  # stem, two per block, two projections
    for group in groups:
        modules = [model.get_submodule(name) for name in group]
        assert isinstance(modules[0], nn.Conv2d) and isinstance(modules[1], nn.BatchNorm2d)
        assert all(isinstance(m, nn.ReLU) and not m.inplace for m in modules[2:])
