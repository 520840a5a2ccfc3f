"""Binary detection mirroring chest X-ray: is there a faint edge segment in the texture?

Negatives ("normal", label 0) are a smooth random texture on a per-image background level; positives
("abnormal", label 1) add short, low-contrast, anti-aliased line segments, parts of which are hidden by
a second random field. Every split draws from its own named random stream, so the test set depends only
on ``test_seed`` and the parameters, never on the cell's ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy.special import ndtri

from downscalexr.data.base import ImageSplits
from downscalexr.data.synthetic._checks import count, names, normalise, number, round_half_up, span
from downscalexr.data.synthetic._raster import balanced_labels, chunks, correlated_noise, unit_vectors
from downscalexr.data.synthetic._task import SPLITS, SplitTask, assemble, resolve
from downscalexr.seeding import numpy_rng

__all__ = ["DETECTION_CLASSES", "EDGE_TYPES", "DetectionImages", "DetectionTask", "make_detection_splits"]

DETECTION_CLASSES = ("normal", "abnormal")  # label 1 = edge present = positive
EDGE_TYPES = ("horizontal", "vertical", "diagonal", "any")  # segment orientations


@dataclass(frozen=True)
class DetectionImages:
    """How the detection images look, checked on construction.

    The difficulty knobs are ``edge_contrast``, ``segment_length``, ``edge_width``, ``occlusion``,
    ``texture_amplitude`` and ``texture_correlation``; their defaults are the values the embedded
    default study was calibrated with.

    Parameters
    ----------
    image_size : int
        Height and width in pixels, at least 16.
    edge_types : names from ``EDGE_TYPES``
        Segment orientations, chosen uniformly per segment: horizontal, vertical, diagonal (one of
        ``diagonal_angles``) or any angle.
    diagonal_angles : angles in degrees, in [0, 180]
    segments_per_image : (low, high) ints
        Segments in a positive image.
    segment_length, edge_width : (low, high) in pixels
        Shorter, thinner segments are harder to see; length at most ``image_size / 2``, width at most 4.
    edge_contrast : (low, high) in [0, 1]
        Segment brightness above the texture.
    background_intensity : (low, high) in [0, 1]
        Per-image mean level, so no single pixel value separates the classes.
    texture_amplitude : float in [0, 1]
        Standard deviation of the texture.
    texture_correlation, occlusion_correlation : float in [0, image_size / 4]
        Smoothness (Gaussian sigma, pixels) of the texture and of the hiding field; a texture
        correlated on the scale of the segment width masks segments best.
    occlusion : float in [0, 1)
        Expected fraction of each segment hidden (0 for none).
    noise : float in [0, 1]
        Standard deviation of additive white pixel noise. Images are clipped to [0, 1].
    """

    image_size: int = 64
    edge_types: tuple[str, ...] = ("any",)
    diagonal_angles: tuple[float, ...] = (30.0, 45.0, 120.0, 135.0)
    segments_per_image: tuple[int, int] = (1, 1)
    segment_length: tuple[float, float] = (10.0, 20.0)
    edge_width: tuple[float, float] = (1.0, 2.5)
    edge_contrast: tuple[float, float] = (0.35, 0.75)
    background_intensity: tuple[float, float] = (0.35, 0.65)
    texture_amplitude: float = 0.08
    texture_correlation: float = 1.5
    occlusion: float = 0.2
    occlusion_correlation: float = 2.0
    noise: float = 0.0

    def __post_init__(self) -> None:
        size = count("image_size", self.image_size, 16)
        angles = tuple(number("diagonal_angles", a, 0.0, 180.0) for a in self.diagonal_angles)
        if not angles:
            raise ValueError("diagonal_angles must not be empty")
        longest = f"segment_length (at most image_size / 2 = {size / 2})"
        normalise(
            self,
            image_size=size,
            edge_types=names("edge_types", self.edge_types, EDGE_TYPES),
            diagonal_angles=angles,
            segments_per_image=span("segments_per_image", self.segments_per_image, 1, integer=True),
            segment_length=span(longest, self.segment_length, 0.0, size / 2),
            edge_width=span("edge_width", self.edge_width, 0.0, 4.0),
            edge_contrast=span("edge_contrast", self.edge_contrast, 0.0, 1.0),
            background_intensity=span("background_intensity", self.background_intensity, 0.0, 1.0),
            texture_amplitude=number("texture_amplitude", self.texture_amplitude, 0.0, 1.0),
            texture_correlation=number("texture_correlation", self.texture_correlation, 0.0, size / 4),
            occlusion=number("occlusion", self.occlusion, 0.0, 1.0, hi_open=True),
            occlusion_correlation=number("occlusion_correlation", self.occlusion_correlation, 0.0, size / 4),
            noise=number("noise", self.noise, 0.0, 1.0),
        )

    @property
    def window(self) -> int:
        """Side of the square window that holds one segment (and its anti-aliased rim)."""
        return math.ceil(self.segment_length[1] + self.edge_width[1]) + 4


def _segment_profile(dx, dy, angle, length, width) -> np.ndarray:
    """Anti-aliased segments in windows: pixel offsets from each segment's centre, ``dx`` (A, K)
    columns and ``dy`` (A, K) rows, -> coverage in [0, 1], (A, K, K)."""
    sin, cos = unit_vectors(angle)
    ux, uy = cos[:, None, None], -sin[:, None, None]  # direction; rows grow downwards
    dx, dy = dx[:, None, :], dy[:, :, None]
    half = (length / 2)[:, None, None]
    t = np.clip(dx * ux + dy * uy, -half, half)  # position of the nearest point on the segment
    dist = np.hypot(dx - t * ux, dy - t * uy)
    return np.clip((width / 2 + 0.5)[:, None, None] - dist, 0.0, 1.0)


def _segments(n: int, y: np.ndarray, rng: np.random.Generator, p: DetectionImages) -> dict:
    """Every segment's parameters, ``(N, max segments)`` each; ``active`` marks the drawn ones."""
    size, (s_lo, s_hi), k = p.image_size, p.segments_per_image, p.window
    shape = (n, s_hi)
    n_segments = rng.integers(s_lo, s_hi + 1, size=(n, 1))
    kind = np.asarray(p.edge_types)[rng.integers(0, len(p.edge_types), size=shape)]
    diagonal = rng.choice(np.asarray(p.diagonal_angles, dtype=np.float64), size=shape)
    free = rng.uniform(0.0, 180.0, size=shape)
    out = {  # the draws below happen in this order
        "active": (np.arange(s_hi) < n_segments) & (y[:, None] == 1),
        "angle": np.select(
            [kind == "vertical", kind == "diagonal", kind == "any"], [90.0, diagonal, free], 0.0
        ),
        "length": rng.uniform(*p.segment_length, size=shape).astype(np.float32),
        "width": rng.uniform(*p.edge_width, size=shape).astype(np.float32),
        "contrast": rng.uniform(*p.edge_contrast, size=shape).astype(np.float32),
    }
    centre = rng.uniform(k / 2, size - k / 2, size=(2, *shape)).astype(np.float32)  # (column, row)
    out["centre"] = centre
    out["corner"] = np.clip(np.floor(centre - k / 2), 0, size - k).astype(np.int64)  # window's first pixel
    return out


