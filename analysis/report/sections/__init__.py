"""The report's sections, one module each, run in the order of :data:`SECTIONS`.

Every section module has ``build(study, settings) -> (Section, result)``: it takes the
:class:`~analysis.report.document.Study` and :class:`~analysis.report.document.Settings`, computes its
statistics with :mod:`analysis.stats` (and :mod:`analysis.verdicts`), and returns the section's text,
tables and figures together with the frame the summary of findings may need (under the section's
name in the results). To add a section: write its module here and add one :class:`SectionSpec` line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from analysis.report.document import Section, Settings, Study
from analysis.report.sections import (
    bias,
    calibration,
    claims,
    compression,
    contrasts,
    curves,
    dilution,
    errors,
    inductive,
    latency,
    metrics,
    mixed,
    power,
    predictions,
    saliency,
    training_curves,
)


def _always(study: Study) -> bool:
    return True


@dataclass(frozen=True)
class SectionSpec:
    """One registered section: its name (the key of its result), its builder, and when it applies."""

    name: str
    build: Callable[[Study, Settings], tuple[Section, object]]
    applies: Callable[[Study], bool] = _always


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("metrics", metrics.build),
    SectionSpec("contrasts", contrasts.build),
    SectionSpec("mixed models", mixed.build),
    SectionSpec("bias", bias.build, bias.applies),
    SectionSpec("predictions", predictions.build),
    SectionSpec("curves", curves.build),
    SectionSpec("latency", latency.build),
    SectionSpec("power", power.build),
    SectionSpec("claims", claims.build),
    SectionSpec("calibration", calibration.build),
    SectionSpec("inductive bias", inductive.build, inductive.applies),
    SectionSpec("training curves", training_curves.build, training_curves.applies),
    SectionSpec("errors", errors.build, errors.applies),
    SectionSpec("dilution", dilution.build, dilution.applies),
    SectionSpec("saliency", saliency.build, saliency.applies),
    SectionSpec("compression", compression.build, compression.applies),
)


def build_sections(study: Study, settings: Settings, log: Callable[[str], None] = lambda _: None):
    """Build every section that applies to ``study``, in order, logging each one's time.

    Returns
    -------
    tuple
        ``(sections, results)``: the built :class:`Section` objects and a dict of each section's result
        by name.
    """
    sections, results = [], {}
    for spec in SECTIONS:
        if not spec.applies(study):
            continue
        start = time.perf_counter()
        section, result = spec.build(study, settings)
        sections.append(section)
        results[spec.name] = result
        log(f"  {spec.name}: {time.perf_counter() - start:.1f} s")
    return sections, results


__all__ = ["SECTIONS", "SectionSpec", "build_sections"]
