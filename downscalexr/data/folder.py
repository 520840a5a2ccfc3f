"""The pediatric chest X-ray folders of Kermany et al. (2018) as :class:`ImageSplits`.

Expected layout (the Kaggle ``chest-xray-pneumonia`` archive; names matched case-insensitively)::

    ROOT/train/NORMAL/*.jpeg   ROOT/train/PNEUMONIA/*.jpeg
    ROOT/val/NORMAL/*.jpeg     ROOT/val/PNEUMONIA/*.jpeg      (optional: the Mendeley release has none)
    ROOT/test/NORMAL/*.jpeg    ROOT/test/PNEUMONIA/*.jpeg

Images are decoded once through :mod:`downscalexr.data.cache`. NORMAL is label 0 and PNEUMONIA label 1
(the positive class). The official validation split has 16 images; when the validation split has fewer
than ``min_val`` images it is merged into train and a stratified, seeded validation set is carved out of
the pool. The test split is never resampled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from downscalexr.data.base import ImageSplits
from downscalexr.data.cache import DataError, cached_preprocess
from downscalexr.data.splits import stratified_split

__all__ = [
    "CLASS_NAMES",
    "Layout",
    "carve_validation",
    "load_folder",
    "discover",
    "average_hash",
    "difference_hash",
    "find_duplicates",
]

CLASS_NAMES = ("normal", "pneumonia")
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
WHERE_TO_GET = (
    "Obtain the data from Kaggle ('chest-xray-pneumonia' by Paul Mooney) or Mendeley Data (Kermany et al. "
    "2018, 'Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images for Classification'), unpack "
    "it and pass the folder that holds train/ and test/, each with NORMAL/ and PNEUMONIA/ inside. "
    "See docs/real-data.md."
)


def _child_dirs(folder: Path, wanted: tuple[str, ...], problems: list[str]) -> Path | None:
    """The subdirectory of ``folder`` whose name is one of ``wanted``, ignoring case."""
    hits = [d for d in sorted(folder.iterdir()) if d.is_dir() and d.name.lower() in wanted]
    if len(hits) > 1:
        problems.append(
            f"{folder}: several folders match {wanted[0]!r} ignoring case: {[d.name for d in hits]}"
        )
    return hits[0] if hits else None


def _suggest(root: Path) -> str:
    """Folders below ``root`` (3 levels deep at most) that look like the expected root."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= 3:
            dirnames.clear()
        if {"train", "test"} <= {d.lower() for d in dirnames} and Path(dirpath) != root:
            found.append(dirpath)
    return f" Did you mean {' or '.join(found[:3])}?" if found else ""


@dataclass
class Layout:
    """What :func:`discover` found under a root folder.

    ``files`` is ``{split: {class_name: [Path, ...]}}`` (JPEG/PNG files sorted by name; a missing
    folder is absent). ``problems`` are structural (missing, ambiguous or empty folders) and always
    fatal; ``bad_files`` are non-image files, skipped under ``skip_bad``; ``ignored`` are hidden files
    (``.DS_Store``) and unexpected folders (``__MACOSX``), skipped without complaint.
    """

    files: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    bad_files: list = field(default_factory=list)
    ignored: list = field(default_factory=list)


