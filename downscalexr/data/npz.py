"""MedMNIST ``.npz`` files (any 2D data set: ``pneumoniamnist``, ``bloodmnist``, ...) as :class:`ImageSplits`.

A MedMNIST file holds six arrays: ``train_images``, ``val_images``, ``test_images`` (uint8, ``N x H x W``
for grayscale sets, ``N x H x W x 3`` for RGB ones such as ``bloodmnist``, at 28, 64, 128 or 224 pixels)
and ``train_labels``, ``val_labels``, ``test_labels`` (``N x 1`` class indices ``0 .. K-1``; for
``pneumoniamnist`` 0 = normal, 1 = pneumonia). Any resolution is accepted, and optionally resized.
Multi-label files (``chestmnist``: ``N x 14``) are not.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from downscalexr.data.base import ImageSplits
from downscalexr.data.cache import RESIZE_MODES, DataError
from downscalexr.data.folder import CLASS_NAMES, SPLITS, carve_validation

__all__ = ["COLORS", "KEYS", "load_npz", "read_npz"]

KEYS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))
COLORS = ("auto", "gray", "rgb")
WHERE_TO_GET = (
    "Download a MedMNIST file (pneumoniamnist.npz at 28 px, pneumoniamnist_64/_128/_224.npz, or another 2D "
    "set such as bloodmnist.npz) from the MedMNIST records on Zenodo (Yang et al., MedMNIST v2 / "
    "MedMNIST+); see docs/real-data.md."
)
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, as Pillow's RGB -> L


def _is_rgb(arr: np.ndarray) -> bool:
    return arr.ndim == 4 and arr.shape[-1] == 3


def _wants_rgb(arrays: dict, color: str) -> bool:
    """Whether to keep three channels: ``rgb``, or ``auto`` when every split's images are RGB."""
    if color not in COLORS:
        raise ValueError(f"unknown color mode {color!r}; choose from {', '.join(COLORS)}")
    images = [arrays[f"{s}_images"] for s in SPLITS if f"{s}_images" in arrays]
    return color == "rgb" or (color == "auto" and bool(images) and all(_is_rgb(a) for a in images))


def _as_uint8(name: str, arr: np.ndarray, problems: list[str]) -> np.ndarray | None:
    """``arr`` as uint8 (floats in [0, 1] scaled by 255, other values in [0, 255] rounded)."""
    if arr.dtype == np.uint8:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        problems.append(f"{name} must hold integers or floats, got dtype {arr.dtype}")
        return None
    if arr.size == 0:
        return arr.astype(np.uint8)
    if not np.isfinite(arr).all():
        problems.append(f"{name} holds NaN or infinite values")
        return None
    lo, hi = float(arr.min()), float(arr.max())
    if np.issubdtype(arr.dtype, np.floating) and lo >= 0 and hi <= 1:
        return np.rint(arr * 255).astype(np.uint8)
    if lo >= 0 and hi <= 255:
        return np.rint(arr).astype(np.uint8)
    problems.append(f"{name} values must lie in [0, 255] (or [0, 1] for floats), got [{lo:g}, {hi:g}]")
    return None


def _images(name: str, arr: np.ndarray, rgb: bool, problems: list[str]) -> np.ndarray | None:
    """``arr`` as uint8 ``N x H x W`` (or ``N x H x W x 3`` when ``rgb``), or None after recording why."""
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if _is_rgb(arr) and not rgb:
        arr = arr @ _LUMA
    if arr.ndim != 3 + _is_rgb(arr) or arr.shape[1] < 1 or arr.shape[2] < 1:
        problems.append(f"{name} must be N x H x W (or N x H x W x 1|3), got shape {arr.shape}")
        return None
    arr = _as_uint8(name, arr, problems)
    if arr is not None and rgb and arr.ndim == 3:  # a grayscale split of an RGB study: same value thrice
        arr = np.repeat(arr[..., None], 3, axis=-1)
    return arr


