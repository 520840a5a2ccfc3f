"""A fixed pixel permutation (the locality control): one shuffle of pixel positions for every image."""

from __future__ import annotations

import torch

from downscalexr.data.synthetic._checks import count
from downscalexr.seeding import numpy_rng

__all__ = ["apply_permutation", "pixel_permutation"]


def pixel_permutation(image_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random permutation of the ``image_size ** 2`` pixel positions and its inverse.

    Returns ``(perm, inverse)``, int64 tensors; ``apply_permutation(apply_permutation(x, perm), inverse)``
    equals ``x`` exactly.

    Examples
    --------
    >>> perm, inverse = pixel_permutation(4, seed=1)
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> torch.equal(apply_permutation(apply_permutation(x, perm), inverse), x)
    True
    """
    size = count("image_size", image_size)
    perm = torch.from_numpy(numpy_rng(seed, "pixel_permutation", size).permutation(size * size))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(size * size)
    return perm, inverse


def apply_permutation(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Shuffle the pixels of every image of ``x`` (N x C x H x W, any dtype) the same way: output pixel
    ``i`` (in row-major order) is input pixel ``perm[i]``."""
    n, c, h, w = x.shape
    if perm.shape != (h * w,):
        raise ValueError(f"permutation of length {tuple(perm.shape)} does not fit {h}x{w} images")
    return x.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w)
