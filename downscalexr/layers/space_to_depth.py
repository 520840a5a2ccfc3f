"""Space-to-depth downsampling: rearrange each 2x2 window into channels, then mix with a 1x1 conv.

``pixel_unshuffle(2)`` turns ``(B, C, H, W)`` into ``(B, 4C, H/2, W/2)`` without losing anything; a
learned 1x1 convolution ``4C -> C`` then decides how to combine the four pixels of each window (and
across channels). With suitable weights it reproduces average pooling (all four weights 1/4) or plain
subsampling (weight 1 on one phase), so it is the learned superset of the linear operators.

Parameter count: ``4 * C**2`` per layer (no bias: the layer after it is linear with its own bias, so a
bias here would be redundant). In the default ``lenet`` (C = 32, 64) that is 4,096 + 16,384 = 20,480
extra parameters; in ``downscalexr_lenet`` (C = 6, 16) 144 + 1,024 = 1,168. The 1x1 convolution is
initialised like every convolution, from the model's seeded generator in module order, so the layers
after the first ``spacetodepth`` receive different initial values than with ``avgpool``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from downscalexr.layers._windows import crop_even
from downscalexr.layers.downsample import Downsample, register_downsample


class SpaceToDepth2d(nn.Module):
    """``pixel_unshuffle(2)`` then a bias-free 1x1 convolution from ``4 * channels`` to ``channels``.

    Parameters
    ----------
    channels : int
        Channels in and out. Input channel ``4c + 2p + q`` of the 1x1 convolution is pixel ``(p, q)``
        of each 2x2 window of input channel ``c``.

    Notes
    -----
    An odd last row or column is dropped first, so the output side is ``floor(H/2)``.
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = channels
        self.mix = nn.Conv2d(4 * channels, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(crop_even(x), 2)  # (B, 4C, H/2, W/2)
        return self.mix(x)  # (B, C, H/2, W/2)


def space_to_depth_params(channels: int) -> int:
    """Parameters one :class:`SpaceToDepth2d` layer adds: ``4 * channels**2``."""
    return 4 * channels * channels


register_downsample(
    Downsample(
        "spacetodepth",
        1,
        SpaceToDepth2d,
        "4*C**2 parameters per layer (bias-free 1x1 conv 4C -> C; 20,480 in lenet, 1,168 in "
        "downscalexr_lenet); parameter shapes differ from avgpool, and the seeded initial values of "
        "the layers after it differ too",
    )
)