def _labels(name: str, arr: np.ndarray, n: int | None, problems: list[str]) -> np.ndarray | None:
    """``arr`` as int64 ``N`` of non-negative class indices, or None after recording why it cannot be."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        problems.append(
            f"{name} must be N or N x 1 (one class index per image; multi-label files such as chestmnist "
            f"are not supported), got shape {arr.shape}"
        )
        return None
    if n is not None and len(arr) != n:
        problems.append(f"{name} has {len(arr)} labels but the images have {n}: lengths must match")
        return None
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.array_equal(arr, np.round(arr))):
            problems.append(f"{name} must be integers, got dtype {arr.dtype}")
            return None
    if arr.size and arr.min() < 0:
        problems.append(f"{name} must be class indices 0 .. K-1; found negative values")
        return None
    return arr.astype(np.int64)


def _class_count(parts: dict, num_classes: int | None, problems: list[str]) -> int:
    """K: ``num_classes`` when given, else one more than the largest training label; checks every
    label is below K and that train and test hold every class."""
    if "train" not in parts:
        return num_classes or 0
    k = num_classes or int(parts["train"][1].max(initial=-1)) + 1
    binary = k <= 2 and num_classes is None  # PneumoniaMNIST's names, as before multi-class files
    for split, (_, y) in parts.items():
        beyond = sorted({int(v) for v in y if v >= k})
        present = set(y.tolist())
        if beyond:
            allowed = "0 (normal) or 1 (pneumonia)" if binary else f"0 .. {k - 1}"
            problems.append(
                f"{split}_labels must be {allowed}, the classes of the training labels or class_names; "
                f"found other values {beyond[:10]}"
            )
        elif split == "val":
            continue
        elif not present:
            problems.append(f"{split} split is empty")
        elif len(present) == 1:
            only = int(y[0])
            name = CLASS_NAMES[only] if binary else only
            problems.append(f"{split} split has only class {name}; every class is needed in train and test")
        elif absent := sorted(set(range(k)) - present):
            problems.append(f"{split} split has no example of class(es) {absent[:10]}")
    return k


def read_npz(
    path: str | os.PathLike, color: str = "auto", num_classes: int | None = None
) -> tuple[dict, dict]:
    """Read and validate a MedMNIST-format file.

    Parameters
    ----------
    path : path-like
    color : {"auto", "gray", "rgb"}
        ``auto`` keeps RGB when every split's images are RGB, else makes everything grayscale (luma);
        ``gray`` and ``rgb`` force one (grayscale images are repeated into three channels).
    num_classes : int, optional
        K; by default one more than the largest training label.

    Returns
    -------
    parts : dict
        ``{split: (uint8 images N x H x W, or N x H x W x 3, int64 labels N)}`` for train, val and test.
    meta : dict
        ``path``, ``md5`` (MedMNIST publishes one per file), ``bytes``, ``resolution`` ``(H, W)``,
        ``channels`` (1 or 3) and ``num_classes``.

    Raises
    ------
    DataError
        Listing every problem: unreadable file, missing keys, bad shapes, dtypes or label values,
        mismatched lengths, inconsistent resolutions, empty splits, or a class absent from train/test.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"MedMNIST file {path} does not exist. {WHERE_TO_GET}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as err:
        raise DataError(
            f"{path} is not a readable .npz file ({type(err).__name__}: {err}). {WHERE_TO_GET}"
        ) from err
    rgb = _wants_rgb(arrays, color)
    problems: list[str] = []
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        problems.append(f"missing keys {missing}; the file has {sorted(arrays)} (expected {list(KEYS)})")
    parts, shapes = {}, {}
    for split in SPLITS:
        x = y = None
        if f"{split}_images" in arrays:
            x = _images(f"{split}_images", arrays[f"{split}_images"], rgb, problems)
            if x is not None and len(x):
                shapes[split] = x.shape[1:3]
        if f"{split}_labels" in arrays:
            y = _labels(f"{split}_labels", arrays[f"{split}_labels"], None if x is None else len(x), problems)
        if x is not None and y is not None:
            parts[split] = (x, y)
    k = _class_count(parts, num_classes, problems)
    if len(set(shapes.values())) > 1:
        problems.append(f"image sizes differ between splits: {shapes}")
    if problems:
        raise DataError(f"{len(problems)} problem(s) in MedMNIST file {path}:", problems)
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            md5.update(block)
    meta = {"path": str(path.resolve()), "md5": md5.hexdigest(), "bytes": path.stat().st_size}
    meta |= {"resolution": list(next(iter(shapes.values()))), "channels": 3 if rgb else 1, "num_classes": k}
    return parts, meta


def _resize(images: np.ndarray, size: int, resize: str) -> np.ndarray:
    """uint8 ``N x H x W`` (or ``N x H x W x 3``) -> ``N x size x size`` (``x 3``) with Pillow
    (antialiased when shrinking)."""
    if images.shape[1:3] == (size, size):
        return images
    out = np.empty((len(images), size, size, *images.shape[3:]), dtype=np.uint8)
    for i, arr in enumerate(images):
        img = Image.fromarray(arr)
        if resize == "center-crop":
            w, h = img.size
            side = min(w, h)
            img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
        out[i] = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    return out


