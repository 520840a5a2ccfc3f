"""Which stored runs a report analyses, and against which reference (the report's ``--set``, ``--reference``).

The report reads a finished study; it cannot change how the runs were made. Its ``--set key=value``
overrides (parsed like the grid's, see :mod:`downscalexr.overrides`) take the keys of the study that
the report itself interprets: ``reference`` (the variant every contrast is against) and ``variants``,
``seeds``, ``fractions`` (analyse only these stored levels). A key that describes how runs were made
(``train.lr``, ``data.n_train``, ...) is refused with a pointer to the grid.

Without ``--reference`` the study's own ``reference`` is used when it has successful runs, else the first
variant of the study (in the study's order); the report says which and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.design import base_runs
from analysis.load import LoadError
from downscalexr.overrides import OverrideError, parse_override, unknown_keys

REPORT_KEYS = ("reference", "variants", "seeds", "fractions")
NO_VARIANT = "none"  # the variant of model families without downsampling (the MLP): never selected away


@dataclass(frozen=True)
class Selection:
    """The report's choices about the stored study.

    Attributes
    ----------
    reference : str or None
        Given with ``--set reference=`` (None: not given).
    levels : mapping of str to tuple
        ``variants`` / ``seeds`` / ``fractions`` to keep (a key absent: keep every stored level).
    """

    reference: str | None = None
    levels: Mapping[str, tuple] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", dict(self.levels or {}))

    def describe(self) -> str | None:
        """One provenance sentence for the levels kept, or None when every run is analysed."""
        if not self.levels:
            return None
        parts = [f"{key} {', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in values)}"
                 for key, values in self.levels.items()]  # fmt: skip
        return "Runs analysed: only " + "; ".join(parts) + " (the report's --set)."


def parse_selection(texts: Sequence[str], spec: object) -> Selection:
    """Read the report's ``key=value`` overrides against the stored study ``spec`` (a mapping or None).

    Raises
    ------
    OverrideError
        A malformed override, a key the report does not take (the message lists the ones it does, and
        sends keys of how runs were made to the grid), or a value of the wrong kind.
    """
    reference, levels = None, {}
    for text in texts:
        path, value = parse_override(text)
        key = ".".join(path)
        if key not in REPORT_KEYS:
            known = isinstance(spec, Mapping) and unknown_keys(spec, [(path, value)]) is None
            if known:
                raise OverrideError(
                    f"--set {key}: the report cannot change {key}, it describes how the stored runs were "
                    f"made; rerun the grid with --set {key}=... into a new --out. The report's --set "
                    f"takes {', '.join(REPORT_KEYS)}"
                )
            raise OverrideError(
                f"--set {key}: unknown key; the report's --set takes {', '.join(REPORT_KEYS)}"
            )
        if key == "reference":
            if not isinstance(value, str):
                raise OverrideError(f"--set reference: expected a variant name, got {value!r}")
            reference = value
        else:
            levels[key] = _levels(key, value)
    return Selection(reference, levels)


def _levels(key: str, value) -> tuple:
    values = value if isinstance(value, list) else [value]
    kind = {"variants": str, "seeds": int, "fractions": (int, float)}[key]
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, kind)]
    if bad or not values:
        example = {"variants": "[avgpool, maxpool]", "seeds": "[0, 1, 2]", "fractions": "[0.5, 1.0]"}[key]
        raise OverrideError(f"--set {key}: expected a list such as {key}={example}, got {value!r}")
    return tuple(float(v) for v in values) if key == "fractions" else tuple(values)


def select_runs(tables: Mapping[str, pd.DataFrame], selection: Selection) -> dict[str, pd.DataFrame]:
    """The tables cut to the selected levels (every table by the kept runs' ``run_id``).

    Model families without downsampling (variant ``none``, the MLP) are kept whatever ``variants`` says,
    as a study's own ``variants`` never lists them.

    Raises
    ------
    LoadError
        A selected level that has no runs in the study (the stored levels are listed).
    """
    runs = tables["runs"]
    keep = pd.Series(True, index=runs.index)
    column = {"variants": "variant", "seeds": "seed", "fractions": "data_fraction"}
    for key, wanted in selection.levels.items():
        stored = runs[column[key]]
        present = sorted(set(stored.dropna()) - {NO_VARIANT})
        if key == "fractions":
            hit = np.isclose(stored.to_numpy(dtype=float)[:, None], np.array(wanted)[None, :]).any(axis=1)
            missing = [w for w in wanted if not np.isclose(present, w).any()]
            mask = pd.Series(hit, index=runs.index)
        else:
            missing = [w for w in wanted if w not in present]
            mask = stored.isin(wanted) | ((stored == NO_VARIANT) if key == "variants" else False)
        if missing:
            raise LoadError(
                f"--set {key}: {', '.join(map(str, missing))} not in the study; it has "
                f"{', '.join(map(str, present))}"
            )
        keep &= mask.fillna(False).astype(bool)
    if keep.all():
        return dict(tables)
    kept = runs[keep].reset_index(drop=True)
    ids = set(kept["run_id"])
    out = {
        name: t[t["run_id"].isin(ids)].reset_index(drop=True) for name, t in tables.items() if name != "runs"
    }
    return {"runs": kept, **out}


def choose_reference(runs: pd.DataFrame, spec: object, given: str | None) -> tuple[str, str]:
    """The reference variant and why it was chosen (for the log and the provenance section).

    ``given`` (``--reference`` or ``--set reference=``) wins; else the study's ``reference`` when it has
    successful runs among the standard (CNN, base-level) runs; else the first such variant in the study's
    ``variants`` order (alphabetical for variants the study file does not list).

    Raises
    ------
    LoadError
        When no variant has successful runs.
    """
    ok = base_runs(runs)
    ok = ok[ok["status"] == "ok"]
    variants = sorted(set(ok["variant"].dropna()))
    if given is not None:
        return given, f"{given} (chosen on the command line)"
    if not variants:
        raise LoadError("no variant has successful runs; nothing to compare")
    spec = spec if isinstance(spec, Mapping) else {}
    own = spec.get("reference")
    if own in variants:
        return own, f"{own} (the study's reference)"
    listed = [v for v in spec.get("variants") or [] if v in variants]
    first = (listed + [v for v in variants if v not in listed])[0]
    reason = (
        f"the study's reference {own!r} has no successful runs here"
        if own is not None
        else "the study records no reference"
    )
    return first, f"{first} (the first variant: {reason}; choose another with --reference)"
