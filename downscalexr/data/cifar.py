"""CIFAR-10's python-pickle batches (``cifar-10-batches-py/``) as :class:`ImageSplits`.

The "CIFAR-10 python version" archive unpacks to a folder holding ``data_batch_1`` ... ``data_batch_5``
(10,000 training images each), ``test_batch`` (10,000) and ``batches.meta`` (the class names). Each batch
is a pickled dict with ``b"data"`` (uint8 ``N x 3072``: the red, green and blue 32 x 32 planes, row-major),
``b"labels"`` (N ints in 0-9), ``b"batch_label"`` and ``b"filenames"``.

The batches are read with an unpickler that only builds plain containers and numpy arrays, so a
tampered file cannot run code. CIFAR-10 has no validation split: a stratified one is carved from the
training batches with the study's seed. Every example keeps its source, ``"data_batch_3[17]"`` (batch
file and index in it), in ``info["ids"]``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from downscalexr.data.base import ImageSplits
from downscalexr.data.cache import DataError
from downscalexr.data.splits import stratified_split

__all__ = ["BATCH_FILES", "CLASS_NAMES", "load_cifar10", "read_cifar10"]

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
BATCH_FILES = (*TRAIN_FILES, TEST_FILE)
FOLDER = "cifar-10-batches-py"
PIXELS = 3 * 32 * 32
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
WHERE_TO_GET = (
    "Download the 'CIFAR-10 python version' (cifar-10-python.tar.gz, 163 MB) from "
    "https://www.cs.toronto.edu/~kriz/cifar.html, unpack it (tar xzf cifar-10-python.tar.gz) and pass the "
    f"{FOLDER} folder or the folder holding it; see docs/real-data.md."
)

# What a CIFAR batch may ask the unpickler to build: numpy arrays (old and new numpy, pickle protocols
# 2 to 5) and, for files re-pickled with protocol 2 under Python 3, bytes. Nothing else is importable.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global but those a batch of numpy arrays needs."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a CIFAR batch")
        if module.startswith("numpy.core") and hasattr(np, "_core"):  # numpy 2 renamed numpy.core
            module = "numpy._core" + module[len("numpy.core") :]
        return super().find_class(module, name)


def _locate(path: str | os.PathLike) -> Path:
    """The folder holding the batches: ``path`` itself or its ``cifar-10-batches-py`` subfolder."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"CIFAR-10 folder {root} does not exist. {WHERE_TO_GET}")
    if root.is_file():
        what = "the unpacked archive" if root.name.endswith((".tar.gz", ".tgz")) else "a folder"
        raise DataError(f"{root} is a file; pass {what} instead. {WHERE_TO_GET}")
    return root / FOLDER if (root / FOLDER).is_dir() else root


def _unpickle(path: Path, problems: list[str]) -> tuple[dict | None, dict]:
    """The batch at ``path`` as a dict with str keys (or None after recording why), and its md5/size."""
    blob = path.read_bytes()
    stamp = {"md5": hashlib.md5(blob, usedforsecurity=False).hexdigest(), "bytes": len(blob)}
    try:
        raw = _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as err:  # truncated (EOFError, UnpicklingError), garbled, or refused globals
        problems.append(
            f"{path}: not a readable CIFAR-10 batch ({type(err).__name__}: {err}); the file is truncated "
            "or corrupt, unpack the archive again"
        )
        return None, stamp
    if not isinstance(raw, dict):
        problems.append(f"{path}: holds a {type(raw).__name__}, not the dict of a CIFAR-10 batch")
        return None, stamp
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in raw.items()}, stamp


