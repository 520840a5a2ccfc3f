"""Shift consistency (Zhang, ICML 2019): does the predicted class survive a small translation?

For each test image two shifts are drawn once per study (so the measurement is paired across
variants); consistency is the fraction of images whose predicted class is the same under both.
``circular`` shifts wrap pixels around; ``pad`` shifts move the image inside a zero-padded frame
(crop-with-padding), so content leaves at one side and zeros enter at the other.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from downscalexr.seeding import numpy_rng

MODES = ("circular", "pad")


def shift_pairs(n: int, image_size: int, max_fraction: float = 0.125, seed: int = 0) -> np.ndarray:
    """``n x 2 x 2`` integer shifts (pair, (dy, dx)), uniform in [-m, m], m = int(max_fraction * size)."""
    if not 0 <= max_fraction < 0.5:
        raise ValueError(f"max_fraction must be in [0, 0.5), got {max_fraction}")
    m = int(max_fraction * image_size)
    return numpy_rng(seed, "shift-pairs", n, image_size, m).integers(-m, m + 1, size=(n, 2, 2))


def shift_images(x: torch.Tensor, shifts: np.ndarray, mode: str = "circular") -> torch.Tensor:
    """Shift each image of ``x`` (N x C x H x W) by its own ``(dy, dx)`` from ``shifts`` (N x 2)."""
    if mode not in MODES:
        raise ValueError(f"unknown shift mode {mode!r}; choose from {', '.join(MODES)}")
    if len(shifts) != len(x):
        raise ValueError(f"{len(shifts)} shifts for {len(x)} images")
    out = torch.empty_like(x)
    h, w = x.shape[-2:]
    for i, (dy, dx) in enumerate(shifts.tolist()):
        if mode == "circular":
            out[i] = torch.roll(x[i], shifts=(dy, dx), dims=(-2, -1))
        else:
            p = max(abs(dy), abs(dx))
            padded = F.pad(x[i], (p, p, p, p))  # (C, H + 2p, W + 2p), zeros outside
            out[i] = padded[:, p - dy : p - dy + h, p - dx : p - dx + w]
    return out


@torch.no_grad()
def shift_consistency(
    model: nn.Module, x: torch.Tensor, pairs: np.ndarray, mode: str = "circular", batch_size: int = 32
) -> float:
    """Fraction of images of ``x`` whose predicted class is equal under the two shifts of ``pairs``."""
    was_training = model.training
    model.eval()
    preds = []
    for k in range(2):
        shifted = shift_images(x, pairs[:, k], mode)
        logits = torch.cat([model(shifted[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        preds.append((logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1))
    model.train(was_training)
    return float((preds[0] == preds[1]).double().mean())
