"""``key.path=value`` overrides of a nested configuration, and the YAML reading they share with study files.

Shared by the grid runner (``experiments``: ``--set`` on a study file) and the report (``analysis``:
``--set`` on the study it reads), which must not import ``experiments``; hence it lives in the library.
Values are YAML, read like a study file (:func:`read_yaml`), so ``--set train.lr=1e-3`` is the number
0.001 and ``--set 'variants=[avgpool, maxpool]'`` a list. Overrides deep-merge: a mapping merges into the
mapping it replaces key by key, anything else (a number, a list) replaces the old value.

Examples
--------
>>> study = {"train": {"lr": 0.01, "epochs": 2}, "seeds": [0, 1]}
>>> apply_overrides(study, [parse_override("train.lr=1e-3"), parse_override("seeds=[3]")])
{'train': {'lr': 0.001, 'epochs': 2}, 'seeds': [3]}
>>> deep_merge(study, {"train": {"epochs": 5}})
{'train': {'lr': 0.01, 'epochs': 5}, 'seeds': [0, 1]}
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping

import yaml

# YAML 1.1 (PyYAML) reads ``1e-3`` as text; YAML 1.2 and every user read it as a number.
_FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
# a key path: identifiers (letters, digits, "_" or "-") joined by dots, e.g. ``train.lr``, ``data.min_val``
_KEY_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)*$")


class OverrideError(ValueError):
    """An override is malformed or does not fit the configuration; the message says how to write it."""


class _StudyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-3`` (no dot before the exponent) as the number it means."""


_StudyLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_WITHOUT_DOT, list("-+0123456789"))


def read_yaml(text: str):
    """Parse YAML text as study files are read: PyYAML's safe loader, but ``1e-3`` is the float 0.001.

    Examples
    --------
    >>> read_yaml("lr: 1e-3")
    {'lr': 0.001}
    """
    return yaml.load(text, Loader=_StudyLoader)


def looks_like_override(text: str) -> bool:
    """Whether ``text`` has the form ``key.path=value`` (a command-line word that is an override).

    Examples
    --------
    >>> looks_like_override("train.lr=0.01"), looks_like_override("avgpool"), looks_like_override("a b=1")
    (True, False, False)
    """
    key, sep, _ = text.partition("=")
    return bool(sep) and bool(_KEY_PATH.match(key))


def parse_override(text: str) -> tuple[tuple[str, ...], object]:
    """Split ``key.path=value`` into the key path and the value read as YAML.

    Raises
    ------
    OverrideError
        No ``=``, a key path that is not dot-separated names, or a value that is not valid YAML.

    Examples
    --------
    >>> parse_override("data.min_val=5")
    (('data', 'min_val'), 5)
    >>> parse_override("factors.location_shift=[null, 0.5]")
    (('factors', 'location_shift'), [None, 0.5])
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not _KEY_PATH.match(key):
        raise OverrideError(
            f"override {text!r} is not of the form key.path=value (e.g. train.lr=0.001, data.min_val=5, "
            "'variants=[avgpool, maxpool]')"
        )
    try:
        parsed = read_yaml(value) if value.strip() else None
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise OverrideError(
            f"override {text!r}: the value is not valid YAML ({problem}); quote the whole override for "
            "the shell, e.g. --set 'variants=[avgpool, maxpool]'"
        ) from None
    return tuple(key.split(".")), parsed


def deep_merge(base: Mapping, changes: Mapping) -> dict:
    """``base`` with ``changes`` merged in: mappings key by key (recursively), other values replaced.

    Neither argument is modified.
    """
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def nested(path: tuple[str, ...], value) -> dict:
    """The one-key mapping that sets ``path`` to ``value``: ``nested(("a", "b"), 1) == {"a": {"b": 1}}``."""
    for key in reversed(path):
        value = {key: value}
    return value


def apply_overrides(base: Mapping, overrides: Iterable[tuple[tuple[str, ...], object]]) -> dict:
    """``base`` with every ``(key path, value)`` deep-merged in, in order; ``base`` is not modified.

    A key that does not exist yet is created (the configuration's own validation then names it as
    unknown, with the valid keys). A path through a value that is not a mapping is refused.

    Raises
    ------
    OverrideError
        When a path leads through a value that is not a mapping (``train.lr.x`` where ``train.lr`` is a
        number), or the same key path is given twice with different values.
    """
    out = copy.deepcopy(dict(base))
    seen: dict[tuple[str, ...], object] = {}
    for path, value in overrides:
        if path in seen and seen[path] != value:
            raise OverrideError(
                f"{'.'.join(path)} is set twice, to {seen[path]!r} and to {value!r}; give it once"
            )
        seen[path] = value
        node = out
        for depth, key in enumerate(path[:-1]):
            inner = node.get(key)
            if inner is not None and not isinstance(inner, Mapping):
                where = ".".join(path[: depth + 1])
                raise OverrideError(
                    f"cannot set {'.'.join(path)}: {where} is {inner!r}, not a mapping of keys; set {where} "
                    "itself instead"
                )
            node = inner if inner is not None else {}
        out = deep_merge(out, nested(path, value))
    return out


def unknown_keys(base: Mapping, overrides: Iterable[tuple[tuple[str, ...], object]]) -> str | None:
    """A message naming the first override whose key path ``base`` does not have (None when all exist).

    For configurations that are plain mappings (the report's view of a stored study), where no
    dataclass names the valid keys; lists the valid keys at the level of the first unknown one.
    """
    for path, _ in overrides:
        node = base
        for depth, key in enumerate(path):
            if not isinstance(node, Mapping) or key not in node:
                where = ".".join(path[:depth]) or "the study"
                valid = ", ".join(sorted(map(str, node))) if isinstance(node, Mapping) else "none"
                return f"{where}: unknown key {key!r} in {'.'.join(path)}; valid keys are {valid}"
            node = node[key]
    return None
