"""Anti-aliased downsampling (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019).

Subsampling without a low-pass filter aliases: high frequencies fold into low ones, and the output
changes a lot when the input shifts by one pixel. Zhang's remedy keeps each operator's dense part
(max, convolution) at stride 1 and moves the factor-2 reduction into a fixed blur:

========================  =======================================================
standard operator          anti-aliased form
========================  =======================================================
AvgPool(2)                 BlurPool: binomial blur, then stride 2 (``blurpool``)
MaxPool(2)                 Max(k=2, stride 1), then BlurPool (``maxblurpool``)
Conv(stride 2) -> ReLU     Conv(stride 1) -> ReLU -> BlurPool
========================  =======================================================

In our LeNet every pooling operator already follows ``conv(stride 1) -> ReLU``, so the third row and
"BlurPool replacing AvgPool" build *the same network*: ``conv(stride 1) -> ReLU -> blurpool``. It is
registered once, as ``blurpool``; read a ``blurpool`` result as both the anti-aliased average pool and
the anti-aliased strided convolution (the latter costs 4x the convolution FLOPs of ``strided``, like
every pooling variant).

The filter is the outer product of a normalised binomial row (``[1, 1]/2``, ``[1, 2, 1]/4``,
``[1, 3, 3, 1]/8``, ``[1, 4, 6, 4, 1]/16`` for sizes 2-5), applied per channel (depthwise) after
reflect padding. Size 2 is the box filter, so ``BlurPool2d(c, 2)`` *is* ``nn.AvgPool2d(2)``. This
file is written from the paper's description; no code is taken from the reference implementation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from downscalexr.layers.downsample import Downsample, register_downsample

FILTER_SIZES = (2, 3, 4, 5)
DEFAULT_FILTER_SIZE = 3


def binomial_filter(size: int) -> torch.Tensor:
    """Normalised binomial row of length ``size``: row ``size - 1`` of Pascal's triangle / 2**(size - 1).

    Examples
    --------
    >>> binomial_filter(3)
    tensor([0.2500, 0.5000, 0.2500])
    """
    _check_filter_size(size)
    row = torch.tensor([math.comb(size - 1, i) for i in range(size)], dtype=torch.float64)
    return (row / row.sum()).to(torch.float32)


def _check_filter_size(size: int) -> None:
    if size not in FILTER_SIZES:
        raise ValueError(f"blur filter size must be one of {FILTER_SIZES}, got {size!r}")


class BlurPool2d(nn.Module):
    """Depthwise binomial blur with reflect padding, then stride 2.

    Parameters
    ----------
    channels : int
        Channels of the input; the fixed ``(channels, 1, k, k)`` filter is a non-persistent buffer, so
        the state dict has no extra keys and the module has no parameters.
    filter_size : {2, 3, 4, 5}
        Side ``k`` of the binomial filter.
    ceil_mode : bool
        Output side ``ceil(H/2)`` (pad ``k - 1`` in total) instead of ``floor(H/2)`` (pad ``k - 2``).
        Used by :class:`MaxBlurPool2d`, whose stride-1 max leaves ``H - 1`` rows, and
        ``ceil((H - 1)/2) == floor(H/2)``.

    Notes
    -----
    The top/left padding is ``(k - 1) // 2`` either way, so output ``i`` is centred on input row ``2i``
    for odd ``k`` and on ``2i + 0.5`` (like ``nn.AvgPool2d(2)``) for even ``k``. Reflect padding needs
    ``H, W > (k - 1) // 2``.
    """

    def __init__(self, channels: int, filter_size: int = DEFAULT_FILTER_SIZE, *, ceil_mode: bool = False):
        super().__init__()
        _check_filter_size(filter_size)
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = channels
        self.filter_size = filter_size
        self.ceil_mode = ceil_mode
        row = binomial_filter(filter_size)
        kernel = torch.outer(row, row).expand(channels, 1, filter_size, filter_size).contiguous()
        self.register_buffer("filter", kernel, persistent=False)  # (C, 1, k, k), sums to 1 per channel
        before = (filter_size - 1) // 2
        after = filter_size - 1 - before if ceil_mode else filter_size - 2 - before
        self.padding = (before, after, before, after)  # F.pad order: left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.padding):
            x = F.pad(x, self.padding, mode="reflect")
        return F.conv2d(x, self.filter, stride=2, groups=self.channels)  # (B, C, H/2, W/2)

    def extra_repr(self) -> str:
        return f"{self.channels}, filter_size={self.filter_size}, ceil_mode={self.ceil_mode}"


class MaxBlurPool2d(nn.Module):
    """Zhang's MaxBlurPool: max over 2x2 windows at stride 1, then :class:`BlurPool2d`.

    The dense max keeps max pooling's selectivity; the blur removes the aliasing that taking every
    second max would cause. Output side is ``floor(H/2)``, as for ``nn.MaxPool2d(2)``; no parameters.
    """

    def __init__(self, channels: int, filter_size: int = DEFAULT_FILTER_SIZE):
        super().__init__()
        self.max = nn.MaxPool2d(kernel_size=2, stride=1)
        self.blur = BlurPool2d(channels, filter_size, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.max(x))  # (B, C, H-1, W-1) -> (B, C, H/2, W/2)


def blur_operator(filter_size: int = DEFAULT_FILTER_SIZE, *, max_first: bool = False) -> Downsample:
    """An (unregistered) anti-aliased operator with the given filter size.

    The registry holds ``blurpool`` and ``maxblurpool`` with the default size 3 (the paper's
    "Tri-3"); other sizes are one call away and can be passed wherever an operator name is accepted,
    or registered: ``register_downsample(blur_operator(5))`` adds ``"blurpool5"``.

    Examples
    --------
    >>> blur_operator(5, max_first=True).name
    'maxblurpool5'
    """
    _check_filter_size(filter_size)
    base = "maxblurpool" if max_first else "blurpool"
    name = base if filter_size == DEFAULT_FILTER_SIZE else f"{base}{filter_size}"
    stage = "stride-1 2x2 max, then a " if max_first else ""
    note = (
        f"no parameters ({stage}{filter_size}x{filter_size} binomial blur held as a non-persistent "
        "buffer); parameter shapes identical to avgpool"
    )
    if max_first:
        return Downsample(name, 1, lambda channels: MaxBlurPool2d(channels, filter_size), note)
    return Downsample(name, 1, lambda channels: BlurPool2d(channels, filter_size), note)


register_downsample(blur_operator())
register_downsample(blur_operator(max_first=True))
