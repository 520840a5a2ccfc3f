"""Argument checks shared by the generators' parameter classes.

Each check returns the value in its normal form (an ``int``, a ``float``, a ``(low, high)`` tuple, a tuple
of names) or raises ``ValueError`` saying which parameter is wrong, what it got and what is allowed.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

__all__ = [
    "count",
    "flag",
    "jsonable",
    "names",
    "normalise",
    "number",
    "region",
    "round_half_up",
    "span",
]


def count(name: str, value, minimum: int = 1) -> int:
    """``value`` as an ``int >= minimum`` (booleans are not counts)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def number(name: str, value, lo: float, hi: float, *, lo_open=False, hi_open=False) -> float:
    """``value`` as a finite ``float`` in the interval from ``lo`` to ``hi`` (closed unless told open)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (value < hi if hi_open else value <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
    return float(value)


def flag(name: str, value) -> bool:
    """``value`` as a ``bool``; only ``True`` and ``False`` (and numpy booleans) are accepted."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def _is_seq(value) -> bool:
    return isinstance(value, (tuple, list))


def span(name: str, value, lo: float = 0.0, hi: float = math.inf, *, integer=False) -> tuple:
    """A ``(low, high)`` range with ``lo <= low <= high <= hi``; a single number means ``(v, v)``."""
    if isinstance(value, Real) and not isinstance(value, bool):
        value = (value, value)
    if not _is_seq(value) or len(value) != 2:
        raise ValueError(f"{name} must be a (low, high) pair, got {value!r}")
    if integer:
        low, high = (count(name, v, int(lo)) for v in value)
    else:
        low, high = (number(name, v, lo, hi) for v in value)
    if low > high or high > hi:
        raise ValueError(f"{name} must satisfy {lo} <= low <= high <= {hi}, got {value!r}")
    return low, high


def names(name: str, value, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Distinct names from ``allowed``; a single string means a one-name tuple."""
    given = (value,) if isinstance(value, str) else tuple(value)
    unknown = [v for v in given if v not in allowed]
    if not given or unknown or len(set(given)) != len(given):
        raise ValueError(
            f"{name} must be distinct names from {', '.join(allowed)}; got {value!r}"
            + (f" (unknown: {', '.join(map(str, unknown))})" if unknown else "")
        )
    return given


def region(value, image_size: int, max_width: float) -> tuple[float, float]:
    """A ``(start_frac, end_frac)`` band wide enough for edges up to ``max_width`` pixels; None: all."""
    if value is None:
        return 0.0, 1.0
    if not _is_seq(value) or len(value) != 2:
        raise ValueError(f"region must be None or a (start_frac, end_frac) pair, got {value!r}")
    start, end = (number("region", v, 0.0, 1.0) for v in value)
    if start >= end:
        raise ValueError(f"region start must be below its end, got {value!r}")
    if (end - start) * image_size < max_width + 1:
        raise ValueError(
            f"region {value!r} spans {(end - start) * image_size:.1f} pixels of a {image_size}-pixel "
            f"image, too narrow for edges up to {max_width} pixels wide; widen it or narrow the edges"
        )
    return start, end


def round_half_up(x: float) -> int:
    """``x`` rounded to the nearest integer, halves upwards (Python's ``round`` rounds half to even)."""
    return int(math.floor(x + 0.5))


def jsonable(value):
    """``value`` with tuples as lists and numpy scalars as Python numbers, for ``json.dumps``."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def normalise(obj, **values) -> None:
    """Store checked ``values`` on the frozen dataclass ``obj`` (for use in ``__post_init__``)."""
    for key, value in values.items():
        object.__setattr__(obj, key, value)
