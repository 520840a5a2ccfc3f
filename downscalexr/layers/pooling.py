"""Pooling operators between max and average: LP pooling, SoftPool and learned mixed pooling.

Each pools the non-overlapping 2x2 windows (stride 2, floor on odd sizes, like ``nn.AvgPool2d(2)``):

- ``lppool``: the L2 norm of each window, ``sqrt(sum x**2)``; p = 2 sits between average (p = 1 on
  non-negative inputs, up to a factor 4) and max (p -> inf).
- ``softpool``: ``sum softmax(x) * x`` over each window (Stergiou et al., ICCV 2021): a smooth max
  that lets every element of the window receive gradient.
- ``mixedpool``: ``alpha * max + (1 - alpha) * avg`` with ``alpha = sigmoid(a)`` and one learned
  scalar ``a`` per layer (Lee et al., AISTATS 2016, "mixed" variant with a layer-wise mixing weight).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from downscalexr.layers._windows import windows_2x2
from downscalexr.layers.downsample import Downsample, register_downsample


class LPPool2d(nn.Module):
    """L2 pooling over 2x2 windows: ``sqrt(x00**2 + x01**2 + x10**2 + x11**2)``.

    Parameters
    ----------
    p : int
        Must be 2. The textbook LP pool ``(sum x**p) ** (1/p)`` -- what ``nn.LPPool2d`` computes --
        is not real-valued for odd or fractional ``p`` when a window sum is negative, and returns NaN
        there. In our LeNet the operator follows a ReLU, but the registry promises no NaN on any
        input; p = 2, the smallest even power, is defined everywhere and makes each output the
        Euclidean norm of its window.

    Notes
    -----
    The window *sum* (not mean) is used, as in ``nn.LPPool2d``: a constant window ``c`` gives ``2c``.
    No parameters.
    """

    def __init__(self, p: int = 2):
        super().__init__()
        if p != 2:
            raise ValueError(
                f"lppool supports p=2 only, got p={p!r}: (sum x**p)**(1/p) is NaN for odd or fractional p "
                "on windows with a negative sum"
            )
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # sqrt(4 * mean(x**2)) per window via the pooling kernel: several times faster than a norm over
        # a strided window view, and its gradient at an all-zero window is 0 (not NaN).
        return F.lp_pool2d(x, self.p, 2)  # (B, C, H/2, W/2)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SoftPool2d(nn.Module):
    """Softmax-weighted pooling over 2x2 windows: ``sum_i exp(x_i) x_i / sum_j exp(x_j)``.

    Numerically stable for any magnitude: the window maximum ``m`` is subtracted before ``exp``
    (``exp(x_i - m) <= 1``, and the largest term is exactly 1, so the denominator is >= 1). The
    result does not depend on ``m``, so ``m`` is detached and contributes no gradient. The output lies
    between the window mean and the window max. No parameters.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        win = windows_2x2(x)  # (B, C, h, 2, w, 2)
        with torch.no_grad():
            peak = F.max_pool2d(x, 2)  # (B, C, h, w)
        weight = torch.exp(win - peak[:, :, :, None, :, None])  # (B, C, h, 2, w, 2), each <= 1
        b, c, h, _, w, _ = weight.shape
        # Back to (B, C, 2h, 2w) so the window sums run in the pooling kernel rather than as a
        # reduction over strided dims (about 2x faster per training step).
        weight = weight.reshape(b, c, 2 * h, 2 * w)
        values = win.reshape(b, c, 2 * h, 2 * w)
        return F.avg_pool2d(weight * values, 2) / F.avg_pool2d(weight, 2)  # (B, C, h, w)


class MixedPool2d(nn.Module):
    """Learned convex mix of max and average pooling: ``sigmoid(a) * max + (1 - sigmoid(a)) * avg``.

    One scalar parameter ``a`` (``logit``) per layer, initialised to 0 so the layer starts at the
    equal mix ``(max + avg) / 2``. The initial value is a constant, not a random draw: building a
    model with ``mixedpool`` consumes no random numbers, so every other parameter gets the same seeded
    value as with ``avgpool``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.logit = nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def init_weights(self, generator: torch.Generator) -> None:
        """Reset ``a`` to 0 (alpha = 0.5); ``generator`` is accepted for the init protocol and unused."""
        self.logit.zero_()

    @property
    def alpha(self) -> torch.Tensor:
        """Weight of the max branch, in (0, 1)."""
        return torch.sigmoid(self.logit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha
        return alpha * F.max_pool2d(x, 2) + (1 - alpha) * F.avg_pool2d(x, 2)  # (B, C, H/2, W/2)


register_downsample(
    Downsample(
        "lppool",
        1,
        lambda channels: LPPool2d(2),
        "no parameters (L2 norm of each 2x2 window); parameter shapes identical to avgpool",
    )
)
register_downsample(
    Downsample(
        "softpool",
        1,
        lambda channels: SoftPool2d(),
        "no parameters (softmax-weighted 2x2 windows); parameter shapes identical to avgpool",
    )
)
register_downsample(
    Downsample(
        "mixedpool",
        1,
        lambda channels: MixedPool2d(),
        "1 learned scalar per layer (2 in LeNet), initialised to 0 without random draws; parameter "
        "shapes differ from avgpool by those scalars only, and the shared parameters get the same "
        "seeded initial values",
    )
)
