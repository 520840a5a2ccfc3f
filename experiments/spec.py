"""A study specification: frozen dataclasses, loaded from YAML, validated at the boundary.

A study names its data set, model families, the downsampling variants, the data fractions and the
seeds, the inductive-bias factors, plus how each model is trained and timed. Unknown keys and wrong types
are rejected with a message that names the key and lists the valid ones. Built-in studies live in
``experiments/studies/*.yaml``. Several model families share one grid with ``models``::

    models:
      - {name: lenet, options: {channels: [16, 32]}}
      - {name: mlp, options: {match: lenet}}          # variant "none"; inherits lenet's options
    factors: {permute: [false, true], location_shift: [null, 0.5], init: [random, edge_frozen],
              augment: [none, flip_rotate]}

and compression levels of every trained model with ``factors: {compression: [none, int8_static]}``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from downscalexr.augment import list_augment
from downscalexr.compress import list_levels
from downscalexr.operating_point import THRESHOLD_RULES
from downscalexr.schema import INIT_CHOICES, OPERATING_POINTS
from downscalexr.train import TrainConfig
from experiments._from_yaml import (
    OverrideError,
    SpecError,
    apply_overrides,
    from_dict,
    parse_override,
    plain,
    read_yaml,
)
from experiments._saliency import SaliencySpec

STUDIES_DIR = Path(__file__).parent / "studies"
# A study's name is a directory name under the results root: no separators, no "..", no hidden names.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# Model families without a downsampling operator (or a convolution): their one variant is NO_VARIANT.
NO_DOWNSAMPLING = ("mlp",)
NO_VARIANT = "none"
# Fields that enumerate cells (or only describe the study) rather than fix how one cell runs.
AXES = (
    "variants", "fractions", "seeds", "transforms", "description", "reference", "factors", "models",
    "model", "model_options",
)  # fmt: skip


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
    reference: bool = True  # time the fixed reference workload before every pass (machine speed)


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
class EvaluationSpec:
    """How a binary model's test scores become decisions (multi-class tasks decide by argmax).

    Both operating points are stored for every binary run (``runs`` columns ``<metric>_fixed`` and
    ``<metric>_chosen``); this chooses which one the unsuffixed columns (``accuracy``, ``fpr``, ...)
    and the report's threshold metrics use.

    Parameters
    ----------
    operating_point : {"fixed", "chosen"}
        ``fixed``: the threshold 0.5; ``chosen``: the threshold ``threshold_rule`` picks on the
        validation split (never on the test split).
    threshold_rule : {"youden", "prevalence"}
        How the validation threshold is chosen (see :mod:`downscalexr.operating_point`).
    """

    operating_point: str = "fixed"
    threshold_rule: str = "youden"

    def __post_init__(self) -> None:
        if self.operating_point not in OPERATING_POINTS:
            raise SpecError(
                f"evaluation.operating_point: unknown {self.operating_point!r}; choose from "
                f"{', '.join(OPERATING_POINTS)}"
            )
        if self.threshold_rule not in THRESHOLD_RULES:
            raise SpecError(
                f"evaluation.threshold_rule: unknown {self.threshold_rule!r}; choose from "
                f"{', '.join(THRESHOLD_RULES)}"
            )


@dataclass(frozen=True)
class FactorSpec:
    """Inductive-bias factors, each a list of levels crossed with models x variants x seeds x fractions.

    Parameters
    ----------
    permute : tuple of bool
        Shuffle every image's pixels by one fixed permutation per study (seeded by the study's
        ``test_seed``, or ``data.permutation_seed`` when set), the same in every cell.
    location_shift : tuple of float or None
        Edges data set only: train on edges in the first ``r`` of the image, validate and test on the
        rest (``None``: no shift). A level overrides ``data.location_shift`` for its cells.
    init : tuple of str
        First convolution's initialisation: ``random`` (the seeded default), ``edge_frozen`` or
        ``edge_trainable`` (a fixed bank of oriented edge detectors, see
        :mod:`downscalexr.models.edge_init`). Models without a convolution only get ``random``.
    compression : tuple of str
        Compression levels applied to every cell's trained model (:func:`downscalexr.compress.list_levels`;
        must include ``none``, the model as trained). Levels are not cells: each is a ``runs`` row of its
        own derived from the cell's model, with the cell's ``run_id`` as ``parent_run_id`` (see
        :mod:`experiments._compression`).
    augment : tuple of str
        Training augmentation policy (:mod:`downscalexr.augment`: ``none``, ``flip``, ``rotate``,
        ``contrast``, ``flip_rotate``, ``flip_rotate_contrast``), drawn from the cell's seed and
        applied to training batches only; validation and test images are never augmented.
    """

    permute: tuple[bool, ...] = (False,)
    location_shift: tuple[float | None, ...] = (None,)
    init: tuple[str, ...] = ("random",)
    compression: tuple[str, ...] = ("none",)
    augment: tuple[str, ...] = ("none",)

    def __post_init__(self) -> None:
        for name in ("permute", "location_shift", "init", "compression", "augment"):
            levels = getattr(self, name)
            if not levels:
                raise SpecError(f"factors.{name} must list at least one level")
            if len(set(levels)) != len(levels):
                raise SpecError(f"factors.{name} repeats a level: {list(levels)}")
        bad = [v for v in self.init if v not in INIT_CHOICES]
        if bad:
            raise SpecError(f"factors.init: unknown level(s) {bad}; choose from {', '.join(INIT_CHOICES)}")
        bad = [v for v in self.compression if v not in list_levels()]
        if bad:
            raise SpecError(
                f"factors.compression: unknown level(s) {bad}; choose from {', '.join(list_levels())}"
            )
        if "none" not in self.compression:
            raise SpecError(
                "factors.compression must include none (the model as trained): every compressed level "
                f"is compared with its uncompressed parent; got {list(self.compression)}"
            )
        bad = [v for v in self.augment if v not in list_augment()]
        if bad:
            raise SpecError(
                f"factors.augment: unknown level(s) {bad}; choose from {', '.join(list_augment())}"
            )
        for r in self.location_shift:
            if r is not None and not 0 < r < 1:
                raise SpecError(
                    f"factors.location_shift: {r} is outside (0, 1); use null (no shift) or a fraction "
                    "of the image such as 0.5"
                )


@dataclass(frozen=True)
class ModelSpec:
    """One model family of a study.

    Parameters
    ----------
    name : str
        Registry name (``lenet``, ``mlp``, ...).
    options : dict
        Keyword options of the family. An MLP whose ``match`` names another family of the same study
        inherits that family's options (its own win), so it matches the CNN actually trained.
    variants : tuple of str
        Downsampling operators for this family; empty means the study's ``variants``. A family
        without downsampling (``mlp``) has the single variant ``none``.
    """

    name: str
    options: dict = field(default_factory=dict)
    variants: tuple[str, ...] = ()


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
        Model family registry name (``lenet``, ``lenet_gap``, ``downscalexr_lenet``, ...): the
        one-model shorthand for ``models``.
    model_options : dict
        Keyword options of the model family (e.g. ``input_size``, ``channels``).
    models : tuple of ModelSpec
        Several model families in one grid; when given, ``model`` and ``model_options`` stay unset.
    variants : tuple of str
        Downsampling operators compared; the first is the reference unless ``reference`` is set.
    factors : FactorSpec
        Inductive-bias factors (pixel permutation, location shift, first-layer initialisation).
    fractions : tuple of float
        Nested, stratified fractions of the training pool, each in (0, 1].
    seeds : tuple of int
        Seeds; one seed fixes data, subset, order and initialisation for every variant.
    test_seed : int
        Fixes the test set for the whole study.
    transforms : tuple of str
        Deployment transforms (``none`` only, for now); a design factor of the cell.
    train : TrainConfig
    evaluation : EvaluationSpec
        The operating point of the threshold metrics (fixed 0.5 or chosen on validation).
    latency : LatencySpec
    consistency : ConsistencySpec
    saliency : SaliencySpec
        Grad-CAM maps, localisation and deletion-curve area on fixed test images (off by default).
    reference : str
        Reference variant for contrasts in the report.
    """

    name: str
    dataset: str = "detection"
    data: dict = field(default_factory=dict)
    model: str = "lenet"
    model_options: dict = field(default_factory=dict)
    models: tuple[ModelSpec, ...] = ()
    variants: tuple[str, ...] = ("avgpool", "maxpool", "strided")
    fractions: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0)
    seeds: tuple[int, ...] = tuple(range(10))
    test_seed: int = 0
    transforms: tuple[str, ...] = ("none",)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    latency: LatencySpec = field(default_factory=LatencySpec)
    consistency: ConsistencySpec = field(default_factory=ConsistencySpec)
    saliency: SaliencySpec = field(default_factory=SaliencySpec)
    factors: FactorSpec = field(default_factory=FactorSpec)
    reference: str = "avgpool"
    description: str = ""

    def __post_init__(self) -> None:
        if not NAME.match(self.name) or ".." in self.name:
            raise SpecError(
                f"study name {self.name!r} is not a plain name: it becomes the folder results/<name>, so "
                "use letters, digits, '.', '_' and '-' (no '/', no '..', not starting with '.'); set "
                "`name:` in the study file (it defaults to the file's name) or give --out"
            )
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
        for axis in ("seeds", "variants", "fractions", "transforms"):
            levels = getattr(self, axis)
            if len(set(levels)) != len(levels):
                raise SpecError(f"{axis} repeat: {list(levels)}; list each level once")
        unknown = sorted(set(self.transforms) - {"none"})
        if unknown:
            raise SpecError(f"unknown transforms {unknown}; choose from none")
        self._check_models()
        self._check_factors()

    def _check_models(self) -> None:
        if self.models and (self.model != "lenet" or self.model_options):
            raise SpecError("give either models (a list of families) or model/model_options (one), not both")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise SpecError(f"models: each family may appear once, got {names}")
        if NO_VARIANT in self.variants:
            raise SpecError(f"variants: {NO_VARIANT!r} is reserved for models without downsampling")
        for m in self.models:
            if len(set(m.variants)) != len(m.variants):
                raise SpecError(f"models: {m.name} variants repeat: {list(m.variants)}; list each once")
            if m.name in NO_DOWNSAMPLING and m.variants not in ((), (NO_VARIANT,)):
                raise SpecError(
                    f"models: {m.name} has no downsampling operator; its variants must be "
                    f"[{NO_VARIANT}] or left out, got {list(m.variants)}"
                )
            if m.name not in NO_DOWNSAMPLING and NO_VARIANT in m.variants:
                raise SpecError(
                    f"models: {m.name} downsamples; variant {NO_VARIANT!r} is for {NO_DOWNSAMPLING}"
                )

    def _check_factors(self) -> None:
        f = self.factors
        if f.location_shift != (None,):
            if self.dataset != "edges":
                raise SpecError(
                    f"factors.location_shift is only valid for the edges data set, not {self.dataset!r}; "
                    "remove it or use dataset: edges"
                )
            if "location_shift" in self.data:
                raise SpecError("set location_shift either in data or in factors, not both")
        if f.permute != (False,) and "permute" in self.data:
            raise SpecError("set permute either in data or in factors, not both")

    @property
    def model_specs(self) -> tuple[ModelSpec, ...]:
        """The study's model families with their variants resolved (see :class:`ModelSpec`)."""
        given = self.models or (ModelSpec(self.model, dict(self.model_options)),)
        by_name = {m.name: m for m in given}
        out = []
        for m in given:
            options = dict(m.options)
            match = by_name.get(options.get("match"))
            if m.name in NO_DOWNSAMPLING and match is not None and match is not m:
                options = dict(match.options) | options
            variants = (NO_VARIANT,) if m.name in NO_DOWNSAMPLING else (m.variants or self.variants)
            out.append(ModelSpec(m.name, options, variants))
        return tuple(out)

    def model_spec(self, name: str) -> ModelSpec:
        """The resolved :class:`ModelSpec` of family ``name``."""
        for m in self.model_specs:
            if m.name == name:
                return m
        raise SpecError(
            f"model {name!r} is not in study {self.name!r}; it has {[m.name for m in self.model_specs]}"
        )

    def factor_levels(self) -> dict[str, tuple]:
        """The levels each cell takes: the factors, or the data options when a factor is not given."""
        f = self.factors
        permute = f.permute if f.permute != (False,) else (bool(self.data.get("permute", False)),)
        shift = f.location_shift
        if shift == (None,) and self.data.get("location_shift") is not None:
            shift = (float(self.data["location_shift"]),)
        return {"permute": permute, "location_shift": shift, "init": f.init, "augment": f.augment}

    def to_dict(self) -> dict:
        """Plain, YAML/JSON-ready form (tuples as lists)."""
        return plain(dataclasses.asdict(self))


