"""The edge-classification data of the well-known CNN inductive-bias homework.

Classes horizontal / vertical / diagonal / both / none: bright straight edges on a flat background, with
the homework's train/validation **location shift** and its fixed **pixel permutation**. Lines are
rasterised by distance on a pixel-centre grid, vectorised over the batch (chunked to bound memory).

A ``region`` ``(s, e)`` confines every edge pixel to the positions ``s .. e`` (fractions) of the image's
inscribed disc along the edge's normal: rows for horizontal edges, columns for vertical ones, the
matching diagonal band otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import torch

from downscalexr.data.base import ImageSplits
from downscalexr.data.synthetic._checks import count, names, normalise, number, region, span
from downscalexr.data.synthetic._raster import balanced_labels, centred_grid, chunks, unit_vectors
from downscalexr.data.synthetic._task import SPLITS, SplitTask, assemble, resolve
from downscalexr.seeding import numpy_rng

__all__ = [
    "EDGE_CLASSES",
    "EDGE_CLASSES_3",
    "EDGE_CLASSES_5",
    "EdgeImages",
    "EdgesTask",
    "location_shift_regions",
    "make_edges",
    "make_edges_splits",
]

EDGE_CLASSES = ("horizontal", "vertical", "diagonal", "both", "none")
EDGE_CLASSES_3 = ("horizontal", "vertical", "none")  # the homework's 3-class task
EDGE_CLASSES_5 = EDGE_CLASSES  # and its 5-class task


@dataclass(frozen=True)
class EdgeImages:
    """How the edge images look: the parameters of :func:`make_edges`, checked on construction.

    Parameters
    ----------
    classes : names from ``EDGE_CLASSES``
        Label ``i`` is ``classes[i]``. ``"both"`` has horizontal and vertical edges, ``"none"`` none.
    image_size : int
        Height and width in pixels, at least 8.
    edge_width, edges_per_image : (low, high) integer ranges, inclusive
        Edge width in pixels (at most ``image_size // 2``); number of edges per image ("both": that
        many of each orientation).
    edge_intensity, background_intensity : (low, high) ranges in [0, 1]
        Per-edge and per-image intensities, uniform.
    diagonal_angles : angles in degrees, in [0, 180), not 0 or 90
        The angles a diagonal edge takes, uniformly.
    region : (start_frac, end_frac), optional
        Confine edges to this part of the image along their normal (the location shift; see the
        module docstring). ``None`` means anywhere.
    noise : float
        Standard deviation of additive Gaussian pixel noise (then clipped to [0, 1]); 0 for none.

    Raises
    ------
    ValueError
        Naming the parameter, the value and what is allowed.
    """

    classes: tuple[str, ...] = EDGE_CLASSES
    image_size: int = 32
    edge_width: tuple[int, int] = (1, 3)
    edge_intensity: tuple[float, float] = (0.6, 1.0)
    background_intensity: tuple[float, float] = (0.0, 0.3)
    edges_per_image: tuple[int, int] = (1, 2)
    diagonal_angles: tuple[float, ...] = (30.0, 45.0, 120.0, 135.0)
    region: tuple[float, float] | None = None
    noise: float = 0.0

    def __post_init__(self) -> None:
        size = count("image_size", self.image_size, 8)
        width = span("edge_width", self.edge_width, 1, size // 2, integer=True)
        angles = tuple(number("diagonal_angles", a, 0.0, 180.0, hi_open=True) for a in self.diagonal_angles)
        if not angles or any(a % 90 == 0 for a in angles):
            raise ValueError(
                f"diagonal_angles must be non-empty and avoid 0 and 90, got {self.diagonal_angles!r}"
            )
        band = None if self.region is None else region(self.region, size, width[1])
        normalise(
            self,
            classes=names("classes", self.classes, EDGE_CLASSES),
            image_size=size,
            edge_width=width,
            edge_intensity=span("edge_intensity", self.edge_intensity, 0.0, 1.0),
            background_intensity=span("background_intensity", self.background_intensity, 0.0, 1.0),
            edges_per_image=span("edges_per_image", self.edges_per_image, 1, integer=True),
            diagonal_angles=angles,
            region=band,
            noise=number("noise", self.noise, 0.0, math.inf),
        )


def location_shift_regions(r: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The homework's location shift: training edges in the first ``r`` of the image, the rest for
    evaluation. Returns ``(train_region, eval_region)`` for :class:`EdgeImages`."""
    r = number("location_shift", r, 0.0, 1.0, lo_open=True, hi_open=True)
    return (0.0, r), (r, 1.0)


