"""Colours of the report: one per variant for the whole study, one per verdict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import seaborn as sns

from analysis.verdicts.rules import CONTRADICTED, REVERSED, SUPPORTED, UNRESOLVED

VERDICT_COLOURS = {SUPPORTED: "#1b7837", REVERSED: "#b2182b", CONTRADICTED: "#e08214", UNRESOLVED: "0.45"}


def variant_palette(variants: Iterable, reference: str | None = None) -> dict[str, tuple]:
    """One colour per variant (the reference first, then the others sorted), from seaborn's colour-blind set.

    The report builds one palette for the whole study (:func:`analysis.report.document.study_palette`)
    and hands it to every figure, so a variant has the same colour everywhere.

    Examples
    --------
    >>> list(variant_palette(["strided", "avgpool", "maxpool"], reference="maxpool"))
    ['maxpool', 'avgpool', 'strided']
    """
    names = sorted(set(map(str, variants)))
    if reference in names:
        names.remove(reference)
        names.insert(0, reference)
    return dict(zip(names, sns.color_palette("colorblind", max(len(names), 1)), strict=False))


def colours_for(
    names: Iterable, palette: Mapping[str, tuple] | None = None, reference: str | None = None
) -> dict[str, tuple]:
    """The colours of the variants ``names`` in palette order: from ``palette``, or a new one without it.

    Raises
    ------
    ValueError
        If ``palette`` has no colour for one of ``names``.
    """
    present = sorted(set(map(str, names)))
    if palette is None:
        return variant_palette(present, reference)
    missing = [n for n in present if n not in palette]
    if missing:
        raise ValueError(
            f"the palette has no colour for {missing}; build one for every variant of the study with "
            "analysis.report.figures.variant_palette"
        )
    return {name: palette[name] for name in palette if name in present}
