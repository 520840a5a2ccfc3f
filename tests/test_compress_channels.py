"""Structured channel pruning: hand-counted parameters and FLOPs, the right channels, unsupported ops."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from downscalexr.compress import apply_compression
from downscalexr.compress import channels as channels_module
from downscalexr.compress._errors import UnsupportedCompression
from downscalexr.compress.channels import prune_channels
from downscalexr.models import create_model

INPUT = (1, 16, 16)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention on a shared machine
    yield
    torch.set_num_threads(threads)


def small_lenet(op: str = "avgpool") -> nn.Module:
    return create_model(
        "lenet", downsample=op, seed=3, channels=(10, 20), kernel_size=3, input_size=16, hidden=(12,)
    )


def test_params_and_flops_match_hand_count() -> None:
    parent = small_lenet()
    pruned, facts = apply_compression("prune_channels_30", parent, seed=0, input_shape=INPUT)
    # 30 % of 10 and 20 channels: 3 and 6 removed, 7 and 14 kept.
    # Sides: 16 -conv3-> 14 -pool-> 7 -conv3-> 5 -pool-> 2, so the flatten width is 14 * 2 * 2 = 56.
    params = (7 * 1 * 9 + 7) + (14 * 7 * 9 + 14) + (56 * 12 + 12) + (12 * 1 + 1)
    # FlopCounterMode: 2 FLOPs per multiply-add of convolutions and matrix products, biases not counted
    flops = 2 * (7 * 14 * 14 * 1 * 9) + 2 * (14 * 5 * 5 * 7 * 9) + 2 * 56 * 12 + 2 * 12 * 1
    parent_flops = 2 * (10 * 14 * 14 * 9) + 2 * (20 * 5 * 5 * 10 * 9) + 2 * 80 * 12 + 2 * 12
    assert facts["channels"] == {"conv1": [10, 7], "conv2": [20, 14]}
    assert sum(p.numel() for p in pruned.parameters()) == facts["params"] == params
    assert facts["flops"] == flops
    _, dense = apply_compression("none", parent, seed=0, input_shape=INPUT)
    assert dense["flops"] == parent_flops
    assert facts["state_dict_bytes"] < dense["state_dict_bytes"]


def test_removed_channels_are_those_of_smallest_l1_norm() -> None:
    parent = small_lenet()
    pruned, _ = apply_compression("prune_channels_30", parent, seed=0, input_shape=INPUT)
    norms = parent.conv1.weight.detach().abs().sum(dim=(1, 2, 3))
    kept = sorted(torch.argsort(norms, descending=True)[:7].tolist())
    assert torch.equal(pruned.conv1.weight, parent.conv1.weight[kept])
    assert torch.equal(pruned.conv1.bias, parent.conv1.bias[kept])
    assert pruned.conv2.weight.shape[1] == 7


@pytest.mark.parametrize(
    "op", ["avgpool", "maxpool", "strided", "subsample", "lppool", "mixedpool", "blurpool", "maxblurpool"]
)
def test_supported_operators_prune_and_match_the_masked_original(op: str) -> None:
    parent = small_lenet(op)
    pruned, facts = apply_compression("prune_channels_30", parent, seed=0, input_shape=INPUT)
    assert facts["status"] == "ok", facts["reason"]
    x = torch.randn(5, *INPUT, generator=torch.Generator().manual_seed(9))
    # independent of the library's own check: zero the kept model's inputs from removed conv1 channels
    reference = small_lenet(op)
    norms = parent.conv1.weight.detach().abs().sum(dim=(1, 2, 3))
    removed = torch.argsort(norms)[:3]
    norms2 = parent.conv2.weight.detach().abs().sum(dim=(1, 2, 3))
    removed2 = torch.argsort(norms2)[:6]
    with torch.no_grad():
        reference.conv2.weight[:, removed] = 0
        side = reference.feature_shape[1] * reference.feature_shape[2]
        cols = (removed2[:, None] * side + torch.arange(side)).flatten()
        reference.head[1].weight[:, cols] = 0
        assert torch.allclose(pruned(x), reference(x), atol=1e-5)


@pytest.mark.parametrize("op", ["aps", "softpool", "spacetodepth"])
def test_unprunable_operators_are_unsupported_with_reason(op: str) -> None:
    x = torch.randn(16, *INPUT, generator=torch.Generator().manual_seed(0))
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    model, facts = apply_compression("prune_channels_30_ft", small_lenet(op), seed=0, train_data=(x, y))
    assert model is None and facts["status"] == "unsupported"
    assert "Torch-Pruning" in facts["reason"]


def test_mlp_has_no_channels_to_prune() -> None:
    mlp = create_model("mlp", seed=0, input_size=16, hidden=(8,), match=None)
    model, facts = apply_compression("prune_channels_30", mlp, seed=0, input_shape=INPUT)
    assert model is None and "no convolution channels" in facts["reason"]


@pytest.mark.parametrize("op", ["blurpool", "spacetodepth"])
def test_blocklist_and_blur_pruner_are_needed(op: str, monkeypatch) -> None:
    # Without the list (spacetodepth) or the blur filter's pruner (blurpool), Torch-Pruning's cut breaks
    # the model; the forward check catches it.
    monkeypatch.setattr(channels_module, "UNPRUNABLE", {})
    monkeypatch.setattr(channels_module, "_customized_pruners", lambda tp: {})
    with pytest.raises(UnsupportedCompression, match="fails its forward pass"):
        prune_channels(small_lenet(op).eval(), 0.3, INPUT, seed=0)


def test_verification_catches_a_model_that_differs(monkeypatch) -> None:
    # If the reference were not masked like the cut model, the outputs differ and the level is refused.
    monkeypatch.setattr(channels_module, "_zero_inputs", lambda *args: None)
    with pytest.raises(UnsupportedCompression, match="differs from the original"):
        prune_channels(small_lenet().eval(), 0.3, INPUT, seed=0)
