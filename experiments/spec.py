"""A study specification: frozen dataclasses, loaded from YAML, validated at the boundary.

A study names its data set, model family, the downsampling variants, the data fractions and the seeds,
plus how each model is trained and timed. Unknown keys and wrong types are rejected with a message that
names the key and lists the valid ones. Built-in studies live in ``experiments/studies/*.yaml``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from downscalexr.train import TrainConfig

STUDIES_DIR = Path(__file__).parent / "studies"


class SpecError(ValueError):
    """A study file or override is malformed; the message names the key and the valid choices."""


@dataclass(frozen=True)
class LatencySpec:
    """How each trained model is timed (see :func:`downscalexr.latency.measure_latency`)."""

    enabled: bool = True
    batch_sizes: tuple[int, ...] = (1, 32)
    memory_formats: tuple[str, ...] = ("contiguous", "channels_last")
    threads: int = 1
    warmup: int = 3
    repeats: int = 10
    min_seconds: float = 0.05
    clock: str = "wall"  # or "thread_cpu": CPU time of the timing thread, blind to other processes' load


@dataclass(frozen=True)
class ConsistencySpec:
    """Shift consistency of each trained model (see :mod:`downscalexr.consistency`).

    Off by default: two shifted passes per mode over ``n_images`` test images cost about a fifth of a
    default cell. Shift pairs are drawn from the study's ``test_seed``, so they are paired across cells.
    """

    enabled: bool = False
    max_fraction: float = 0.125
    n_images: int = 500
    modes: tuple[str, ...] = ("circular", "pad")


@dataclass(frozen=True)
class StudySpec:
    """One study: every combination of ``variants`` x ``seeds`` x ``fractions`` is one training run.

    Parameters
    ----------
    name : str
        Study name; results go to ``results/<name>/`` by default.
    dataset : str
        Data set registry name (see :mod:`downscalexr.data.registry`).
    data : dict
        Keyword options of the data set (sizes, prevalences, path, ...).
    model : str
        Model family registry name (``lenet``, ``lenet_gap``, ``downscalexr_lenet``, ...).
    model_options : dict
        Keyword options of the model family (e.g. ``input_size``, ``channels``).
    variants : tuple of str
        Downsampling operators compared; the first is the reference unless ``reference`` is set.
    fractions : tuple of float
        Nested, stratified fractions of the training pool, each in (0, 1].
    seeds : tuple of int
        Seeds; one seed fixes data, subset, order and initialisation for every variant.
    test_seed : int
        Fixes the test set for the whole study.
    transforms : tuple of str
        Deployment transforms (``none`` only, for now); a design factor of the cell.
    train : TrainConfig
    latency : LatencySpec
    consistency : ConsistencySpec
    reference : str
        Reference variant for contrasts in the report.
    """

    name: str
    dataset: str = "detection"
    data: dict = field(default_factory=dict)
    model: str = "lenet"
    model_options: dict = field(default_factory=dict)
    variants: tuple[str, ...] = ("avgpool", "maxpool", "strided")
    fractions: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0)
    seeds: tuple[int, ...] = tuple(range(10))
    test_seed: int = 0
    transforms: tuple[str, ...] = ("none",)
    train: TrainConfig = field(default_factory=TrainConfig)
    latency: LatencySpec = field(default_factory=LatencySpec)
    consistency: ConsistencySpec = field(default_factory=ConsistencySpec)
    reference: str = "avgpool"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.variants:
            raise SpecError("variants must name at least one downsampling operator")
        for f in self.fractions:
            if not 0 < f <= 1:
                raise SpecError(f"data fraction {f} is outside (0, 1]")
        if not self.fractions:
            raise SpecError("fractions must hold at least one value in (0, 1]")
        if not self.seeds:
            raise SpecError("seeds must hold at least one seed")
        if any(s < 0 for s in self.seeds):
            raise SpecError(f"seeds must be non-negative, got {list(self.seeds)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise SpecError(f"seeds repeat: {list(self.seeds)}")
        unknown = sorted(set(self.transforms) - {"none"})
        if unknown:
            raise SpecError(f"unknown transforms {unknown}; choose from none")

    def to_dict(self) -> dict:
        """Plain, YAML/JSON-ready form (tuples as lists)."""
        return _plain(dataclasses.asdict(self))


def load_spec(name_or_path: str | Path, **overrides) -> StudySpec:
    """Load a built-in study by name or a YAML file by path, then apply ``overrides`` (top-level keys).

    Raises
    ------
    SpecError
        Unknown study, unreadable YAML, unknown keys or wrong types.
    """
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = STUDIES_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            known = ", ".join(list_studies())
            raise SpecError(f"unknown study {str(name_or_path)!r}; choose from {known} or give a YAML path")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read study file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"study file {path} must hold a mapping of keys, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(StudySpec, raw, where=str(path))


def list_studies() -> list[str]:
    """Names of the built-in studies."""
    return sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))


def from_dict(cls: type, raw: dict, where: str = "study"):
    """Build the frozen dataclass ``cls`` from ``raw``, checking keys and types recursively."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys are {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = {name: _coerce(value, hints[name], f"{where}: {name}") for name, value in raw.items()}
    try:
        return cls(**values)
    except SpecError:
        raise
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: {exc}") from None


def _coerce(value, hint, where: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where)
            except SpecError:
                continue
        raise SpecError(f"{where}: {value!r} is not a valid {_name(hint)}")
    if origin is tuple:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1]
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SpecError(f"{where}: expected text, got {value!r}")
        return value
    return value


def _name(hint) -> str:
    return getattr(hint, "__name__", str(hint))


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
