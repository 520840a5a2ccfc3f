"""Static facts about a model: parameter count, forward FLOPs per image, size in bytes."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def model_bytes(model: nn.Module) -> int:
    """Bytes held by parameters and buffers (the size of a saved state dict, less metadata)."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


@torch.no_grad()
def forward_flops(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Forward FLOPs for one image of shape ``(C, H, W)``, as counted by ``FlopCounterMode``.

    FlopCounterMode counts a multiply-add as two FLOPs and covers convolutions and matrix products
    (pooling, activations and element-wise ops are not counted).
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, *input_shape))
    model.train(was_training)
    return float(counter.get_total_flops())
