"""Data sets by name: ``load_dataset(name, seed=..., test_seed=..., **options) -> ImageSplits``.

``seed`` is the cell's seed; synthetic data sets draw their training and validation pools from it.
``test_seed`` is the study's and fixes the test set (and, for real data, the validation set carved
out of train), so every cell of a study is scored on the same examples.

Every data set takes ``permute`` and ``permutation_seed``: the synthetic generators shuffle pixels
themselves; for real data :func:`load_dataset` applies the same fixed permutation after loading.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from downscalexr.data.base import ImageSplits
from downscalexr.data.synthetic import apply_permutation, pixel_permutation

PERMUTE_OPTIONS = ("permute", "permutation_seed")


@dataclass(frozen=True)
class _Entry:
    """Where a data set's loader lives.

    ``seed_dependent``: the training pool changes with the cell seed (synthetic data, cached per seed).
    ``task``: for a synthetic generator, its task class (in the same module), whose ``option_names``
    are the options; a real-data loader's options are its keyword parameters.
    """

    module: str
    function: str
    seed_dependent: bool
    task: str | None = None


_DATASETS: dict[str, _Entry] = {
    "detection": _Entry("downscalexr.data.synthetic", "make_detection_splits", True, "DetectionTask"),
    "edges": _Entry("downscalexr.data.synthetic", "make_edges_splits", True, "EdgesTask"),
    "shapes": _Entry("downscalexr.data.synthetic", "make_shapes_splits", True, "ShapesTask"),
    "cifar10": _Entry("downscalexr.data.cifar", "load_cifar10", False),
    "folder": _Entry("downscalexr.data.folder", "load_folder", False),
    "npz": _Entry("downscalexr.data.npz", "load_npz", False),
}


def list_datasets() -> list[str]:
    """Names of the registered data sets."""
    return list(_DATASETS)


def _entry(name: str) -> _Entry:
    try:
        return _DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(_DATASETS)}") from None


def dataset_loader(name: str) -> Callable[..., ImageSplits]:
    """The loader function of data set ``name``."""
    entry = _entry(name)
    return getattr(importlib.import_module(entry.module), entry.function)


def seed_dependent(name: str) -> bool:
    """Whether the data of ``name`` change with the cell seed (so are cached per seed)."""
    return _entry(name).seed_dependent


def _own_options(name: str) -> list[str]:
    """The options the loader itself takes (a synthetic task's names, or the loader's parameters)."""
    entry = _entry(name)
    if entry.task is not None:
        return getattr(importlib.import_module(entry.module), entry.task).option_names()
    params = list(inspect.signature(dataset_loader(name)).parameters)
    return [p for p in ["path", *params[1:]] if p not in ("seed", "test_seed")]  # data location first


def dataset_options(name: str) -> list[str]:
    """Option names ``load_dataset(name, ...)`` accepts (besides ``seed`` and ``test_seed``)."""
    params = _own_options(name)
    return params + [p for p in PERMUTE_OPTIONS if p not in params]


def permute_splits(splits: ImageSplits, seed: int) -> ImageSplits:
    """``splits`` with the pixels of every image (and test mask) shuffled by one fixed
    :func:`pixel_permutation`.

    Raises
    ------
    ValueError
        For non-square images (the permutation is drawn for a square side).
    """
    sides = {tuple(x.shape[-2:]) for x in (splits.x_train, splits.x_val, splits.x_test)}
    (h, w), *rest = sorted(sides)
    if h != w or rest:
        shown = ", ".join(f"{a}x{b}" for a, b in sorted(sides))
        raise ValueError(f"pixel permutation needs square images of one size, got {shown}; resize the data")
    perm = pixel_permutation(h, seed)[0]
    masks = splits.masks_test
    return ImageSplits(
        apply_permutation(splits.x_train, perm),
        splits.y_train,
        apply_permutation(splits.x_val, perm),
        splits.y_val,
        apply_permutation(splits.x_test, perm),
        splits.y_test,
        class_names=splits.class_names,
        info=splits.info | {"permute": True, "permutation_seed": seed},
        masks_test=None if masks is None else apply_permutation(masks[:, None], perm)[:, 0],
    )


def load_dataset(name: str, *, seed: int, test_seed: int = 0, **options) -> ImageSplits:
    """Load data set ``name``; unknown names or options raise ``ValueError`` listing the valid ones."""
    loader = dataset_loader(name)
    unknown = sorted(set(options) - set(dataset_options(name)))
    if unknown:
        valid = ", ".join(dataset_options(name))
        raise ValueError(f"data set {name!r}: unknown option(s) {', '.join(unknown)}; valid: {valid}")
    options = dict(options)
    own = set(_own_options(name))
    permute = {k: options.pop(k) for k in PERMUTE_OPTIONS if k in options and k not in own}
    if seed_dependent(name):
        data = loader(seed=seed, test_seed=test_seed, **options)
    else:
        data = _load_real(name, loader, test_seed, options)
    if permute.get("permute"):
        data = permute_splits(data, int(permute.get("permutation_seed", 0)))
    return data


def _load_real(name: str, loader: Callable[..., ImageSplits], test_seed: int, options: dict) -> ImageSplits:
    path = options.pop("path", None)
    if not path:
        raise ValueError(
            f"data set {name!r} needs the path to the data: pass --data PATH or set `data: {{path: ...}}` "
            "in the study file (see docs/real-data.md for where to obtain it and the expected layout)"
        )
    # Real data: the validation split carved out of train is fixed for the study, like the test set.
    return loader(path, seed=test_seed, **options)
