"""An RGB multi-class task: one coloured shape or oriented grating per image, on coloured texture.

Up to ten classes (``SHAPE_CLASSES``): disc, ring, square, frame (a hollow square), triangle, diamond,
cross, saltire (a diagonal cross), and a disc filled with horizontal or vertical stripes. The class is
the shape alone: its colour, size, position and a small rotation are drawn independently of the class,
and the background is a per-channel level plus smooth texture and pixel noise, so no colour or
intensity statistic separates the classes. Pairs that differ in fine detail (disc / ring, square / frame,
hstripes / vstripes after a coarse downsampling) make the task hard for a small network at 32 x 32.

Difficulty, measured with the defaults (10 classes, 32 x 32): LeNet (16/32 channels) trained 15 epochs
(batch 32, Adam 0.002) reached test accuracy 68-84 % on 1,000 training images (avgpool 68 / 84,
maxpool 82 / 84, strided 67 / 73 for seeds 0 / 1) and 17-52 % on 250 (chance is 10 %).

Shapes are rasterised with 4 x 4 supersampling (anti-aliased edges): ``coverage`` in [0, 1] per pixel,
image = ``(1 - coverage) * background + coverage * colour``. The ground-truth mask is ``coverage > 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from downscalexr.data.base import ImageSplits
from downscalexr.data.synthetic._checks import count, names, normalise, number, span
from downscalexr.data.synthetic._raster import balanced_labels, chunks, correlated_noise
from downscalexr.data.synthetic._task import SPLITS, SplitTask, assemble, resolve

__all__ = ["SHAPE_CLASSES", "ShapeImages", "ShapesTask", "make_shapes_splits"]

_SQRT_HALF = math.sqrt(0.5)
_SUPERSAMPLE = 4  # sub-pixel samples per axis
_EXTENT = 1.15  # every shape lies within this many radii of its centre, at any rotation


def _stripes(a: np.ndarray, b: np.ndarray, along: np.ndarray) -> np.ndarray:
    """A unit disc holding three stripe periods across its diameter, stripes normal to ``along``."""
    return (a * a + b * b <= 1.0) & (np.cos(3.0 * np.pi * along) > 0.0)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A plus sign: two bars 0.56 wide and 1.9 long."""
    return (np.minimum(np.abs(a), np.abs(b)) <= 0.28) & (np.maximum(np.abs(a), np.abs(b)) <= 0.95)


