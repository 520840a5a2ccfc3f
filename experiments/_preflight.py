"""Check a study before its first cell: load the data once, build every model and run one batch through it.

Machinery for :mod:`experiments.grid`. A typo in ``model_options`` (``kernel_sise``), a data path that
does not exist or a model that does not fit the images would otherwise start the grid and store every
cell as ``failed``; here they stop it with one message (exit 2) before anything is written.
"""

from __future__ import annotations

import inspect
import os
import re

import torch

import downscalexr.models as model_classes
from downscalexr.data.base import ImageSplits
from downscalexr.data.registry import load_dataset
from downscalexr.ensemble import REFUSED_LAYERS
from downscalexr.models import registry as model_registry
from experiments._saliency import check_saliency
from experiments.cell import Cell, build_model, cells_of, data_options
from experiments.errors import UsageError
from experiments.spec import StudySpec

# problem lines of a data set error shown in full before "... and N more"
MAX_PROBLEM_LINES = 20
_UNEXPECTED = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")
_SET_BY_THE_GRID = {"self", "downsample", "seed"}


def check_study(spec: StudySpec) -> dict:
    """Load the first cell's data and build every model family x variant x init of ``spec`` once.

    Returns
    -------
    dict
        The data set's provenance for ``data.json`` (see :func:`data_description`).

    Raises
    ------
    UsageError
        The data cannot be loaded (every problem line the loader found, up to
        :data:`MAX_PROBLEM_LINES`), a model option is unknown (named with the valid ones), or a model
        cannot run on one batch of the data, or the ``saliency`` settings ask for more test images
        or a finer grid than the data has.
    """
    data = load_first_data(spec)
    check_models(spec, data)
    try:
        check_saliency(spec.saliency, data)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return data_description(spec, data)


def check_device(device: str) -> None:
    """Refuse a CUDA device this process cannot see, naming what it found.

    Raises
    ------
    UsageError
        ``device`` is ``cuda`` / ``cuda:N`` and torch sees no GPU (or fewer than ``N + 1``): the
        message gives ``torch.cuda.is_available()``, ``torch.cuda.device_count()``,
        ``CUDA_VISIBLE_DEVICES`` and the CUDA version torch was built with.
    """
    if not device.startswith("cuda"):
        return
    available = torch.cuda.is_available()
    count = torch.cuda.device_count() if available else 0
    index = int(device.partition(":")[2] or 0)
    if available and index < count:
        return
    found = (
        f"torch.cuda.is_available() = {available}, torch.cuda.device_count() = {count}, "
        f"CUDA_VISIBLE_DEVICES = {os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')!r}, "
        f"torch built with CUDA {torch.version.cuda or 'none (a CPU-only build)'}"
    )
    need = "a GPU" if index == 0 else f"GPU index {index}"
    raise UsageError(
        f"train.device = {device} needs {need}, but this process sees none ({found}); "
        "train on the CPU (--device cpu, the default) or run where a CUDA GPU is visible"
    )


def load_first_data(spec: StudySpec) -> ImageSplits:
    """The data of the study's first cell (first seed), loaded in this process."""
    try:
        options = data_options(spec, cells_of(spec)[0])
        return load_dataset(spec.dataset, seed=spec.seeds[0], test_seed=spec.test_seed, **options)
    except (ValueError, OSError, TypeError) as exc:
        raise UsageError(f"cannot load data set {spec.dataset!r}: {problem_text(exc)}") from None


def problem_text(exc: BaseException, limit: int = MAX_PROBLEM_LINES) -> str:
    """The error's message with every problem line it lists, up to ``limit``, then "... and N more".

    A :class:`~downscalexr.data.cache.DataError` carries its problems (one per file) in ``problems``;
    any other error's message lines are used as they are.
    """
    problems = list(getattr(exc, "problems", None) or [])
    lines = str(exc).splitlines() or [type(exc).__name__]
    head = lines[0]
    if not problems:
        problems = [line.strip() for line in lines[1:] if line.strip() and not line.strip().startswith("...")]
    shown = problems[:limit]
    more = len(problems) - len(shown)
    return "\n  ".join([head, *shown]) + (f"\n  ... and {more} more" if more > 0 else "")