def _batch_arrays(path: Path, batch: dict, problems: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """``(uint8 N x 3072 images, int64 N labels)`` of one batch, or None after recording why not."""
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        problems.append(f"{path}: missing key(s) {missing}; it has {sorted(batch)}")
        return None
    data, labels = batch["data"], np.asarray(batch["labels"])
    dtype, shape = getattr(data, "dtype", type(data).__name__), getattr(data, "shape", ())
    if not isinstance(data, np.ndarray) or dtype != np.uint8 or len(shape) != 2 or shape[1] != PIXELS:
        problems.append(
            f"{path}: data must be uint8 N x {PIXELS} (RGB planes of 32 x 32), got {dtype} {shape}"
        )
        return None
    if labels.ndim != 1 or len(labels) != len(data) or not np.issubdtype(labels.dtype, np.integer):
        problems.append(
            f"{path}: labels must be {len(data)} integers, one per image, got shape {labels.shape}"
        )
        return None
    bad = sorted(set(np.unique(labels).tolist()) - set(range(len(CLASS_NAMES))))
    if bad:
        problems.append(f"{path}: labels must lie in 0-9; found {bad[:10]}")
        return None
    return data, labels.astype(np.int64)


def _class_names(path: Path, problems: list[str]) -> tuple[str, ...]:
    meta, _ = _unpickle(path, problems)
    if meta is None:
        return CLASS_NAMES
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != len(CLASS_NAMES):
        problems.append(f"{path}: label_names must list {len(CLASS_NAMES)} class names, got {names!r:.80}")
        return CLASS_NAMES
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def read_cifar10(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read and check the six batches and the class names.

    Returns
    -------
    parts : dict
        ``{"train": (x, y, ids), "test": (x, y, ids)}``: uint8 ``N x 3 x 32 x 32`` images, int64 labels,
        and each image's source ``"<batch file>[<index>]"``; train is the five data batches in order.
    meta : dict
        ``path``, ``class_names``, and ``files``: each file's ``md5`` and ``bytes``.

    Raises
    ------
    DataError
        Naming every problem and its file: a missing folder or file, a truncated or corrupt batch,
        wrong keys, shapes or labels, a class absent from train or test.
    """
    root = _locate(path)
    absent = [name for name in (*BATCH_FILES, META_FILE) if not (root / name).is_file()]
    if absent:
        lines = [f"missing {root / name}" for name in absent]
        raise DataError(f"{len(absent)} CIFAR-10 file(s) missing in {root}. {WHERE_TO_GET}", lines)
    problems: list[str] = []
    files, arrays = {}, {}
    for name in BATCH_FILES:
        batch, files[name] = _unpickle(root / name, problems)
        arrays[name] = None if batch is None else _batch_arrays(root / name, batch, problems)
    class_names = _class_names(root / META_FILE, problems)
    parts = {}
    for split, names in (("train", TRAIN_FILES), ("test", (TEST_FILE,))):
        if any(arrays[n] is None for n in names):
            continue
        y = np.concatenate([arrays[n][1] for n in names])
        absent_classes = sorted(set(range(len(CLASS_NAMES))) - set(y.tolist()))
        if absent_classes:
            problems.append(f"the {split} batches have no image of class(es) {absent_classes}")
        x = np.concatenate([arrays[n][0] for n in names]).reshape(-1, 3, 32, 32)
        ids = [f"{n}[{i}]" for n in names for i in range(len(arrays[n][1]))]
        parts[split] = (x, y, ids)
    if problems:
        raise DataError(f"{len(problems)} problem(s) in CIFAR-10 folder {root}:", problems)
    return parts, {"path": str(root.resolve()), "class_names": list(class_names), "files": files}


def load_cifar10(path: str | os.PathLike, *, val_size: float | int = 0.1, seed: int = 0) -> ImageSplits:
    """Load CIFAR-10 as float RGB train / validation / test tensors.

    Parameters
    ----------
    path : path-like
        The ``cifar-10-batches-py`` folder, or the folder holding it.
    val_size : float or int
        Validation images carved from the 50,000 training images, stratified by class: a fraction
        (default 0.1, i.e. 5,000) or a count.
    seed : int
        Seed of the carved validation split; the registry passes the study's ``test_seed``, so it is
        the same for every cell of a study.

    Returns
    -------
    ImageSplits
        float32 ``N x 3 x 32 x 32`` in [0, 1], int64 labels 0-9, the class names of ``batches.meta``;
        ``info`` holds the files' md5 sums, class counts, how validation was made, and ``ids`` (each
        example's batch file and index).

    Raises
    ------
    DataError
        When the folder, a file or its contents are wrong (see :func:`read_cifar10`).
    ValueError
        For a ``val_size`` that leaves a class without training or validation images.
    """
    parts, meta = read_cifar10(path)
    x_pool, y_pool, id_pool = parts["train"]
    train, val = stratified_split(y_pool, val_size, seed)
    x_test, y_test, id_test = parts["test"]
    names = tuple(meta["class_names"])

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(x).float().div_(255.0), torch.from_numpy(
            y
        )  # one float32 copy, scaled in place

    labels = {"train": y_pool[train], "val": y_pool[val], "test": y_test}
    info = {
        "source": "cifar10",
        **meta,
        "counts": {s: {c: int((y == k).sum()) for k, c in enumerate(names)} for s, y in labels.items()},
        "val_source": f"carved: {len(val)} of the {len(y_pool)} training images, stratified by class "
        f"(seed {seed}); CIFAR-10 has no validation split of its own",
        "ids": {
            "train": [id_pool[i] for i in train],
            "val": [id_pool[i] for i in val],
            "test": list(id_test),
        },
    }
    return ImageSplits(
        *tensors(x_pool[train], labels["train"]),
        *tensors(x_pool[val], labels["val"]),
        *tensors(x_test, y_test),
        class_names=names,
        info=info,
    )