def discover(root: str | os.PathLike) -> Layout:
    """Find the split and class folders (ignoring case) and list their image files.

    Parameters
    ----------
    root : path-like
        The folder holding ``train/``, ``test/`` and optionally ``val/``.

    Returns
    -------
    Layout

    Raises
    ------
    DataError
        When ``root`` is not a directory.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"chest X-ray folder {root} does not exist or is not a directory. {WHERE_TO_GET}")
    found = Layout()
    for split in SPLITS:
        split_dir = _child_dirs(root, _SPLIT_ALIASES[split], found.problems)
        if split_dir is None:
            if split != "val":  # the Mendeley release has no val folder; one is carved from train
                found.problems.append(
                    f"missing split folder {root / split} (expected ROOT/{split}/NORMAL etc.)"
                )
            continue
        found.files[split] = {}
        for cls in CLASS_NAMES:
            cls_dir = _child_dirs(split_dir, (cls,), found.problems)
            if cls_dir is None:
                found.problems.append(f"missing class folder {split_dir / cls.upper()}")
                continue
            images = []
            for path in sorted(cls_dir.iterdir()):
                if path.name.startswith(".") or path.is_dir():
                    found.ignored.append(str(path))
                elif path.suffix.lower() in IMAGE_EXTENSIONS:
                    images.append(path)
                else:
                    found.bad_files.append(
                        f"{path}: not a JPEG or PNG file (extension {path.suffix or 'none'!r})"
                    )
            if not images:
                found.problems.append(f"empty class folder {cls_dir}: no .jpeg/.jpg/.png files")
            found.files[split][cls] = images
    if "train" not in found.files and "test" not in found.files:
        found.problems.append(f"no train/ or test/ folder in {root}.{_suggest(root)} {WHERE_TO_GET}")
    return found


def _area_mean(stack: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Block means of a uint8 ``N x H x W`` stack on a ``rows x cols`` grid (area downscaling)."""
    x = stack.astype(np.float64)
    for axis, out in ((1, rows), (2, cols)):
        if x.shape[axis] < out:  # upsample by repetition first so every block has a pixel
            x = np.repeat(x, -(-out // x.shape[axis]), axis=axis)
        edges = np.linspace(0, x.shape[axis], out + 1).astype(np.int64)
        x = np.add.reduceat(x, edges[:-1], axis=axis) / np.diff(edges).reshape(
            [-1 if a == axis else 1 for a in range(3)]
        )
    return x


def average_hash(stack: np.ndarray, hash_size: int = 16) -> np.ndarray:
    """Average hash: each cell of a ``hash_size`` grid brighter than the image's mean (bool ``N x bits``)."""
    means = _area_mean(stack, hash_size, hash_size)
    return (means > means.mean(axis=(1, 2), keepdims=True)).reshape(len(stack), -1)


def difference_hash(stack: np.ndarray, hash_size: int = 16) -> np.ndarray:
    """Difference hash: each cell brighter than its right neighbour, on a ``hash_size x (hash_size+1)``
    grid (bool ``N x hash_size**2``). Robust to brightness, contrast, re-encoding and resizing."""
    means = _area_mean(stack, hash_size, hash_size + 1)
    return (means[:, :, :-1] > means[:, :, 1:]).reshape(len(stack), -1)


def find_duplicates(
    query: np.ndarray, reference: np.ndarray, max_distance: int
) -> list[tuple[int, int, int]]:
    """Pairs ``(i, j, d)`` with Hamming distance ``d <= max_distance`` between ``query[i]`` and
    ``reference[j]`` (bool hash arrays ``N x bits``), sorted by ``i`` then ``d``."""
    if len(query) == 0 or len(reference) == 0:
        return []
    q, r = np.packbits(query, axis=1), np.packbits(reference, axis=1)
    pairs = []
    for start in range(0, len(q), 64):  # chunks keep the N x M x bytes array small
        dist = np.bitwise_count(q[start : start + 64, None, :] ^ r[None, :, :]).sum(axis=2)
        for i, j in zip(*np.nonzero(dist <= max_distance), strict=True):
            pairs.append((start + int(i), int(j), int(dist[i, j])))
    return sorted(pairs, key=lambda p: (p[0], p[2], p[1]))


def _check_duplicates(parts: dict, names: dict, max_distance: int, drop: bool) -> tuple[dict, dict, dict]:
    """Test images that duplicate a train or val image, and val images that duplicate a train image."""
    hashes = {s: difference_hash(parts[s][0]) for s in SPLITS}
    found = []
    keep = {s: np.ones(len(parts[s][0]), dtype=bool) for s in SPLITS}
    for split, others in (("test", ("train", "val")), ("val", ("train",))):
        ref_names = [n for o in others for n in names[o]]
        ref = np.concatenate([hashes[o] for o in others])
        matches: dict[int, list[tuple[int, int]]] = {}
        for i, j, d in find_duplicates(hashes[split], ref, max_distance):
            matches.setdefault(i, []).append((d, j))
        for i, hits in matches.items():
            found.append({
                "split": split,
                "file": names[split][i],
                "distance": hits[0][0],
                "matches": [ref_names[j] for _, j in hits[:5]],
                "n_matches": len(hits),
            })  # fmt: skip
            keep[split][i] = not drop
    report = {
        "checked": True,
        "method": f"difference hash 16x17 on the {parts['train'][0].shape[-1]}-pixel images, "
        f"Hamming distance <= {max_distance} of 256 bits",
        "pairs": found,
        "dropped": [p["file"] for p in found] if drop else [],
    }
    parts = {s: (parts[s][0][keep[s]], parts[s][1][keep[s]]) for s in SPLITS}
    names = {s: [n for n, k in zip(names[s], keep[s], strict=True) if k] for s in SPLITS}
    return parts, names, report


def carve_validation(parts: dict, ids: dict, min_val: int, val_size: float | int, seed: int):
    """Replace a validation split smaller than ``min_val`` by a stratified one drawn from train + val.

    Parameters
    ----------
    parts : dict
        ``{split: (images, labels)}`` numpy arrays for "train", "val" and "test".
    ids : dict
        ``{split: [example id, ...]}`` aligned with ``parts``.
    min_val : int
        Keep the given validation split when it has at least this many examples.
    val_size : float or int
        Carved size: fraction of the pooled train + val examples, or a count; at least ``min_val``.
    seed : int
        Seed of :func:`downscalexr.data.splits.stratified_split`.

    Returns
    -------
    (parts, ids, note)
        Updated copies (test unchanged) and a sentence saying how the validation split was made.
    """
    n_val = len(parts["val"][1])
    if n_val >= min_val and n_val > 0:
        return parts, ids, f"official: the {n_val}-example validation split as given"
    pool_x = np.concatenate([parts["train"][0], parts["val"][0]])
    pool_y = np.concatenate([parts["train"][1], parts["val"][1]])
    pool_ids = list(ids["train"]) + list(ids["val"])
    if isinstance(val_size, (int, np.integer)) and not isinstance(val_size, bool):
        want = int(val_size)
    else:
        want = round(float(val_size) * len(pool_y))
    tr, va = stratified_split(pool_y, max(want, int(min_val)), seed)
    parts = {**parts, "train": (pool_x[tr], pool_y[tr]), "val": (pool_x[va], pool_y[va])}
    ids = {**ids, "train": [pool_ids[i] for i in tr], "val": [pool_ids[i] for i in va]}
    note = (
        f"carved: {len(va)} examples drawn stratified (seed {seed}) from train + official val "
        f"({len(pool_y)} examples) because the official validation split had {n_val} < min_val={min_val}"
    )
    return parts, ids, note


def load_folder(
    root: str | os.PathLike,
    size: int = 128,
    resize: str = "stretch",
    *,
    min_val: int = 100,
    val_size: float | int = 0.1,
    seed: int = 0,
    check_duplicates: bool = False,
    drop_duplicates: bool = False,
    max_hash_distance: int = 10,
    skip_bad: bool = False,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    quiet: bool = False,
) -> ImageSplits:
    """Load the chest X-ray folders as grayscale ``size x size`` train / validation / test tensors.

    Parameters
    ----------
    root : path-like
        Folder holding ``train/``, ``test/`` and optionally ``val/`` (see the module docstring).
    size : int
        Output side length in pixels.
    resize : {"stretch", "center-crop"}
        ``stretch`` (as the published LeNet study did) or ``center-crop`` (as MedMNIST does).
    min_val : int
        When the validation split has fewer images than this, it is merged into train and a
        stratified validation set of ``val_size`` is drawn from the pool with ``seed``.
    val_size : float or int
        Size of a carved validation set: a fraction of the pool (default 0.1, i.e. MedMNIST's 9:1), or
        a count; never fewer than ``min_val``.
    seed : int
        Seed of the carved validation set; keep it fixed within a study.
    check_duplicates, drop_duplicates : bool
        Look for test images that duplicate a train/val image and val images that duplicate a train
        image (difference hash), report them in ``info["duplicates"]``, and optionally drop them from
        the val/test split. ``drop_duplicates`` implies ``check_duplicates``.
    max_hash_distance : int
        Largest Hamming distance (of 256 bits) counted as a duplicate. The default catches exact and
        lightly re-encoded copies; unrelated images differ in far more bits. Check reported pairs by eye
        before dropping with a looser threshold.
    skip_bad : bool
        Skip non-image and unreadable files and record them in ``info["skipped"]`` instead of
        raising. Missing train/test folders and empty classes always raise.
    cache_dir, use_cache, workers, quiet
        Passed to :func:`downscalexr.data.cache.cached_preprocess`.

    Returns
    -------
    ImageSplits
        float32 ``N x 1 x size x size`` in [0, 1], int64 labels, ``class_names=("normal", "pneumonia")``;
        ``info`` holds the source, counts, validation provenance, skipped files and duplicates.

    Raises
    ------
    DataError
        Listing every problem found: missing or ambiguous folders, empty classes, non-image files,
        unreadable images (the latter two only when ``skip_bad`` is False).
    """
    root = Path(root).expanduser().resolve()
    layout = discover(root)
    flat = [(s, c, p) for s in layout.files for c in layout.files[s] for p in layout.files[s][c]]
    pre = cached_preprocess(
        [p for _, _, p in flat], size, resize, cache_dir=cache_dir, root=root, workers=workers, quiet=quiet,
        use_cache=use_cache,
    )  # fmt: skip
    unreadable = [f"{path}: unreadable image ({reason})" for path, reason in pre.bad.items()]
    fatal = list(layout.problems) if skip_bad else layout.problems + layout.bad_files + unreadable
    split_of = np.array([s for s, _, _ in flat])
    class_of = np.array([c for _, c, _ in flat])
    for split, classes in layout.files.items():  # a class may be empty once unreadable files are skipped
        for cls, paths in classes.items():
            if paths and not pre.ok[(split_of == split) & (class_of == cls)].any():
                fatal.append(f"class folder {split}/{cls}: every image is unreadable")
    if fatal:
        raise DataError(f"{len(fatal)} problem(s) in chest X-ray folder {root}:", fatal)

    labels = np.array([CLASS_NAMES.index(c) for _, c, _ in flat], dtype=np.int64)
    rel = np.array([p.relative_to(root).as_posix() for _, _, p in flat])
    parts, names, official = {}, {}, {}
    for split in SPLITS:
        sel = (split_of == split) & pre.ok
        parts[split] = (pre.images[sel], labels[sel])
        names[split] = [str(r) for r in rel[sel]]
        official[split] = {c: int((labels[sel] == k).sum()) for k, c in enumerate(CLASS_NAMES)}

    parts, names, val_note = carve_validation(parts, names, min_val, val_size, seed)

    duplicates = {"checked": False}
    if check_duplicates or drop_duplicates:
        parts, names, duplicates = _check_duplicates(parts, names, max_hash_distance, drop_duplicates)

    def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = parts[split]
        # one float32 allocation (N x 1 x H x W), converted and scaled in place
        return torch.from_numpy(x).unsqueeze(1).float().div_(255.0), torch.from_numpy(y.astype(np.int64))

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (tensors(s) for s in SPLITS)
    info = {
        "source": "folder",
        "path": str(root),
        "size": int(size),
        "resize": resize,
        "official_counts": official,
        "counts": {s: {c: int((parts[s][1] == k).sum()) for k, c in enumerate(CLASS_NAMES)} for s in SPLITS},
        "val_source": val_note,
        "skipped": {"count": len(layout.bad_files) + len(unreadable), "files": layout.bad_files + unreadable},
        "ignored": layout.ignored,
        "duplicates": duplicates,
        "cache_file": pre.cache_file,
        "from_cache": pre.from_cache,
        "ids": names,
    }
    return ImageSplits(x_tr, y_tr, x_va, y_va, x_te, y_te, CLASS_NAMES, info)
