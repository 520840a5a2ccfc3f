"""MedMNIST ``pneumoniamnist*.npz`` files as :class:`ImageSplits`.

A MedMNIST file holds six arrays: ``train_images``, ``val_images``, ``test_images`` (uint8
``N x H x W`` at 28, 64, 128 or 224 pixels) and ``train_labels``, ``val_labels``, ``test_labels``
(``N x 1``; 0 = normal, 1 = pneumonia). Any resolution is accepted, and optionally resized.
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

__all__ = ["KEYS", "load_npz", "read_npz"]

KEYS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))
WHERE_TO_GET = (
    "Download pneumoniamnist.npz (28 px) or pneumoniamnist_64/_128/_224.npz from the MedMNIST records "
    "on Zenodo (Yang et al., MedMNIST v2 / MedMNIST+); see docs/real-data.md."
)
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, as Pillow's RGB -> L


def _images(name: str, arr: np.ndarray, problems: list[str]) -> np.ndarray | None:
    """``arr`` as uint8 ``N x H x W``, or None after recording why it cannot be."""
    if arr.ndim == 4 and arr.shape[-1] in (1, 3):
        arr = arr[..., 0] if arr.shape[-1] == 1 else arr @ _LUMA
    if arr.ndim != 3 or arr.shape[1] < 1 or arr.shape[2] < 1:
        problems.append(f"{name} must be N x H x W (or N x H x W x 1|3), got shape {arr.shape}")
        return None
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


def _labels(name: str, arr: np.ndarray, n: int | None, problems: list[str]) -> np.ndarray | None:
    """``arr`` as int64 ``N``, or None after recording why it cannot be."""
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        problems.append(f"{name} must be N or N x 1 (one binary label per image), got shape {arr.shape}")
        return None
    if n is not None and len(arr) != n:
        problems.append(f"{name} has {len(arr)} labels but the images have {n}: lengths must match")
        return None
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.array_equal(arr, np.round(arr))):
            problems.append(f"{name} must be integers, got dtype {arr.dtype}")
            return None
    bad = sorted(set(np.unique(arr).tolist()) - {0, 1})
    if bad:
        problems.append(f"{name} must be 0 (normal) or 1 (pneumonia); found other values {bad[:10]}")
        return None
    return arr.astype(np.int64)


def read_npz(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read and validate a MedMNIST-format file.

    Returns
    -------
    parts : dict
        ``{split: (uint8 images N x H x W, int64 labels N)}`` for train, val and test.
    meta : dict
        ``path``, ``md5`` (MedMNIST publishes one per file), ``bytes`` and ``resolution`` ``(H, W)``.

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
    problems: list[str] = []
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        problems.append(f"missing keys {missing}; the file has {sorted(arrays)} (expected {list(KEYS)})")
    parts, shapes = {}, {}
    for split in SPLITS:
        x = y = None
        if f"{split}_images" in arrays:
            x = _images(f"{split}_images", arrays[f"{split}_images"], problems)
            if x is not None and len(x):
                shapes[split] = x.shape[1:]
        if f"{split}_labels" in arrays:
            y = _labels(f"{split}_labels", arrays[f"{split}_labels"], None if x is None else len(x), problems)
        if x is None or y is None:
            continue
        if split != "val" and len(y) == 0:
            problems.append(f"{split} split is empty")
        elif split != "val" and len(set(y.tolist())) < 2:
            problems.append(f"{split} split has only class {CLASS_NAMES[int(y[0])]}; both classes are needed")
        parts[split] = (x, y)
    if len(set(shapes.values())) > 1:
        problems.append(f"image sizes differ between splits: {shapes}")
    if problems:
        raise DataError(f"{len(problems)} problem(s) in MedMNIST file {path}:", problems)
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            md5.update(block)
    meta = {"path": str(path.resolve()), "md5": md5.hexdigest(), "bytes": path.stat().st_size}
    meta["resolution"] = list(next(iter(shapes.values())))
    return parts, meta


def _resize(images: np.ndarray, size: int, resize: str) -> np.ndarray:
    """uint8 ``N x H x W`` -> ``N x size x size`` with Pillow (antialiased when shrinking)."""
    if images.shape[1:] == (size, size):
        return images
    out = np.empty((len(images), size, size), dtype=np.uint8)
    for i, arr in enumerate(images):
        img = Image.fromarray(arr)
        if resize == "center-crop":
            w, h = img.size
            side = min(w, h)
            img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
        out[i] = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    return out


def load_npz(
    path: str | os.PathLike,
    size: int | None = None,
    resize: str = "stretch",
    *,
    min_val: int = 100,
    val_size: float | int = 0.1,
    seed: int = 0,
) -> ImageSplits:
    """Load a MedMNIST ``pneumoniamnist*.npz`` file as train / validation / test tensors.

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
        images) is kept with the default ``min_val=100``.

    Returns
    -------
    ImageSplits
        float32 ``N x 1 x size x size`` in [0, 1], int64 labels, ``class_names=("normal", "pneumonia")``.

    Raises
    ------
    DataError
        When the file is missing or malformed (see :func:`read_npz`).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "pneumoniamnist.npz"
    >>> arrays = {f"{s}_images": np.zeros((4, 28, 28), np.uint8) for s in ("train", "val", "test")}
    >>> arrays.update({f"{s}_labels": np.array([[0], [1], [0], [1]]) for s in ("train", "val", "test")})
    >>> np.savez(f, **arrays)
    >>> load_npz(f, min_val=2).x_test.shape
    torch.Size([4, 1, 28, 28])
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {resize!r}; choose from {', '.join(RESIZE_MODES)}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
        raise ValueError(f"size must be a positive integer or None, got {size!r}")
    parts, meta = read_npz(path)
    official = {s: {c: int((parts[s][1] == k).sum()) for k, c in enumerate(CLASS_NAMES)} for s in SPLITS}
    if size is not None:
        parts = {s: (_resize(x, int(size), resize), y) for s, (x, y) in parts.items()}
    ids = {s: [f"{s}_images[{i}]" for i in range(len(parts[s][1]))] for s in SPLITS}
    parts, ids, val_note = carve_validation(parts, ids, min_val, val_size, seed)

    def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = parts[split]
        return torch.from_numpy(x).unsqueeze(1).float().div_(255.0), torch.from_numpy(y)

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (tensors(s) for s in SPLITS)
    info = {
        "source": "npz",
        **meta,
        "size": int(x_tr.shape[-1]),
        "resize": resize if size is not None else "none",
        "official_counts": official,
        "counts": {s: {c: int((parts[s][1] == k).sum()) for k, c in enumerate(CLASS_NAMES)} for s in SPLITS},
        "val_source": val_note,
        "skipped": {"count": 0, "files": []},
        "duplicates": {"checked": False},
        "ids": ids,
    }
    return ImageSplits(x_tr, y_tr, x_va, y_va, x_te, y_te, CLASS_NAMES, info)
