"""Synthetic edge images, generated directly as tensors.

Two generators:

- :func:`make_edges` / :func:`make_edges_splits` rebuild the edge-classification data of the
  well-known CNN inductive-bias homework (classes horizontal / vertical / diagonal / both / none on a
  flat background), with its train/validation **location shift** and a fixed **pixel permutation**.
- :func:`make_detection_splits` is the binary task that mirrors the chest X-ray setting: faint, short,
  partly occluded edge segments (positive, "abnormal") on a correlated-noise texture (negative,
  "normal"), with separate train/test prevalence and training-label noise.

Images are rasterised by distance to a line (or segment) on a pixel-centre grid, vectorised over the
batch in numpy (chunked to bound memory); no per-pixel Python loops and no PIL. Everything is a pure
function of the seeds: each split draws from its own named stream of :mod:`downscalexr.seeding`, so the
test set depends only on ``test_seed`` (and the generator parameters), never on the cell's ``seed``.

Geometry: a line at angle ``a`` (degrees, anticlockwise on screen from horizontal) has unit normal
``(sin a, cos a)`` in (column, row) coordinates measured from the image centre. A ``region`` ``(s, e)``
confines every edge pixel to the positions ``s .. e`` (fractions) of the image's inscribed disc along the
edge's normal: rows for horizontal edges, columns for vertical ones, the matching diagonal band otherwise.
"""

from __future__ import annotations

import functools
import math
from numbers import Integral, Real

import numpy as np
import scipy.fft
import torch
from scipy.special import ndtri

from downscalexr.data.base import ImageSplits
from downscalexr.seeding import numpy_rng

__all__ = [
    "EDGE_CLASSES",
    "EDGE_CLASSES_3",
    "EDGE_CLASSES_5",
    "DETECTION_CLASSES",
    "EDGE_TYPES",
    "make_edges",
    "make_edges_splits",
    "location_shift_regions",
    "pixel_permutation",
    "apply_permutation",
    "correlated_noise",
    "make_detection_splits",
]

EDGE_CLASSES = ("horizontal", "vertical", "diagonal", "both", "none")
EDGE_CLASSES_3 = ("horizontal", "vertical", "none")  # the homework's 3-class task
EDGE_CLASSES_5 = EDGE_CLASSES  # and its 5-class task
DETECTION_CLASSES = ("normal", "abnormal")  # label 1 = edge present = positive
EDGE_TYPES = ("horizontal", "vertical", "diagonal", "any")  # segment orientations in detection mode
_CHUNK_PIXELS = 1 << 22  # images are rasterised in chunks of about this many pixels


# --- argument checks ----------------------------------------------------------------------------------


