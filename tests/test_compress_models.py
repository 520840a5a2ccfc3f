"""The model families stay bit-identical after becoming quantization-friendly (ReLU modules, fuse groups)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from downscalexr.layers import list_downsample
from downscalexr.models import create_model

# The layout of LeNet's state dict before the change (read off the previous lenet.py): the ReLUs must add
# no entries, so stored runs and their run_ids keep their meaning.
LENET_KEYS = [
    "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "head.1.weight", "head.1.bias",
    "head.3.weight", "head.3.bias", "head.5.weight", "head.5.bias",
]  # fmt: skip


def previous_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """LeNet's forward as written before the change: ``torch.relu`` calls, no activation modules."""
    x = model.down1(torch.relu(model.conv1(x)))
    return model.head(model.down2(torch.relu(model.conv2(x))))


@pytest.mark.parametrize("family", ["lenet", "lenet_gap"])
@pytest.mark.parametrize("op", list_downsample())
def test_lenet_outputs_identical_to_previous_forward(family: str, op: str) -> None:
    model = create_model(family, downsample=op, seed=5, channels=(4, 8), input_size=24).eval()
    x = torch.randn(3, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(x), previous_forward(model, x))
        xcl = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(model(xcl), previous_forward(model, xcl))


def test_lenet_state_dict_keys_unchanged() -> None:
    assert list(create_model("lenet", downsample="avgpool", seed=0).state_dict()) == LENET_KEYS


@pytest.mark.parametrize("family", ["lenet", "lenet_gap", "mlp"])
def test_fuse_groups_name_layer_relu_pairs(family: str) -> None:
    options = {"input_size": 24, "channels": (4, 8)}
    model = create_model(family, seed=0, **options)
    groups = model.quant_fuse_groups()
    modules = dict(model.named_modules())
    for layer, act in groups:
        assert isinstance(modules[layer], (nn.Conv2d, nn.Linear)) and isinstance(modules[act], nn.ReLU)
    expected = {"lenet": 4, "lenet_gap": 2, "mlp": 2}[family]  # convs + hidden dense layers with a ReLU
    assert len(groups) == expected