def _model_cells(spec: StudySpec) -> list[Cell]:
    """One cell per distinct model family x variant x first-layer initialisation of the study."""
    seen: dict[tuple[str, str, str], Cell] = {}
    for cell in cells_of(spec):
        seen.setdefault((cell.model, cell.variant, cell.init), cell)
    return list(seen.values())


def check_models(spec: StudySpec, data: ImageSplits, batch: int = 2) -> None:
    """Build each model of the study and check one batch of ``data`` gives one output row per image.

    Raises
    ------
    UsageError
        An unknown model option (named with the valid options of the family), or a model that fails
        on (or gives the wrong shape for) the data's images.
    """
    num_outputs = 1 if data.num_classes == 2 else data.num_classes
    x = data.x_train[:batch].float()
    shape = "x".join(map(str, data.input_shape))
    for cell in _model_cells(spec):
        what = f"model {cell.model} with variant {cell.variant}" + (
            f" and init {cell.init}" if cell.init != "random" else ""
        )
        try:
            model = build_model(spec, cell, data.input_shape, num_outputs)
        except Exception as exc:  # any failure to build is a study error to report before training
            raise UsageError(_option_message(cell.model, exc, what)) from None
        try:
            with torch.no_grad():
                out = model.eval()(x)
        except Exception as exc:  # any failure on the data is a misfit to report before training
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(
                f"{what} cannot run on the data's {shape} images: {first}; check model_options "
                "(input_size, channels, ...) against the data set"
            ) from None
        if tuple(out.shape) != (len(x), num_outputs):
            raise UsageError(
                f"{what} gives outputs of shape {tuple(out.shape)} for {len(x)} images of {shape}; "
                f"expected ({len(x)}, {num_outputs})"
            )
        refused = [type(m).__name__ for m in model.modules() if isinstance(m, REFUSED_LAYERS)]
        if spec.train.ensemble and refused:
            raise UsageError(
                f"train.ensemble cannot train {what}: it has {refused[0]} (batch norm updates running "
                "statistics in place, dropout draws one stream for all seeds); set train.ensemble: false"
            )


def _option_message(model: str, exc: BaseException, what: str) -> str:
    """A model construction error; an unknown keyword names the family's valid options."""
    text = str(exc)
    found = _UNEXPECTED.search(text)
    if found is None:
        return f"cannot build {what}: {text.splitlines()[0] if text else type(exc).__name__}"
    cls, key = found.groups()
    valid = model_options(model, cls)
    return (
        f"cannot build {what}: unknown model option {key!r} (model_options in the study, or "
        f"--set model_options.{key}=...); valid options of {model}: {', '.join(valid)}"
    )


def model_options(model: str, class_name: str | None = None) -> list[str]:
    """Keyword options a model family accepts: its factory's and those of the class it builds.

    ``class_name`` names the :mod:`downscalexr.models` class the factory passes the remaining
    options to (taken from the error that named it); without it only the factory's own are listed.
    """
    names: list[str] = []
    factory = model_registry._MODELS.get(model)  # the registry keeps its factories by name
    targets = [factory, getattr(model_classes, class_name or "", None)]
    for target in targets:
        if target is None:
            continue
        for p in inspect.signature(target).parameters.values():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in _SET_BY_THE_GRID:
                continue
            if p.name not in names:
                names.append(p.name)
    return names


def data_description(spec: StudySpec, data: ImageSplits) -> dict:
    """The data set's provenance for ``data.json``: input shape, class counts per split, loader info.

    Per-example id lists are left out.
    """
    info = {k: v for k, v in data.info.items() if k != "ids"}
    counts = {
        split: {name: int((y == i).sum()) for i, name in enumerate(data.class_names)}
        for split, y in (("train", data.y_train), ("val", data.y_val), ("test", data.y_test))
    }
    return {
        "dataset": spec.dataset,
        "input_shape": list(data.input_shape),
        "class_counts": counts,
        "info": info,
    }
