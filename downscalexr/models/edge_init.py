"""Edge-detector initialisation of a model's first convolution (the ``init`` factor of a study).

The bank is first derivatives of a Gaussian: filter ``i`` responds to edges (lines of intensity
change) of orientation ``theta_i`` by differentiating across them,

    g(x, y) = -(x cos(phi) + y sin(phi)) / sigma**2 * exp(-(x**2 + y**2) / (2 sigma**2)),
    phi = theta_i + 90 degrees,

with ``x`` the column and ``y`` the row offset from the kernel centre (rows grow downwards), so
``theta = 0`` is a horizontal edge. ``sigma = kernel_size / 4`` (0.75 px for 3x3, Sobel-like; 1.25 px
for 5x5) keeps the Gaussian inside the kernel. Orientations are spread evenly over [0, 180) degrees,
each used twice with opposite signs (dark-to-light and light-to-dark, which a following ReLU tells
apart): filter ``i`` has orientation ``180 * (i // 2) / ceil(n / 2)`` and sign ``(-1) ** i``.

Each filter is scaled to the expected L2 norm of PyTorch's default initialisation of the same layer
(Kaiming-uniform with ``a = sqrt(5)``: ``U(-b, b)`` with ``b = 1 / sqrt(fan_in)``, so
``E|w|**2 = fan_in * b**2 / 3 = 1 / 3``), so training starts at the same weight scale as ``random``
and the learning rate means the same. Biases are set to zero. A filter over several input channels
repeats its pattern on each channel. The bank is deterministic: no seed is involved.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

EDGE_INITS = ("edge_frozen", "edge_trainable")


def edge_orientations(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Orientation (degrees, in [0, 180)) and sign (+1 / -1) of each of ``n`` filters of the bank."""
    if n < 1:
        raise ValueError(f"a filter bank needs at least one filter, got {n}")
    index = np.arange(n)
    angles = 180.0 * (index // 2) / math.ceil(n / 2)
    signs = np.where(index % 2 == 0, 1.0, -1.0)
    return angles, signs


def edge_filter_bank(
    out_channels: int, in_channels: int, kernel_size: int | tuple[int, int], sigma: float | None = None
) -> torch.Tensor:
    """The ``out_channels x in_channels x kh x kw`` bank of oriented derivative-of-Gaussian filters.

    Parameters
    ----------
    out_channels, in_channels : int
        Shape of the convolution's weight (``in_channels`` per group).
    kernel_size : int or (int, int)
    sigma : float, optional
        Gaussian width in pixels; default ``max(kh, kw) / 4``.

    Returns
    -------
    torch.Tensor
        float32, each filter scaled to L2 norm ``1 / sqrt(3)`` (the default initialisation's).

    Examples
    --------
    >>> bank = edge_filter_bank(8, 1, 5)
    >>> tuple(bank.shape), round(float(bank[0].norm()), 4)
    ((8, 1, 5, 5), 0.5774)
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if min(kh, kw) < 2:
        raise ValueError(f"edge filters need kernels of at least 2x2, got {kh}x{kw}")
    sigma = max(kh, kw) / 4 if sigma is None else sigma
    y, x = np.meshgrid(np.arange(kh) - (kh - 1) / 2, np.arange(kw) - (kw - 1) / 2, indexing="ij")
    gauss = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    angles, signs = edge_orientations(out_channels)
    bank = np.empty((out_channels, in_channels, kh, kw))
    for i, (theta, sign) in enumerate(zip(angles, signs, strict=True)):
        phi = math.radians(theta + 90.0)  # differentiate across the edge
        g = -(x * math.cos(phi) + y * math.sin(phi)) / sigma**2 * gauss
        g = g - g.mean()  # exactly zero-mean: a flat patch gives no response
        bank[i] = sign * g
    norms = np.sqrt((bank**2).sum(axis=(1, 2, 3), keepdims=True))
    return torch.from_numpy(bank / norms / math.sqrt(3)).float()


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """Name and module of the first ``nn.Conv2d`` of ``model`` in module order, or None without one."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    return None


@torch.no_grad()
def init_edge_detectors(model: nn.Module, *, trainable: bool = True) -> str:
    """Set the first convolution of ``model`` to :func:`edge_filter_bank` (bias zero), in place.

    With ``trainable=False`` its weight and bias stop requiring gradients: they stay ``None`` in
    training, and optimisers (Adam, SGD) skip parameters without a gradient, so the bank is kept
    bit-identical. Returns the convolution's module name.

    Raises
    ------
    ValueError
        If ``model`` has no ``nn.Conv2d``.
    """
    found = first_conv(model)
    if found is None:
        raise ValueError(
            f"{type(model).__name__} has no convolution to initialise with edge detectors; "
            "use init=random for it"
        )
    name, conv = found
    out_c, in_c, kh, kw = conv.weight.shape
    conv.weight.copy_(edge_filter_bank(out_c, in_c, (kh, kw)))
    if conv.bias is not None:
        conv.bias.zero_()
    for p in conv.parameters(recurse=False):
        p.requires_grad_(trainable)
    return name


def apply_init(model: nn.Module, init: str) -> nn.Module:
    """Apply a study's ``init`` level (``random`` leaves the seeded weights alone); return ``model``."""
    if init == "random":
        return model
    if init not in EDGE_INITS:
        raise ValueError(f"unknown init {init!r}; choose from random, {', '.join(EDGE_INITS)}")
    init_edge_detectors(model, trainable=init == "edge_trainable")
    return model
