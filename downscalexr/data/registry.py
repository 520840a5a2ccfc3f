"""Data sets by name: ``load_dataset(name, seed=..., test_seed=..., **options) -> ImageSplits``.

``seed`` is the cell's seed; synthetic data sets draw their training and validation pools from it.
``test_seed`` is the study's and fixes the test set (and, for real data, the validation set carved
out of train), so every cell of a study is scored on the same examples.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from downscalexr.data.base import ImageSplits

# name -> (module, function, whether the training pool depends on the cell seed)
_DATASETS: dict[str, tuple[str, str, bool]] = {
    "detection": ("downscalexr.data.synthetic", "make_detection_splits", True),
    "edges": ("downscalexr.data.synthetic", "make_edges_splits", True),
    "folder": ("downscalexr.data.folder", "load_folder", False),
    "npz": ("downscalexr.data.npz", "load_npz", False),
}


def list_datasets() -> list[str]:
    """Names of the registered data sets."""
    return list(_DATASETS)


def dataset_loader(name: str) -> Callable[..., ImageSplits]:
    """The loader function of data set ``name``."""
    try:
        module, function, _ = _DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; choose from {', '.join(_DATASETS)}") from None
    return getattr(importlib.import_module(module), function)


def seed_dependent(name: str) -> bool:
    """Whether the data of ``name`` change with the cell seed (so are cached per seed)."""
    dataset_loader(name)
    return _DATASETS[name][2]


def dataset_options(name: str) -> list[str]:
    """Option names ``load_dataset(name, ...)`` accepts (besides ``seed`` and ``test_seed``)."""
    params = list(inspect.signature(dataset_loader(name)).parameters)
    if not seed_dependent(name):
        params = ["path", *params[1:]]  # real-data loaders take the data location first
    return [p for p in params if p not in ("seed", "test_seed")]


def load_dataset(name: str, *, seed: int, test_seed: int = 0, **options) -> ImageSplits:
    """Load data set ``name``; unknown names or options raise ``ValueError`` listing the valid ones."""
    loader = dataset_loader(name)
    unknown = sorted(set(options) - set(dataset_options(name)))
    if unknown:
        valid = ", ".join(dataset_options(name))
        raise ValueError(f"data set {name!r}: unknown option(s) {', '.join(unknown)}; valid: {valid}")
    if seed_dependent(name):
        return loader(seed=seed, test_seed=test_seed, **options)
    options = dict(options)
    path = options.pop("path", None)
    if not path:
        raise ValueError(
            f"data set {name!r} needs the path to the data: pass --data PATH or set `data: {{path: ...}}` "
            "in the study file (see docs/real-data.md for where to obtain it and the expected layout)"
        )
    # Real data: the validation split carved out of train is fixed for the study, like the test set.
    return loader(path, seed=test_seed, **options)