def _frame(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A hollow square: the square of half-side 0.8 less the square of half-side 0.4."""
    edge = np.maximum(np.abs(u), np.abs(v))
    return (edge <= 0.8) & (edge >= 0.4)


# Each shape as an indicator of local coordinates (u to the right, v downwards), in units of its radius.
_INSIDE = {
    "disc": lambda u, v: u * u + v * v <= 1.0,
    "ring": lambda u, v: (u * u + v * v <= 1.0) & (u * u + v * v >= 0.55**2),
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.8,
    "frame": _frame,
    "triangle": lambda u, v: (v <= 0.5) & (v >= math.sqrt(3.0) * np.abs(u) - 1.0),  # apex up
    "diamond": lambda u, v: np.abs(u) + np.abs(v) <= 1.0,
    "cross": _cross,
    "saltire": lambda u, v: _cross((u + v) * _SQRT_HALF, (u - v) * _SQRT_HALF),
    "hstripes": lambda u, v: _stripes(u, v, v),
    "vstripes": lambda u, v: _stripes(u, v, u),
}
SHAPE_CLASSES = tuple(_INSIDE)


@dataclass(frozen=True)
class ShapeImages:
    """How the shape images look, checked on construction.

    Parameters
    ----------
    classes : names from ``SHAPE_CLASSES``
        Label ``i`` is ``classes[i]``; at least two.
    image_size : int
        Height and width in pixels, at least 16.
    shape_size : (low, high) in pixels
        Radius of the shape, uniform; at least 2 and at most ``(image_size - 2) / 2.3``, so that every
        shape lies inside the image at any rotation and leaves the outermost ring of pixels as background.
    rotation : float in [0, 45)
        Each shape is rotated by an angle uniform in ``[-rotation, rotation]`` degrees (below 45, so a
        square never becomes a diamond, nor a cross a saltire).
    contrast : (low, high) in [0, 1]
        Euclidean RGB distance between the shape's colour and the background level, uniform.
    background : (low, high) in [0, 1]
        Range of each channel's background level.
    texture_amplitude : float in [0, 1]
        Standard deviation of the smooth texture added to each channel of the background.
    texture_correlation : float in [0, image_size / 4]
        Its smoothness (Gaussian sigma, pixels).
    noise : float in [0, 1]
        Standard deviation of white pixel noise over the whole image, then clipped to [0, 1].
    """

    classes: tuple[str, ...] = SHAPE_CLASSES
    image_size: int = 32
    shape_size: tuple[float, float] = (6.0, 10.0)
    rotation: float = 15.0
    contrast: tuple[float, float] = (0.4, 0.8)
    background: tuple[float, float] = (0.2, 0.8)
    texture_amplitude: float = 0.03
    texture_correlation: float = 1.5
    noise: float = 0.03

    def __post_init__(self) -> None:
        size = count("image_size", self.image_size, 16)
        largest = (size - 2) / (2 * _EXTENT)
        classes = names("classes", self.classes, SHAPE_CLASSES)
        if len(classes) < 2:
            raise ValueError(f"a classification task needs at least two classes, got {self.classes!r}")
        normalise(
            self,
            classes=classes,
            image_size=size,
            shape_size=span(f"shape_size (radius, at most {largest:.2f} px)", self.shape_size, 2.0, largest),
            rotation=number("rotation", self.rotation, 0.0, 45.0, hi_open=True),
            contrast=span("contrast", self.contrast, 0.0, 1.0),
            background=span("background", self.background, 0.0, 1.0),
            texture_amplitude=number("texture_amplitude", self.texture_amplitude, 0.0, 1.0),
            texture_correlation=number("texture_correlation", self.texture_correlation, 0.0, size / 4),
            noise=number("noise", self.noise, 0.0, 1.0),
        )


def _coverage(kind: np.ndarray, cx, cy, radius, angle, size: int) -> np.ndarray:
    """Share of each pixel inside its image's shape: (B,) parameters -> (B, H, W) float32 in [0, 1]."""
    s = _SUPERSAMPLE
    fine = (np.arange(size * s, dtype=np.float32) + 0.5) / s  # sub-pixel centres, in pixels
    dx = (fine[None, None, :] - cx[:, None, None]) / radius[:, None, None]  # (B, 1, S)
    dy = (fine[None, :, None] - cy[:, None, None]) / radius[:, None, None]  # (B, S, 1)
    rad = np.deg2rad(angle).astype(np.float32)[:, None, None]
    cos, sin = np.cos(rad), np.sin(rad)
    u, v = cos * dx + sin * dy, cos * dy - sin * dx  # (B, S, S), rotated by ``angle``
    inside = np.zeros(u.shape, dtype=bool)
    for name in np.unique(kind):
        rows = np.flatnonzero(kind == name)
        inside[rows] = _INSIDE[str(name)](u[rows], v[rows])
    b = len(kind)
    return inside.reshape(b, size, s, size, s).mean(axis=(2, 4), dtype=np.float32)


def _shape_batch(n: int, rng: np.random.Generator, p: ShapeImages):
    """``n`` balanced, shuffled images: float32 (N, 3, H, W), int64 labels (N,), bool masks (N, H, W)."""
    size, k = p.image_size, len(p.classes)
    y = balanced_labels(rng, [n // k + (i < n % k) for i in range(k)])
    kind = np.asarray(p.classes)[y]
    radius = rng.uniform(*p.shape_size, size=n).astype(np.float32)
    angle = rng.uniform(-p.rotation, p.rotation, size=n)
    margin = _EXTENT * radius + 1.0  # the outermost ring of pixels stays background
    cx, cy = rng.uniform(margin, size - margin, size=(2, n)).astype(np.float32)
    level = rng.uniform(*p.background, size=(n, 3)).astype(np.float32)
    direction = np.abs(rng.standard_normal(size=(n, 3))) + 1e-6
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    away = np.where(level.mean(axis=1, keepdims=True) < 0.5, 1.0, -1.0)  # lighter on dark, darker on light
    contrast = rng.uniform(*p.contrast, size=(n, 1))
    colour = np.clip(level + contrast * direction * away, 0.0, 1.0).astype(np.float32)
    x = np.empty((n, 3, size, size), dtype=np.float32)
    masks = np.empty((n, size, size), dtype=bool)
    for sl in chunks(n, size * _SUPERSAMPLE):
        b = sl.stop - sl.start
        texture = correlated_noise(rng, b, size, p.texture_correlation)[:, None]  # (B, 1, H, W): all channels
        back = level[sl, :, None, None] + np.float32(p.texture_amplitude) * texture
        cover = _coverage(kind[sl], cx[sl], cy[sl], radius[sl], angle[sl], size)[:, None]  # (B, 1, H, W)
        img = back * (1 - cover) + colour[sl, :, None, None] * cover
        if p.noise > 0:
            img += np.float32(p.noise) * rng.standard_normal(size=img.shape, dtype=np.float32)
        x[sl] = np.clip(img, 0.0, 1.0)
        masks[sl] = cover[:, 0] > 0
    return x, y, masks


@dataclass(frozen=True)
class ShapesTask(SplitTask):
    """Train / validation / test splits of the shapes task (fields of :class:`SplitTask` too).

    Parameters
    ----------
    n_train, n_val, n_test : int
        Split sizes (defaults 2000, 500, 1000); classes are balanced exactly in each split.
    images : ShapeImages
    """

    images: ShapeImages = field(default_factory=ShapeImages)

    generator: ClassVar[str] = "shapes"
    images_type: ClassVar[type] = ShapeImages


def make_shapes_splits(
    task: ShapesTask | None = None, *, seed: int = 0, test_seed: int = 0, **options
) -> ImageSplits:
    """Train / validation / test splits of the RGB shapes task (see the module docstring).

    Parameters
    ----------
    task : ShapesTask, optional
        The settings; or give them as flat keywords (:meth:`ShapesTask.option_names`), not both.
    seed : int
        Train and validation images.
    test_seed : int
        The test set, alone: the same for every cell of a study.

    Returns
    -------
    ImageSplits
        float32 ``N x 3 x H x W`` in [0, 1], one class per entry of ``classes``; ``masks_test`` holds
        each test image's shape pixels.

    Examples
    --------
    >>> s = make_shapes_splits(n_train=40, n_val=20, n_test=20, classes=("disc", "ring", "cross"))
    >>> s.input_shape, s.num_classes, s.y_train.bincount().tolist()
    ((3, 32, 32), 3, [14, 13, 13])
    """
    task = resolve(ShapesTask, task, options)
    parts = {s: _shape_batch(task.sizes[s], task.rng(s, seed, test_seed), task.images) for s in SPLITS}
    info = {"generator": "shapes", **task.image_info(), **task.provenance(seed, test_seed)}
    return assemble(task, parts, task.images.classes, info)