def _checked_names(class_names) -> tuple[str, ...] | None:
    if class_names is None:
        return None
    names = (class_names,) if isinstance(class_names, str) else tuple(class_names)
    if len(names) < 2 or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"class_names must be at least two distinct non-empty names, got {class_names!r}")
    return names


def load_npz(
    path: str | os.PathLike,
    size: int | None = None,
    resize: str = "stretch",
    *,
    min_val: int = 100,
    val_size: float | int = 0.1,
    color: str = "auto",
    class_names: list[str] | None = None,
    seed: int = 0,
) -> ImageSplits:
    """Load a MedMNIST ``.npz`` file (grayscale or RGB, two or more classes) as train / validation / test
    tensors.

    Parameters
    ----------
    path : path-like
        The ``.npz`` file.
    size : int, optional
        Output side length; None keeps the file's resolution.
    resize : {"stretch", "center-crop"}
        How non-square images reach ``size x size`` (MedMNIST images are square, so both agree).
    min_val, val_size, seed
        As in :func:`downscalexr.data.folder.load_folder`; MedMNIST's own validation split (524
        images in PneumoniaMNIST) is kept with the default ``min_val=100``.
    color : {"auto", "gray", "rgb"}
        Channels of the tensors (see :func:`read_npz`): ``auto`` keeps an RGB file's colour.
    class_names : list of str, optional
        One name per class index. By default a two-class file gets PneumoniaMNIST's
        ``("normal", "pneumonia")`` and a K-class file ``("class_0", ..., "class_<K-1>")``; the file
        does not store names (MedMNIST lists them in its ``INFO`` table).

    Returns
    -------
    ImageSplits
        float32 ``N x C x size x size`` in [0, 1] (C = 1 or 3), int64 labels; ``info["ids"]`` names
        each example's array and row, such as ``"test_images[12]"``.

    Raises
    ------
    DataError
        When the file is missing or malformed (see :func:`read_npz`).
    ValueError
        For a bad ``size``, ``resize``, ``color`` or ``class_names``.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "bloodmnist.npz"
    >>> arrays = {f"{s}_images": np.zeros((6, 28, 28, 3), np.uint8) for s in ("train", "val", "test")}
    >>> arrays.update({f"{s}_labels": np.array([[0], [1], [2]] * 2) for s in ("train", "val", "test")})
    >>> np.savez(f, **arrays)
    >>> data = load_npz(f, min_val=2)
    >>> data.x_test.shape, data.class_names
    (torch.Size([6, 3, 28, 28]), ('class_0', 'class_1', 'class_2'))
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {resize!r}; choose from {', '.join(RESIZE_MODES)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
        raise ValueError(f"size must be a positive integer or None, got {size!r}")
    names = _checked_names(class_names)
    parts, meta = read_npz(path, color, None if names is None else len(names))
    k = meta["num_classes"]
    names = names or (CLASS_NAMES if k == 2 else tuple(f"class_{i}" for i in range(k)))
    official = {s: {c: int((parts[s][1] == i).sum()) for i, c in enumerate(names)} for s in SPLITS}
    if size is not None:
        parts = {s: (_resize(x, int(size), resize), y) for s, (x, y) in parts.items()}
    ids = {s: [f"{s}_images[{i}]" for i in range(len(parts[s][1]))] for s in SPLITS}
    parts, ids, val_note = carve_validation(parts, ids, min_val, val_size, seed)

    def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = parts[split]
        x = torch.from_numpy(x)
        x = x.permute(0, 3, 1, 2) if x.ndim == 4 else x.unsqueeze(1)  # N x C x H x W
        return x.float().div_(255.0), torch.from_numpy(y)

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (tensors(s) for s in SPLITS)
    info = {
        "source": "npz",
        **meta,
        "size": int(x_tr.shape[-1]),
        "resize": resize if size is not None else "none",
        "color": color,
        "official_counts": official,
        "counts": {s: {c: int((parts[s][1] == i).sum()) for i, c in enumerate(names)} for s in SPLITS},
        "val_source": val_note,
        "skipped": {"count": 0, "files": []},
        "duplicates": {"checked": False},
        "ids": ids,
    }
    return ImageSplits(x_tr, y_tr, x_va, y_va, x_te, y_te, names, info)
