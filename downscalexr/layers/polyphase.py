"""Polyphase subsampling: plain stride-2 subsampling and adaptive polyphase sampling (APS).

A stride-2 subsampling of an image keeps one of four *phases* -- the pixels at (even, even),
(even, odd), (odd, even) or (odd, odd) positions. ``subsample`` always keeps phase (0, 0), with no
filtering, so a one-pixel shift of the input changes which pixels survive (maximal aliasing; the
control for the anti-aliased operators). ``aps`` (Chaman & Dokmanic, CVPR 2021) keeps, per example,
the phase with the largest L2 norm over all channels; a shift of the input permutes the phases, the
same phase content wins, and the output is shifted rather than changed (exactly so for circular
shifts of even-sized inputs, barring ties between phase norms).
"""

from __future__ import annotations

import torch
from torch import nn

from downscalexr.layers._windows import crop_even, like_input, windows_2x2
from downscalexr.layers.downsample import Downsample, register_downsample


class AdaptivePolyphase2d(nn.Module):
    """Adaptive polyphase sampling: per example, keep the stride-2 phase of largest L2 norm.

    The norm is taken over channels and space, so all channels of an example keep the same phase
    (as in the paper). Ties go to the first phase in the order (0,0), (0,1), (1,0), (1,1). The phase
    choice is not differentiable; the gradient flows to the kept pixels only. No parameters.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        win = windows_2x2(x)  # (B, C, h, 2, w, 2); phase (p, q) is win[:, :, :, p, :, q]
        energy = win.detach().pow(2).sum(dim=(1, 2, 4))  # (B, 2, 2)
        best = energy.flatten(1).argmax(dim=1)  # (B,), phase index 2p + q
        rows = torch.arange(x.shape[0], device=x.device)
        out = win[rows, :, :, best // 2, :, best % 2]  # (B, C, h, w)
        return like_input(out, x)


class Subsample2d(nn.Module):
    """Keep every second row and column, starting at (0, 0), with no filtering. No parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return like_input(crop_even(x)[..., ::2, ::2], x)  # (B, C, H/2, W/2)


register_downsample(
    Downsample(
        "aps",
        1,
        lambda channels: AdaptivePolyphase2d(),
        "no parameters (keeps the stride-2 phase of largest norm); parameter shapes identical to avgpool",
    )
)
register_downsample(
    Downsample(
        "subsample",
        1,
        lambda channels: Subsample2d(),
        "no parameters (every second pixel, no filtering); parameter shapes identical to avgpool",
    )
)
