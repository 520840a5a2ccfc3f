"""The report's document model: the settings of one report, the study it describes, and its parts.

A report is a list of :class:`Section` objects (paragraphs, :class:`Table` objects and figures), built
by the modules of :mod:`analysis.report.sections` from a :class:`Study` under the :class:`Settings` of
the command line, then rendered by :mod:`analysis.report.render` and written by
:mod:`analysis.report.write`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from analysis.design import base_runs, design_frame
from analysis.report.figures.palette import variant_palette
from analysis.report.format import is_unit_metric
from analysis.stats.intervals import INTERVAL_RULE  # noqa: F401 (the sections' words for the intervals)
from analysis.verdicts.hypotheses import DEFAULT_MARGIN


@dataclass
class Table:
    """One table: ``raw`` (tidy, full precision) goes to CSV/Parquet, ``display`` to Markdown/LaTeX."""

    name: str
    caption: str
    raw: pd.DataFrame
    display: pd.DataFrame
    note: str | None = None


@dataclass
class Section:
    """A titled part of the report: paragraphs, tables and figures (``(name, caption, fig)``)."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str, object]] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    """The analysis choices of one report (the command line's flags).

    Attributes
    ----------
    reference : str
        The variant every contrast is against.
    metrics : tuple of str
        Runs-table metrics to analyse; the first is the primary metric.
    n_boot, alpha, seed
        Bootstrap resamples, 1 - confidence level, seed of every random draw.
    margin : float
        Equivalence margin of the inductive-bias tests (accuracy scale).
    """

    reference: str
    metrics: tuple[str, ...]
    n_boot: int
    alpha: float
    seed: int
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))

    @property
    def kw(self) -> dict:
        return {"n_boot": self.n_boot, "alpha": self.alpha, "seed": self.seed}

    @property
    def level(self) -> str:
        return f"{100 * (1 - self.alpha):g} %"


@dataclass(frozen=True)
class Study:
    """The loaded study as every section sees it.

    Attributes
    ----------
    tables : mapping of str to DataFrame
        Every table of the study, every run (MLP, permuted, shifted, edge-initialised included).
    standard : mapping of str to DataFrame
        The same tables with ``runs`` cut to the CNN runs at the base level of every factor
        (:func:`analysis.design.base_runs`): what the standard sections compare.
    palette : mapping of str to colour
        One colour per variant and arm, the same in every figure of the report.
    """

    tables: Mapping[str, pd.DataFrame]
    standard: Mapping[str, pd.DataFrame]
    palette: Mapping[str, tuple]

    @classmethod
    def of(cls, tables: Mapping[str, pd.DataFrame], reference: str) -> Study:
        """The study of ``tables``, with its standard cut and a palette that puts ``reference`` first."""
        standard = {**tables, "runs": base_runs(tables["runs"])}
        return cls(tables, standard, study_palette(tables["runs"], reference))


def study_palette(runs: pd.DataFrame, reference: str) -> dict[str, tuple]:
    """One colour for every variant and every model arm (``mlp``, ``model:variant``) of the study."""
    d = design_frame(runs)
    names = set(d.loc[~d["is_mlp"], "variant"].astype(str)) | set(d["arm"])
    return variant_palette(names, reference)


def fraction_label(value: float) -> str:
    """``"pooled"`` for the NaN fraction of pooled rows, else the fraction as text."""
    return "pooled" if pd.isna(value) else f"{value:g}"


def order_variants(frame: pd.DataFrame, reference: str, by=("variant", "data_fraction")) -> pd.DataFrame:
    """Rows with the reference variant first, then other variants and ``by`` columns in sorted order."""
    key = frame["variant"].astype(str).map(lambda v: (v != reference, v))
    cols = [c for c in by if c != "variant"]
    return frame.assign(_k=key).sort_values(["_k", *cols], na_position="last").drop(columns="_k")


def pp_suffix(metric: str) -> str:
    """`` (pp)`` for metrics shown in percentage points, else nothing."""
    return " (pp)" if is_unit_metric(metric) else ""