def _draw_lines(background, angle, rho, width, intensity, active, size: int):
    """Rasterise straight lines across N images: (N,) background, (N, M) line parameters ->
    images (N, H, W) and masks (N, H, W) of the pixels any active line covers.

    A pixel belongs to line m when its centre is within ``width / 2`` of it; later lines overwrite
    earlier ones where they cross.
    """
    nx, ny = unit_vectors(angle)  # (N, M) normal in (column, row) coordinates
    c = centred_grid(size)
    out = np.empty((len(background), size, size), dtype=np.float32)
    masks = np.zeros((len(background), size, size), dtype=bool)
    for sl in chunks(len(background), size):
        img = np.repeat(background[sl, None, None], size, axis=1).repeat(size, axis=2)  # (B, H, W)
        for m in range(angle.shape[1]):
            dist = c * nx[sl, m, None, None] + c[:, None] * ny[sl, m, None, None] - rho[sl, m, None, None]
            on = (np.abs(dist) < width[sl, m, None, None] / 2) & active[sl, m, None, None]
            np.copyto(img, np.broadcast_to(intensity[sl, m, None, None], img.shape), where=on)
            masks[sl] |= on
        out[sl] = img
    return out, masks


def _edge_batch(n: int, rng: np.random.Generator, p: EdgeImages):
    """``n`` edge images: float32 (N, 1, H, W), int64 labels (N,), bool edge masks (N, H, W)."""
    classes, size = p.classes, p.image_size
    k, (e_lo, e_hi), (w_lo, w_hi) = len(classes), p.edges_per_image, p.edge_width
    y = balanced_labels(rng, [n // k + (i < n % k) for i in range(k)])
    kind = np.asarray(classes)[y][:, None]  # (N, 1)
    # Slots 0..e_hi-1 hold a class's edges; slots e_hi..2*e_hi-1 the vertical edges of "both".
    slot = np.arange(2 * e_hi)
    first = slot < e_hi
    n_first, n_second = rng.integers(e_lo, e_hi + 1, size=(2, n, 1))
    active = np.where(first, slot < n_first, slot - e_hi < n_second)
    active &= (first | (kind == "both")) & (kind != "none")
    diagonal = rng.choice(np.asarray(p.diagonal_angles, dtype=np.float64), size=(n, 2 * e_hi))
    angle = np.select([kind == "vertical", kind == "diagonal"], [90.0, diagonal], 0.0)
    angle = np.where((kind == "both") & ~first, 90.0, angle)
    width = rng.integers(w_lo, w_hi + 1, size=(n, 2 * e_hi)).astype(np.float32)
    intensity = rng.uniform(*p.edge_intensity, size=(n, 2 * e_hi)).astype(np.float32)
    background = rng.uniform(*p.background_intensity, size=n).astype(np.float32)
    u = rng.random(size=(n, 2 * e_hi))
    # Offsets along the normal, inside the region band [lo, hi] of the inscribed disc.
    start, end = p.region or (0.0, 1.0)
    lo, hi = start * size - size / 2, end * size - size / 2
    first_row, last_row = math.ceil(start * size), math.floor(end * size)  # axis-aligned: whole pixels
    row = first_row + np.floor(u * (last_row - first_row - width + 1))
    rho_axis = row + width / 2 - size / 2
    rho_diag = lo + width / 2 + u * (hi - lo - width)
    rho = np.where(angle % 90 == 0, rho_axis, rho_diag).astype(np.float32)
    x, masks = _draw_lines(background, angle, rho, width, intensity, active, size)
    if p.noise > 0:
        x += np.float32(p.noise) * rng.standard_normal(size=x.shape, dtype=np.float32)
        np.clip(x, 0.0, 1.0, out=x)
    return x[:, None], y, masks


def make_edges(n: int, images: EdgeImages | None = None, *, seed: int = 0, masks: bool = False, **options):
    """Edge images of the inductive-bias homework: bright straight edges on a flat background.

    Parameters
    ----------
    n : int
        Number of images; classes are balanced exactly (``n // k`` each, the remainder to the first
        classes) and shuffled.
    images : EdgeImages, optional
        The image parameters; or give them as keywords (``classes=..., image_size=...``), not both.
    seed : int
        Same seed, same bytes.
    masks : bool
        Also return the edge masks.
    **options
        Fields of :class:`EdgeImages`; an unknown name raises ``ValueError`` listing the valid ones.

    Returns
    -------
    x : float32 tensor, N x 1 x H x W, values in [0, 1]
    y : int64 tensor, N
    masks : bool tensor, N x H x W, only with ``masks=True``
        The pixels covered by an edge (none for class ``"none"``).

    Examples
    --------
    >>> x, y = make_edges(10, classes=("horizontal", "none"), image_size=16, seed=1)
    >>> tuple(x.shape), x.dtype, y.bincount().tolist()
    ((10, 1, 16, 16), torch.float32, [5, 5])
    """
    p = resolve(EdgeImages, images, options)
    x, y, m = _edge_batch(count("n", n, 0), numpy_rng(seed, "edges"), p)
    out = (torch.from_numpy(x), torch.from_numpy(y))
    return (*out, torch.from_numpy(m)) if masks else out


@dataclass(frozen=True)
class EdgesTask(SplitTask):
    """Train / validation / test splits of the edge task (fields of :class:`SplitTask` too).

    Parameters
    ----------
    n_train, n_val, n_test : int
        Split sizes (defaults 3000, 600, 1000).
    location_shift : float in (0, 1), optional
        Training edges in the first ``location_shift`` of the image, validation *and test* edges in the
        rest (:func:`location_shift_regions`). ``None``: no shift.
    images : EdgeImages
        The image parameters (3 classes by default); their ``region`` is set per split from
        ``location_shift`` and must be left at None.
    """

    n_train: int = 3000
    n_val: int = 600
    n_test: int = 1000
    location_shift: float | None = None
    images: EdgeImages = field(default_factory=lambda: EdgeImages(classes=EDGE_CLASSES_3))

    generator: ClassVar[str] = "edges"
    images_type: ClassVar[type] = EdgeImages
    image_defaults: ClassVar[dict] = {"classes": EDGE_CLASSES_3}
    image_fields_hidden: ClassVar[tuple[str, ...]] = ("region",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.images.classes) < 2:
            raise ValueError(f"a classification task needs at least two classes, got {self.images.classes!r}")
        if self.images.region is not None:
            raise ValueError("images.region is set per split from location_shift; leave it None")
        if self.location_shift is not None:
            normalise(self, location_shift=location_shift_regions(self.location_shift)[0][1])
        self.split_images()  # every split's band must be wide enough for the edges

    @property
    def regions(self) -> tuple:
        """``(train_region, eval_region)``: None each without a location shift."""
        return (None, None) if self.location_shift is None else location_shift_regions(self.location_shift)

    def split_images(self) -> dict[str, EdgeImages]:
        """The image parameters of each split (validation and test share the evaluation region)."""
        train, evaluation = self.regions
        bands = {"train": train, "val": evaluation, "test": evaluation}
        return {s: replace(self.images, region=bands[s]) for s in SPLITS}


def make_edges_splits(
    task: EdgesTask | None = None, *, seed: int = 0, test_seed: int = 0, **options
) -> ImageSplits:
    """Train / validation / test splits of the homework's edge task (3-class by default; pass
    ``classes=EDGE_CLASSES_5`` for the 5-class task).

    With ``location_shift=r``, training edges lie in the first ``r`` of the image and validation
    *and test* edges in the rest: the test set is a second, independent sample of the shifted
    validation distribution. With ``permute=True`` every image of every split is shuffled by the
    same :func:`~downscalexr.data.synthetic.pixel_permutation` (seeded by ``permutation_seed``).

    Parameters
    ----------
    task : EdgesTask, optional
        The settings; or give them as flat keywords (:meth:`EdgesTask.option_names`), not both.
    seed : int
        Train and validation images.
    test_seed : int
        The test set, alone: the same for every cell of a study.

    Returns
    -------
    ImageSplits
        ``masks_test`` holds each test image's edge pixels (permuted with the image).
    """
    task = resolve(EdgesTask, task, options)
    per_split = task.split_images()
    parts = {s: _edge_batch(task.sizes[s], task.rng(s, seed, test_seed), per_split[s]) for s in SPLITS}
    train_region, eval_region = task.regions
    info = {
        "generator": "edges",
        **task.image_info(),
        "location_shift": task.location_shift,
        "train_region": None if train_region is None else list(train_region),
        "eval_region": None if eval_region is None else list(eval_region),
        "test_distribution": "same as validation (location-shifted when location_shift is set)",
        **task.provenance(seed, test_seed),
    }
    return assemble(task, parts, task.images.classes, info)
