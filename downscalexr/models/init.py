"""Seeded weight initialisation that never touches torch's global generator.

PyTorch modules draw their initial weights from the global RNG when constructed. We construct them
inside ``torch.random.fork_rng`` (global state restored afterwards) and then re-draw every weight from
an explicit generator, in module order. Two models whose parameter shapes and module order agree
therefore receive bit-identical weights from the same seed, whatever their downsampling operator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from downscalexr.seeding import torch_generator

M = TypeVar("M", bound=nn.Module)


def build_seeded(factory: Callable[[], M], seed: int) -> M:
    """Construct ``factory()`` without consuming global RNG state, then initialise it from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        model = factory()
    init_weights(model, torch_generator(seed, "init"))
    return model


@torch.no_grad()
def init_weights(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw the weights of ``model`` from ``generator`` with PyTorch's default schemes.

    Convolutions and linear layers get PyTorch's defaults (Kaiming-uniform with a = sqrt(5) for
    weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases). Any other module that defines
    ``init_weights(generator)`` is asked to initialise itself; parameter-free modules are untouched.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        elif module is not model and hasattr(module, "init_weights"):
            module.init_weights(generator)
    return model