def non_default(obj) -> dict:
    """The fields of dataclass ``obj`` whose value differs from the field's default, recursively.

    Nested dataclasses contribute only their own non-default fields, and are left out when those are
    none. Hashing this form (see :func:`experiments.cell.run_id`) keeps an identifier unchanged when a
    field with a default is added later; the price is that a field's default must never change meaning.
    """
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            value = non_default(value)
            if value:
                out[f.name] = value
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            out[f.name] = plain(value)
            continue
        if value != default:
            out[f.name] = plain(value)
    return out


def design_differences(old: StudySpec, new: StudySpec) -> list[str]:
    """Keys in which two specifications would give different results for a cell they share.

    The axes (variants, seeds, fractions, models, factor levels, ...) may differ: they only add or drop
    cells. A model family present in both must have the same options.
    """
    a, b = non_default(old), non_default(new)
    differ = sorted(k for k in set(a) | set(b) if k not in AXES and a.get(k) != b.get(k))
    old_models = {m.name: m.options for m in old.model_specs}
    for m in new.model_specs:
        if m.name in old_models and old_models[m.name] != m.options:
            differ.append(f"models.{m.name}")
    return differ


def load_spec(name_or_path: str | Path, *sets: str, **overrides) -> StudySpec:
    """Load a built-in study by name or a YAML file by path, with overrides deep-merged in.

    A built-in study's name (``smoke``) always means the packaged study, even when a file or folder of
    that name lies in the working directory; a file is given as a path (``./smoke.yaml``,
    ``studies/smoke``). See :func:`study_file`.

    Parameters
    ----------
    name_or_path : str or Path
        A built-in study name or a YAML file.
    *sets : str
        ``"key.path=value"`` overrides, as ``--set`` takes them (values read as YAML).
    **overrides
        Top-level keys; a mapping merges into the study's mapping (``train={"lr": 0.01}`` changes the
        learning rate and keeps the study's other training settings), anything else replaces the
        value. ``None`` means "not given" (the study's value stays).

    Raises
    ------
    SpecError
        Unknown study, unreadable YAML, a malformed override, unknown keys or wrong types.

    Examples
    --------
    >>> spec = load_spec("smoke", "train.lr=1e-3", seeds=[0])
    >>> spec.train.lr, spec.train.epochs, spec.seeds
    (0.001, 2, (0,))
    """
    try:
        changes = [parse_override(text) for text in sets]
    except OverrideError as exc:
        raise SpecError(str(exc)) from None
    changes += [((key,), value) for key, value in overrides.items() if value is not None]
    return load_spec_with(name_or_path, changes)


