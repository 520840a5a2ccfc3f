"""YAML text to frozen dataclasses: keys and types checked, every mistake named with the valid choices.

Machinery for :mod:`experiments.spec` (which re-exports :class:`SpecError`, :func:`from_dict` and
:func:`read_yaml`, which lives in :mod:`downscalexr.overrides` with the ``key.path=value`` override
helpers re-exported here, so the report reads values the same way).
"""

from __future__ import annotations

import dataclasses
import types
import typing

from downscalexr.overrides import OverrideError, apply_overrides, parse_override, read_yaml

__all__ = [
    "OverrideError",
    "SpecError",
    "apply_overrides",
    "from_dict",
    "parse_override",
    "plain",
    "read_yaml",
]


class SpecError(ValueError):
    """A study file or override is malformed; the message names the key and the valid choices."""


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
        if value is None and type(None) in typing.get_args(typing.get_args(hint)[0]):
            value = [None]
        if isinstance(value, (str, int, float, dict)):
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


def plain(value):
    """``value`` with tuples as lists, recursively: YAML/JSON-ready."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