def _count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _number(name: str, value, lo: float, hi: float, *, lo_open=False, hi_open=False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def _span(name: str, value, lo: float = 0.0, hi: float = math.inf, *, integer=False) -> tuple:
    """A ``(low, high)`` range with ``lo <= low <= high <= hi``; a single number means ``(v, v)``."""
    if isinstance(value, Real) and not isinstance(value, bool):
        value = (value, value)
    if not _is_seq(value) or len(value) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
    if integer:
        low, high = (_count(name, v, int(lo)) for v in value)
    else:
        low, high = (_number(name, v, lo, hi) for v in value)
    if low > high or high > hi:
        raise ValueError(f"{name} must satisfy {lo} <= low <= high <= {hi}, got {value!r}")
    return low, high


def _is_seq(value) -> bool:
    return isinstance(value, (tuple, list))


def _names(name: str, value, allowed: tuple[str, ...]) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    unknown = [v for v in names if v not in allowed]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(
            f"{name} must be distinct names from {', '.join(allowed)}; got {value!r}"
            + (f" (unknown: {', '.join(map(str, unknown))})" if unknown else "")
        )
    return names


def _region(region, image_size: int, max_width: float) -> tuple[float, float]:
    if region is None:
        return 0.0, 1.0
    if not _is_seq(region) or len(region) != 2:
        raise ValueError(f"region must be None or a (start_frac, end_frac) pair, got {region!r}")
    start, end = (_number("region", v, 0.0, 1.0) for v in region)
    if start >= end:
        raise ValueError(f"region start must be below its end, got {region!r}")
    if (end - start) * image_size < max_width + 1:
        raise ValueError(
            f"region {region!r} spans {(end - start) * image_size:.1f} pixels of a {image_size}-pixel "
            f"image, too narrow for edges up to {max_width} pixels wide; widen it or narrow the edges"
        )
    return start, end


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _centred_grid(size: int) -> np.ndarray:
    """Pixel-centre coordinates measured from the image centre, length ``size``."""
    return np.arange(size, dtype=np.float32) + np.float32(0.5 - size / 2)


def _unit_vectors(angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sin a, cos a)`` for angles in degrees; exact 0/1 at multiples of 90 (clean axis-aligned lines)."""
    rad = np.deg2rad(angle.astype(np.float64))
    sin, cos = np.sin(rad), np.cos(rad)
    sin[np.isclose(sin, 0.0, atol=1e-12)] = 0.0
    cos[np.isclose(cos, 0.0, atol=1e-12)] = 0.0
    return sin.astype(np.float32), cos.astype(np.float32)


def _chunks(n: int, size: int):
    step = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _balanced_labels(rng: np.random.Generator, counts) -> np.ndarray:
    """Shuffled labels with exactly ``counts[k]`` examples of class k."""
    return rng.permutation(np.repeat(np.arange(len(counts)), counts)).astype(np.int64)


# --- the homework's edge classes ----------------------------------------------------------------------


def _draw_lines(background, angle, rho, width, intensity, active, size: int) -> np.ndarray:
    """Rasterise straight lines across N images: (N,) background, (N, M) line parameters -> (N, H, W).

    A pixel belongs to line m when its centre is within ``width / 2`` of it; later lines overwrite
    earlier ones where they cross.
    """
    nx, ny = _unit_vectors(angle)  # (N, M) normal in (column, row) coordinates
    c = _centred_grid(size)
    out = np.empty((len(background), size, size), dtype=np.float32)
    for sl in _chunks(len(background), size):
        img = np.repeat(background[sl, None, None], size, axis=1).repeat(size, axis=2)  # (B, H, W)
        for m in range(angle.shape[1]):
            dist = c * nx[sl, m, None, None] + c[:, None] * ny[sl, m, None, None] - rho[sl, m, None, None]
            on = (np.abs(dist) < width[sl, m, None, None] / 2) & active[sl, m, None, None]
            np.copyto(img, np.broadcast_to(intensity[sl, m, None, None], img.shape), where=on)
        out[sl] = img
    return out


def _edges(n: int, rng: np.random.Generator, p: dict) -> tuple[torch.Tensor, torch.Tensor]:
    classes, size = p["classes"], p["image_size"]
    k, (e_lo, e_hi), (w_lo, w_hi) = len(classes), p["edges_per_image"], p["edge_width"]
    y = _balanced_labels(rng, [n // k + (i < n % k) for i in range(k)])
    kind = np.asarray(classes)[y][:, None]  # (N, 1)
    # Slots 0..e_hi-1 hold a class's edges; slots e_hi..2*e_hi-1 the vertical edges of "both".
    slot = np.arange(2 * e_hi)
    first = slot < e_hi
    n_first, n_second = rng.integers(e_lo, e_hi + 1, size=(2, n, 1))
    active = np.where(first, slot < n_first, slot - e_hi < n_second)
    active &= (first | (kind == "both")) & (kind != "none")
    diagonal = rng.choice(np.asarray(p["diagonal_angles"], dtype=np.float64), size=(n, 2 * e_hi))
    angle = np.select([kind == "vertical", kind == "diagonal"], [90.0, diagonal], 0.0)
    angle = np.where((kind == "both") & ~first, 90.0, angle)
    width = rng.integers(w_lo, w_hi + 1, size=(n, 2 * e_hi)).astype(np.float32)
    intensity = rng.uniform(*p["edge_intensity"], size=(n, 2 * e_hi)).astype(np.float32)
    background = rng.uniform(*p["background_intensity"], size=n).astype(np.float32)
    u = rng.random(size=(n, 2 * e_hi))
    # Offsets along the normal, inside the region band [lo, hi] of the inscribed disc.
    start, end = p["region"]
    lo, hi = start * size - size / 2, end * size - size / 2
    first_row, last_row = math.ceil(start * size), math.floor(end * size)  # axis-aligned: whole pixels
    row = first_row + np.floor(u * (last_row - first_row - width + 1))
    rho_axis = row + width / 2 - size / 2
    rho_diag = lo + width / 2 + u * (hi - lo - width)
    rho = np.where(angle % 90 == 0, rho_axis, rho_diag).astype(np.float32)
    x = _draw_lines(background, angle, rho, width, intensity, active, size)
    if p["noise"] > 0:
        x += np.float32(p["noise"]) * rng.standard_normal(size=x.shape, dtype=np.float32)
        np.clip(x, 0.0, 1.0, out=x)
    return torch.from_numpy(x[:, None]), torch.from_numpy(y)


def _edge_params(
    classes, image_size, edge_width, edge_intensity, background_intensity, edges_per_image,
    diagonal_angles, region, noise,
) -> dict:  # fmt: skip
    size = _count("image_size", image_size, 8)
    width = _span("edge_width", edge_width, 1, size // 2, integer=True)
    angles = tuple(_number("diagonal_angles", a, 0.0, 180.0, hi_open=True) for a in diagonal_angles)
    if not angles or any(a % 90 == 0 for a in angles):
        raise ValueError(f"diagonal_angles must be non-empty and avoid 0 and 90, got {diagonal_angles!r}")
    return {
        "classes": _names("classes", classes, EDGE_CLASSES),
        "image_size": size,
        "edge_width": width,
        "edge_intensity": _span("edge_intensity", edge_intensity, 0.0, 1.0),
        "background_intensity": _span("background_intensity", background_intensity, 0.0, 1.0),
        "edges_per_image": _span("edges_per_image", edges_per_image, 1, integer=True),
        "diagonal_angles": angles,
        "region": _region(region, size, width[1]),
        "noise": _number("noise", noise, 0.0, math.inf),
    }


def make_edges(
    n: int,
    *,
    classes=EDGE_CLASSES,
    image_size: int = 32,
    edge_width=(1, 3),
    edge_intensity=(0.6, 1.0),
    background_intensity=(0.0, 0.3),
    edges_per_image=(1, 2),
    diagonal_angles=(30, 45, 120, 135),
    region=None,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge images of the inductive-bias homework: bright straight edges on a flat background.

    Parameters
    ----------
    n : int
        Number of images; classes are balanced exactly (``n // k`` each, the remainder to the first
        classes) and shuffled.
    classes : names from ``EDGE_CLASSES``
        Label ``i`` is ``classes[i]``. ``"both"`` has horizontal and vertical edges, ``"none"`` none.
    image_size : int
        Height and width in pixels.
    edge_width, edges_per_image : (low, high) integer ranges, inclusive
        Edge width in pixels; number of edges per image ("both": that many of each orientation).
    edge_intensity, background_intensity : (low, high) ranges in [0, 1]
        Per-edge and per-image intensities, uniform.
    diagonal_angles : angles in degrees
        The angles a diagonal edge takes, uniformly.
    region : (start_frac, end_frac), optional
        Confine edges to this part of the image along their normal (the location shift; see the
        module docstring). ``None`` means anywhere.
    noise : float
        Standard deviation of additive Gaussian pixel noise (then clipped to [0, 1]); 0 for none.
    seed : int
        Same seed, same bytes.

    Returns
    -------
    x : float32 tensor, N x 1 x H x W, values in [0, 1]
    y : int64 tensor, N

    Examples
    --------
    >>> x, y = make_edges(10, classes=("horizontal", "none"), image_size=16, seed=1)
    >>> tuple(x.shape), x.dtype, y.bincount().tolist()
    ((10, 1, 16, 16), torch.float32, [5, 5])
    """
    p = _edge_params(
        classes, image_size, edge_width, edge_intensity, background_intensity, edges_per_image,
        diagonal_angles, region, noise,
    )  # fmt: skip
    return _edges(_count("n", n, 0), numpy_rng(seed, "edges"), p)


def location_shift_regions(r: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The homework's location shift: training edges in the first ``r`` of the image, the rest for
    evaluation. Returns ``(train_region, eval_region)`` for :func:`make_edges`."""
    r = _number("location_shift", r, 0.0, 1.0, lo_open=True, hi_open=True)
    return (0.0, r), (r, 1.0)


# --- fixed pixel permutation (the locality control) ----------------------------------------------------


def pixel_permutation(image_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random permutation of the ``image_size ** 2`` pixel positions and its inverse.

    Returns ``(perm, inverse)``, int64 tensors; ``apply_permutation(apply_permutation(x, perm), inverse)``
    equals ``x`` exactly.
    """
    size = _count("image_size", image_size)
    perm = torch.from_numpy(numpy_rng(seed, "pixel_permutation", size).permutation(size * size))
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(size * size)
    return perm, inverse


def apply_permutation(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Shuffle the pixels of every image of ``x`` (N x C x H x W) the same way: output pixel ``i`` (in
    row-major order) is input pixel ``perm[i]``."""
    n, c, h, w = x.shape
    if perm.shape != (h * w,):
        raise ValueError(f"permutation of length {tuple(perm.shape)} does not fit {h}x{w} images")
    return x.reshape(n, c, h * w)[:, :, perm].reshape(n, c, h, w)


def make_edges_splits(
    *,
    classes=EDGE_CLASSES_3,
    n_train: int = 3000,
    n_val: int = 600,
    n_test: int = 1000,
    image_size: int = 32,
    location_shift: float | None = None,
    permute: bool = False,
    permutation_seed: int = 0,
    edge_width=(1, 3),
    edge_intensity=(0.6, 1.0),
    background_intensity=(0.0, 0.3),
    edges_per_image=(1, 2),
    diagonal_angles=(30, 45, 120, 135),
    noise: float = 0.0,
    seed: int = 0,
    test_seed: int = 0,
) -> ImageSplits:
    """Train / validation / test splits of the homework's edge task (3-class by default; pass
    ``classes=EDGE_CLASSES_5`` for the 5-class task).

    With ``location_shift=r``, training edges lie in the first ``r`` of the image and validation
    *and test* edges in the rest: the test set is a second, independent sample of the shifted
    validation distribution. With ``permute=True`` every image of every split is shuffled by the
    same :func:`pixel_permutation` (seeded by ``permutation_seed``).

    Train and validation come from ``seed``; the test set comes from ``test_seed`` alone, so it is
    the same for every cell of a study. Other parameters are those of :func:`make_edges`.
    """
    params = {
        "classes": classes, "image_size": image_size, "edge_width": edge_width,
        "edge_intensity": edge_intensity, "background_intensity": background_intensity,
        "edges_per_image": edges_per_image, "diagonal_angles": diagonal_angles, "noise": noise,
    }  # fmt: skip
    if len(_names("classes", classes, EDGE_CLASSES)) < 2:
        raise ValueError(f"a classification task needs at least two classes, got {classes!r}")
    regions = (None, None) if location_shift is None else location_shift_regions(location_shift)
    sizes = {"train": _count("n_train", n_train), "val": _count("n_val", n_val)}
    sizes["test"] = _count("n_test", n_test)
    out = {}
    for split, region in zip(("train", "val", "test"), (regions[0], regions[1], regions[1]), strict=True):
        p = _edge_params(region=region, **params)
        rng = numpy_rng(test_seed if split == "test" else seed, "edges", split)
        out[split] = _edges(sizes[split], rng, p)
    perm = pixel_permutation(image_size, permutation_seed)[0] if permute else None
    if perm is not None:
        out = {k: (apply_permutation(x, perm), y) for k, (x, y) in out.items()}
    info = {
        "generator": "edges",
        **_jsonable(params),
        "location_shift": location_shift,
        "train_region": _jsonable(regions[0]),
        "eval_region": _jsonable(regions[1]),
        "test_distribution": "same as validation (location-shifted when location_shift is set)",
        "permute": bool(permute),
        "permutation_seed": permutation_seed,
        "n_train": sizes["train"],
        "n_val": sizes["val"],
        "n_test": sizes["test"],
        "seed": seed,
        "test_seed": test_seed,
    }
    return ImageSplits(*out["train"], *out["val"], *out["test"], class_names=tuple(p["classes"]), info=info)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- binary detection: faint segments on texture ------------------------------------------------------


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


def _segment_profile(dx, dy, angle, length, width) -> np.ndarray:
    """Anti-aliased segments in windows: pixel offsets from each segment's centre, ``dx`` (A, K)
    columns and ``dy`` (A, K) rows, -> coverage in [0, 1], (A, K, K)."""
    sin, cos = _unit_vectors(angle)
    ux, uy = cos[:, None, None], -sin[:, None, None]  # direction; rows grow downwards
    dx, dy = dx[:, None, :], dy[:, :, None]
    half = (length / 2)[:, None, None]
    t = np.clip(dx * ux + dy * uy, -half, half)  # position of the nearest point on the segment
    dist = np.hypot(dx - t * ux, dy - t * uy)
    return np.clip((width / 2 + 0.5)[:, None, None] - dist, 0.0, 1.0)


def _window(p: dict) -> int:
    """Side of the square window that holds one segment (and its anti-aliased rim)."""
    return math.ceil(p["segment_length"][1] + p["edge_width"][1]) + 4


def _detection_images(n: int, prevalence: float, rng: np.random.Generator, p: dict):
    size, (s_lo, s_hi), k = p["image_size"], p["segments_per_image"], _window(p)
    n_pos = _round_half_up(n * prevalence)
    y = _balanced_labels(rng, [n - n_pos, n_pos])
    shape = (n, s_hi)
    count = rng.integers(s_lo, s_hi + 1, size=(n, 1))
    active = (np.arange(s_hi) < count) & (y[:, None] == 1)
    kind = np.asarray(p["edge_types"])[rng.integers(0, len(p["edge_types"]), size=shape)]
    diagonal = rng.choice(np.asarray(p["diagonal_angles"], dtype=np.float64), size=shape)
    free = rng.uniform(0.0, 180.0, size=shape)
    angle = np.select([kind == "vertical", kind == "diagonal", kind == "any"], [90.0, diagonal, free], 0.0)
    length = rng.uniform(*p["segment_length"], size=shape).astype(np.float32)
    width = rng.uniform(*p["edge_width"], size=shape).astype(np.float32)
    contrast = rng.uniform(*p["edge_contrast"], size=shape).astype(np.float32)
    centre = rng.uniform(k / 2, size - k / 2, size=(2, *shape)).astype(np.float32)  # (column, row)
    corner = np.clip(np.floor(centre - k / 2), 0, size - k).astype(np.int64)  # window's first pixel
    background = rng.uniform(*p["background_intensity"], size=n).astype(np.float32)
    hidden_below = ndtri(p["occlusion"]) if p["occlusion"] > 0 else -np.inf
    steps = np.arange(k)
    x = np.empty((n, size, size), dtype=np.float32)
    for sl in _chunks(n, size):
        b = sl.stop - sl.start
        img = background[sl, None, None] + np.float32(p["texture_amplitude"]) * correlated_noise(
            rng, b, size, p["texture_correlation"]
        )
        if p["occlusion"] > 0:  # a second smooth field, per segment window, hides parts of it
            hider = correlated_noise(rng, b * s_hi, k, p["occlusion_correlation"]).reshape(b, s_hi, k, k)
            visible = (hider > hidden_below).astype(np.float32)
        for m in range(s_hi):
            local = np.flatnonzero(active[sl, m])  # (A,) images of the chunk with segment m
            i = local + sl.start
            cols, rows = corner[0, i, m, None] + steps, corner[1, i, m, None] + steps  # (A, K)
            dx, dy = cols + 0.5 - centre[0, i, m, None], rows + 0.5 - centre[1, i, m, None]
            seg = _segment_profile(dx, dy, angle[i, m], length[i, m], width[i, m])  # (A, K, K)
            seg *= contrast[i, m, None, None]
            if p["occlusion"] > 0:
                seg *= visible[local, m]
            img[local[:, None, None], rows[:, :, None], cols[:, None, :]] += seg
        if p["noise"] > 0:
            img += np.float32(p["noise"]) * rng.standard_normal(size=img.shape, dtype=np.float32)
        x[sl] = np.clip(img, 0.0, 1.0)
    return x, y


def make_detection_splits(
    *,
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 1000,
    image_size: int = 64,
    train_prevalence: float = 0.74,
    val_prevalence: float | None = None,
    test_prevalence: float = 0.625,
    label_noise: float = 0.0,
    edge_types=("any",),
    diagonal_angles=(30, 45, 120, 135),
    segments_per_image=(1, 1),
    segment_length=(10.0, 20.0),
    edge_width=(1.0, 2.5),
    edge_contrast=(0.35, 0.75),
    background_intensity=(0.35, 0.65),
    texture_amplitude: float = 0.08,
    texture_correlation: float = 1.5,
    occlusion: float = 0.2,
    occlusion_correlation: float = 2.0,
    noise: float = 0.0,
    permute: bool = False,
    permutation_seed: int = 0,
    seed: int = 0,
    test_seed: int = 0,
) -> ImageSplits:
    """Binary detection mirroring chest X-ray: is there a faint edge segment in the texture?

    Negatives ("normal", label 0) are a smooth random texture on a per-image background level;
    positives ("abnormal", label 1) add short, low-contrast, anti-aliased line segments, parts of which
    are hidden by a second random field. Each split holds exactly ``round(n * prevalence)`` positives
    (half up), shuffled.

    The difficulty knobs are ``edge_contrast``, ``segment_length``, ``edge_width``, ``occlusion``,
    ``texture_amplitude`` and ``texture_correlation``; their defaults are the values the embedded
    default study was calibrated with (edge contrast, segment length and occlusion are also set
    explicitly in ``experiments/studies/default.yaml``).

    Parameters
    ----------
    n_train, n_val, n_test : int
        Split sizes.
    train_prevalence, val_prevalence, test_prevalence : float in (0, 1)
        Positive fraction per split; validation defaults to the training prevalence.
    label_noise : float in [0, 1)
        Fraction of *training* labels flipped (exactly ``round(label_noise * n_train)``, chosen
        uniformly); validation and test labels stay clean. Images do not change with it.
    edge_types : names from ``EDGE_TYPES``
        Segment orientations, chosen uniformly per segment: horizontal, vertical, diagonal (one of
        ``diagonal_angles``) or any angle.
    segments_per_image : (low, high) ints
        Segments in a positive image.
    segment_length, edge_width : (low, high) in pixels
        Difficulty: shorter, thinner segments are harder to see.
    edge_contrast : (low, high)
        Difficulty: segment brightness above the texture.
    background_intensity : (low, high)
        Per-image mean level, so no single pixel value separates the classes.
    texture_amplitude, texture_correlation : float
        Difficulty: standard deviation of the texture, and its smoothness (Gaussian sigma, pixels);
        a texture correlated on the scale of the segment width masks segments best.
    occlusion, occlusion_correlation : float
        Expected fraction of each segment hidden (0 for none), and the smoothness of the hiding field.
    noise : float
        Standard deviation of additive white pixel noise. Images are clipped to [0, 1].
    permute, permutation_seed :
        Shuffle the pixels of every image by one fixed :func:`pixel_permutation`.
    seed : int
        Train and validation images, and the label noise.
    test_seed : int
        The test set, alone: it is identical for every ``seed`` (the study's fixed test set).

    Returns
    -------
    ImageSplits
        64 x 64 grayscale by default, ``class_names=("normal", "abnormal")``; ``info`` holds every
        generator parameter and the per-split positive counts (JSON-serialisable).
    """
    size = _count("image_size", image_size, 16)
    sizes = {s: _count(f"n_{s}", v) for s, v in (("train", n_train), ("val", n_val), ("test", n_test))}
    prevalence = {"train": train_prevalence, "test": test_prevalence}
    prevalence["val"] = train_prevalence if val_prevalence is None else val_prevalence
    prevalence = {
        s: _number(f"{s}_prevalence", prevalence[s], 0.0, 1.0, lo_open=True, hi_open=True)
        for s in ("train", "val", "test")
    }
    p = {
        "image_size": size,
        "edge_types": _names("edge_types", edge_types, EDGE_TYPES),
        "diagonal_angles": tuple(_number("diagonal_angles", a, 0.0, 180.0) for a in diagonal_angles),
        "segments_per_image": _span("segments_per_image", segments_per_image, 1, integer=True),
        "segment_length": _span(
            f"segment_length (at most image_size / 2 = {size / 2})", segment_length, 0.0, size / 2
        ),
        "edge_width": _span("edge_width", edge_width, 0.0, 4.0),
        "edge_contrast": _span("edge_contrast", edge_contrast, 0.0, 1.0),
        "background_intensity": _span("background_intensity", background_intensity, 0.0, 1.0),
        "texture_amplitude": _number("texture_amplitude", texture_amplitude, 0.0, 1.0),
        "texture_correlation": _number("texture_correlation", texture_correlation, 0.0, size / 4),
        "occlusion": _number("occlusion", occlusion, 0.0, 1.0, hi_open=True),
        "occlusion_correlation": _number("occlusion_correlation", occlusion_correlation, 0.0, size / 4),
        "noise": _number("noise", noise, 0.0, 1.0),
    }
    if not p["diagonal_angles"]:
        raise ValueError("diagonal_angles must not be empty")
    label_noise = _number("label_noise", label_noise, 0.0, 1.0, hi_open=True)
    out = {}
    for split in ("train", "val", "test"):
        rng = numpy_rng(test_seed if split == "test" else seed, "detection", split)
        x, y = _detection_images(sizes[split], prevalence[split], rng, p)
        out[split] = [torch.from_numpy(x[:, None]), torch.from_numpy(y)]
    n_positive = {s: int(out[s][1].sum()) for s in out}
    n_flips = _round_half_up(label_noise * sizes["train"])
    if n_flips:
        flip = numpy_rng(seed, "detection", "label_noise").choice(sizes["train"], n_flips, replace=False)
        out["train"][1][torch.from_numpy(flip)] ^= 1
    if permute:
        perm = pixel_permutation(size, permutation_seed)[0]
        out = {s: [apply_permutation(x, perm), y] for s, (x, y) in out.items()}
    info = {
        "generator": "detection",
        **_jsonable(p),
        "n_train": sizes["train"],
        "n_val": sizes["val"],
        "n_test": sizes["test"],
        "train_prevalence": prevalence["train"],
        "val_prevalence": prevalence["val"],
        "test_prevalence": prevalence["test"],
        "n_positive": n_positive,
        "label_noise": label_noise,
        "n_label_flips": n_flips,
        "positive_class": DETECTION_CLASSES[1],
        "permute": bool(permute),
        "permutation_seed": permutation_seed,
        "seed": seed,
        "test_seed": test_seed,
    }
    return ImageSplits(*out["train"], *out["val"], *out["test"], class_names=DETECTION_CLASSES, info=info)