def load_spec_with(name_or_path: str | Path, changes: Sequence[tuple[tuple[str, ...], object]]) -> StudySpec:
    """:func:`load_spec` with its overrides given as ``(key path, value)`` pairs, applied in order.

    The resolved study is validated as a study file is: the same rules and messages, so an unknown
    key in an override is named with the valid keys.
    """
    path = study_file(name_or_path)
    try:
        raw = read_yaml(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read study file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"study file {path} must hold a mapping of keys, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    where = str(path)
    if changes:
        try:
            raw = apply_overrides(raw, changes)
        except OverrideError as exc:
            raise SpecError(f"{path}: {exc}") from None
        where += " with " + ", ".join(f"{'.'.join(key)}={value!r}" for key, value in changes)
    return from_dict(StudySpec, raw, where=where)


def study_file(name_or_path: str | Path) -> Path:
    """The YAML file a ``--study`` argument names.

    A bare built-in name resolves to ``experiments/studies/<name>.yaml`` whatever lies in the working
    directory; anything else is a path. A bare word that is neither a built-in name nor a file is an
    unknown study.
    """
    text = str(name_or_path)
    bare = isinstance(name_or_path, str) and os.sep not in text and "/" not in text
    if bare and text in list_studies():
        return STUDIES_DIR / f"{text}.yaml"
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.is_dir():
        raise SpecError(f"study {text!r} is a folder; give a built-in study name or a YAML file")
    if bare and not path.suffix:
        known = ", ".join(list_studies())
        raise SpecError(f"unknown study {text!r}; choose from {known} or give a YAML path")
    raise SpecError(f"cannot read study file {path}: no such file")


def list_studies() -> list[str]:
    """Names of the built-in studies."""
    return sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))
