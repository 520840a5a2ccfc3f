"""Write a rendered report into its output directory atomically, never touching what it did not write.

Everything is written into a staging folder beside the target, then swapped into place, so a failed run
never leaves a half-written report and the previous report stays whole until the new one is complete
(:func:`downscalexr.safe_output.publish_directory`; on Linux there is no moment without a report). The
target must be new, empty, or marked as a report's by the file :data:`MARKER` that every report
leaves in its folder; a directory without it is refused whatever its files are called (a thesis with a
``report.tex``, a results directory), and nothing in it is removed. Staging folders that a killed
report left (``.<name>.<random>.tmp``) are removed at the next run. A report folder holds::

    .downscalexr-report (the marker), report.md, report.tex
    tables/<name>.{csv,parquet,tex}
    figures/<name>.{png,pdf}
"""

from __future__ import annotations

import shutil
from pathlib import Path

from analysis.report.document import Section
from analysis.report.render import to_latex
from downscalexr.safe_output import (
    NotOurDirectoryError,
    is_empty_or_ours,
    make_staging_directory,
    publish_directory,
    remove_leftover_staging,
)

MARKER = ".downscalexr-report"
OWNER = "python -m analysis.report"


class OutputError(ValueError):
    """The output directory holds something a report did not write; the message names it."""


def check_target(target: Path) -> None:
    """Refuse a target that is a file, or a non-empty directory without a report's :data:`MARKER`.

    Raises
    ------
    OutputError
        Naming the directory, what is in it, and what to do.
    """
    if target.exists() and not target.is_dir():
        raise OutputError(f"--out {target} is a file; give a directory for the report")
    if not is_empty_or_ours(target, MARKER):
        names = sorted(p.name for p in target.iterdir())
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise OutputError(
            f"--out {target} holds files a report did not write ({shown}; no {MARKER} marker); the report "
            "writes only into a new or empty directory or an earlier report's, and removes nothing else: "
            "give another --out (a report from before the marker existed: delete it yourself)"
        )


def _write_section(folder: Path, section: Section, formats: set[str]) -> None:
    """A section's tables (CSV, Parquet, and LaTeX with ``tex``) and figures (PNG, and PDF)."""
    for t in section.tables:
        t.raw.to_csv(folder / "tables" / f"{t.name}.csv", index=False)
        t.raw.reset_index(drop=True).to_parquet(folder / "tables" / f"{t.name}.parquet", index=False)
        if "tex" in formats:
            tex = to_latex(t.display, caption=t.caption, label=f"tab:{t.name}", note=t.note)
            (folder / "tables" / f"{t.name}.tex").write_text(tex, encoding="utf-8")
    for name, _, fig in section.figures:
        fig.savefig(folder / "figures" / f"{name}.png", dpi=130)
        if "pdf-figures" in formats:
            fig.savefig(folder / "figures" / f"{name}.pdf", metadata={"CreationDate": None})


def write_outputs(target: Path, files: dict[str, str], sections: list[Section], formats: set[str]) -> None:
    """Write ``files`` (name -> text) and every section's tables and figures, then swap into ``target``.

    Parameters
    ----------
    target : Path
        The report directory; an existing report is replaced only once the new one is complete.
    files : dict of str to str
        Top-level text files, e.g. ``report.md``.
    sections : list of Section
        Their tables and figures are written under ``tables/`` and ``figures/``.
    formats : set of str
        ``tex`` adds ``tables/*.tex``; ``pdf-figures`` adds ``figures/*.pdf``.

    Raises
    ------
    OutputError
        If ``target`` holds anything a report did not write (see :func:`check_target`).
    """
    check_target(target)
    remove_leftover_staging(target.parent, target.name)
    staging = make_staging_directory(target.parent, target.name)
    try:
        (staging / "tables").mkdir()
        (staging / "figures").mkdir()
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        for section in sections:
            _write_section(staging, section, formats)
        publish_directory(staging, target, MARKER, OWNER)
    except NotOurDirectoryError as exc:  # appeared between the check and the swap
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(str(exc)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
