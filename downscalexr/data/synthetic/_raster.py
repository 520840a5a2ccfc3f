"""Rasterising helpers shared by the generators: pixel grids, batching, balanced labels, smooth noise.

Geometry: a line at angle ``a`` (degrees, anticlockwise on screen from horizontal) has unit normal
``(sin a, cos a)`` in (column, row) coordinates measured from the image centre.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import scipy.fft

__all__ = ["balanced_labels", "centred_grid", "chunks", "correlated_noise", "unit_vectors"]

CHUNK_PIXELS = 1 << 22  # images are rasterised in chunks of about this many pixels


def centred_grid(size: int) -> np.ndarray:
    """Pixel-centre coordinates measured from the image centre, length ``size``."""
    return np.arange(size, dtype=np.float32) + np.float32(0.5 - size / 2)


def unit_vectors(angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sin a, cos a)`` for angles in degrees; exact 0/1 at multiples of 90 (clean axis-aligned lines)."""
    rad = np.deg2rad(angle.astype(np.float64))
    sin, cos = np.sin(rad), np.cos(rad)
    sin[np.isclose(sin, 0.0, atol=1e-12)] = 0.0
    cos[np.isclose(cos, 0.0, atol=1e-12)] = 0.0
    return sin.astype(np.float32), cos.astype(np.float32)


def chunks(n: int, size: int, pixels: int = CHUNK_PIXELS) -> Iterator[slice]:
    """Slices of ``range(n)`` holding about ``pixels`` pixels of ``size x size`` images each."""
    step = max(1, pixels // (size * size))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def balanced_labels(rng: np.random.Generator, counts) -> np.ndarray:
    """Shuffled int64 labels with exactly ``counts[k]`` examples of class k."""
    return rng.permutation(np.repeat(np.arange(len(counts)), counts)).astype(np.int64)


@functools.lru_cache(maxsize=16)
def _gaussian_gain(size: int, correlation: float) -> np.ndarray:
    """Half-spectrum (``size x size//2+1``) of a Gaussian filter, scaled so filtered unit white noise
    has unit variance (Parseval: the variance is the mean squared gain over the full spectrum)."""
    f = np.fft.fftfreq(size)
    gain = np.exp(-2 * np.pi**2 * correlation**2 * (f[:, None] ** 2 + f[None, :] ** 2))  # (H, W)
    gain /= np.sqrt(np.mean(gain**2))
    return gain[:, : size // 2 + 1].astype(np.float32)


def correlated_noise(rng: np.random.Generator, n: int, size: int, correlation: float) -> np.ndarray:
    """Smooth random texture: white noise filtered by a Gaussian of standard deviation ``correlation``
    pixels (in the Fourier domain, so the texture wraps around), scaled to unit variance per pixel.

    Returns an ``n x size x size`` float32 array; ``correlation=0`` gives the white noise itself.
    """
    white = rng.standard_normal(size=(n, size, size), dtype=np.float32)
    if correlation == 0:
        return white
    spectrum = scipy.fft.rfft2(white)  # single precision, single thread: fast and repeatable
    return scipy.fft.irfft2(spectrum * _gaussian_gain(size, float(correlation)), s=(size, size))
