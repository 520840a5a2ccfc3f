"""The report: ``python -m analysis.report`` turns a study's tables into Markdown, LaTeX, tables, figures.

=======================  =========================================================================
module                   job
=======================  =========================================================================
``cli``                  the command line: load, check, build the sections, render, write
``document``             the document model: Settings, Study (tables + palette), Section, Table
``sections/``            one module per report section and the registry that orders them
``figures/``             one module per kind of figure; ``(fig, axes)``, ``ax=None``, ``palette``
``summary``              the summary of findings in plain words
``provenance``           which code, study, seeds and machine produced the report
``format``               numbers -> table cells (intervals, p-values, percentage points)
``render``               the document -> Markdown and LaTeX text
``write``                the atomic write of the output directory
=======================  =========================================================================
"""

from analysis.report.cli import build_parser, main
from analysis.report.document import Section, Settings, Study, Table
from analysis.report.sections import SECTIONS, build_sections

__all__ = ["SECTIONS", "Section", "Settings", "Study", "Table", "build_parser", "build_sections", "main"]