def _detection_batch(n: int, prevalence: float, rng: np.random.Generator, p: DetectionImages):
    """``n`` images with exactly ``round(n * prevalence)`` positives: float32 (N, 1, H, W), int64 labels,
    and bool masks (N, H, W) of the pixels where a visible part of a segment adds brightness."""
    size, s_hi, k = p.image_size, p.segments_per_image[1], p.window
    n_pos = round_half_up(n * prevalence)
    y = balanced_labels(rng, [n - n_pos, n_pos])
    segs = _segments(n, y, rng, p)
    background = rng.uniform(*p.background_intensity, size=n).astype(np.float32)
    hidden_below = ndtri(p.occlusion) if p.occlusion > 0 else -np.inf
    steps = np.arange(k)
    x = np.empty((n, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    for sl in chunks(n, size):
        b = sl.stop - sl.start
        img = background[sl, None, None] + np.float32(p.texture_amplitude) * correlated_noise(
            rng, b, size, p.texture_correlation
        )
        if p.occlusion > 0:  # a second smooth field, per segment window, hides parts of it
            hider = correlated_noise(rng, b * s_hi, k, p.occlusion_correlation).reshape(b, s_hi, k, k)
            visible = (hider > hidden_below).astype(np.float32)
        for m in range(s_hi):
            local = np.flatnonzero(segs["active"][sl, m])  # (A,) images of the chunk with segment m
            i = local + sl.start
            corner, centre = segs["corner"][:, i, m, None], segs["centre"][:, i, m, None]
            cols, rows = corner[0] + steps, corner[1] + steps  # (A, K)
            dx, dy = cols + 0.5 - centre[0], rows + 0.5 - centre[1]
            seg = _segment_profile(dx, dy, segs["angle"][i, m], segs["length"][i, m], segs["width"][i, m])
            seg *= segs["contrast"][i, m, None, None]  # (A, K, K)
            if p.occlusion > 0:
                seg *= visible[local, m]
            img[local[:, None, None], rows[:, :, None], cols[:, None, :]] += seg
            masks[i[:, None, None], rows[:, :, None], cols[:, None, :]] |= seg > 0
        if p.noise > 0:
            img += np.float32(p.noise) * rng.standard_normal(size=img.shape, dtype=np.float32)
        x[sl] = np.clip(img, 0.0, 1.0)
    return x[:, None], y, masks


@dataclass(frozen=True)
class DetectionTask(SplitTask):
    """Train / validation / test splits of the detection task (fields of :class:`SplitTask` too).

    Parameters
    ----------
    n_train, n_val, n_test : int
        Split sizes (defaults 2000, 500, 1000).
    train_prevalence, val_prevalence, test_prevalence : float in (0, 1)
        Positive fraction per split; validation defaults to the training prevalence. Each split holds
        exactly ``round(n * prevalence)`` positives (half up), shuffled.
    label_noise : float in [0, 1)
        Fraction of *training* labels flipped (exactly ``round(label_noise * n_train)``, chosen
        uniformly); validation and test labels stay clean. Images do not change with it.
    images : DetectionImages
    """

    train_prevalence: float = 0.74
    val_prevalence: float | None = None
    test_prevalence: float = 0.625
    label_noise: float = 0.0
    images: DetectionImages = field(default_factory=DetectionImages)

    generator: ClassVar[str] = "detection"
    images_type: ClassVar[type] = DetectionImages

    def __post_init__(self) -> None:
        super().__post_init__()
        given = {"train": self.train_prevalence, "val": self.val_prevalence, "test": self.test_prevalence}
        given["val"] = self.train_prevalence if given["val"] is None else given["val"]
        checked = {
            f"{s}_prevalence": number(f"{s}_prevalence", given[s], 0.0, 1.0, lo_open=True, hi_open=True)
            for s in SPLITS
        }
        noise = number("label_noise", self.label_noise, 0.0, 1.0, hi_open=True)
        normalise(self, **checked, label_noise=noise)

    @property
    def prevalence(self) -> dict[str, float]:
        """``{split: positive fraction}``."""
        return {s: getattr(self, f"{s}_prevalence") for s in SPLITS}

    @property
    def n_label_flips(self) -> int:
        """How many training labels :attr:`label_noise` flips."""
        return round_half_up(self.label_noise * self.n_train)


def make_detection_splits(
    task: DetectionTask | None = None, *, seed: int = 0, test_seed: int = 0, **options
) -> ImageSplits:
    """Train / validation / test splits of the binary detection task (see the module docstring).

    Parameters
    ----------
    task : DetectionTask, optional
        The settings; or give them as flat keywords (:meth:`DetectionTask.option_names`: the fields of
        :class:`DetectionTask` and of :class:`DetectionImages`), not both.
    seed : int
        Train and validation images, and the label noise.
    test_seed : int
        The test set, alone: it is identical for every ``seed`` (the study's fixed test set).

    Returns
    -------
    ImageSplits
        64 x 64 grayscale by default, ``class_names=("normal", "abnormal")``; ``info`` holds every
        generator parameter and the per-split positive counts (JSON-serialisable); ``masks_test`` the
        visible segment pixels of each test image (none for negatives).

    Examples
    --------
    >>> s = make_detection_splits(n_train=20, n_val=10, n_test=10, image_size=32, segment_length=(4, 8))
    >>> s.input_shape, int(s.y_test.sum()), tuple(s.masks_test.shape)
    ((1, 32, 32), 6, (10, 32, 32))
    """
    task = resolve(DetectionTask, task, options)
    parts = {
        s: _detection_batch(task.sizes[s], task.prevalence[s], task.rng(s, seed, test_seed), task.images)
        for s in SPLITS
    }
    n_positive = {s: int(parts[s][1].sum()) for s in SPLITS}
    if task.n_label_flips:
        rng = numpy_rng(seed, "detection", "label_noise")
        parts["train"][1][rng.choice(task.n_train, task.n_label_flips, replace=False)] ^= 1
    info = {
        "generator": "detection",
        **task.image_info(),
        "n_train": task.n_train,
        "n_val": task.n_val,
        "n_test": task.n_test,
        **{f"{s}_prevalence": task.prevalence[s] for s in SPLITS},
        "n_positive": n_positive,
        "label_noise": task.label_noise,
        "n_label_flips": task.n_label_flips,
        "positive_class": DETECTION_CLASSES[1],
        **task.provenance(seed, test_seed),
    }
    return assemble(task, parts, DETECTION_CLASSES, info)
