"""Write a rendered report into its output directory atomically.

Everything is written into a temporary sibling of the target, then swapped into place, so a failed run
never leaves a half-written report and the previous report stays untouched until the new one is whole.
The target must be new, empty or a report (nothing but the entries below): a directory holding anything
else is refused, never replaced::

    report.md, report.tex
    tables/<name>.{csv,parquet,tex}
    figures/<name>.{png,pdf}
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from analysis.report.document import Section
from analysis.report.render import to_latex

REPORT_ENTRIES = frozenset({"report.md", "report.tex", "tables", "figures"})


class OutputError(ValueError):
    """The output directory holds something a report did not write; the message names it."""


def check_target(target: Path) -> None:
    """Refuse a target that is a file or a directory holding anything but a report's own entries.

    Raises
    ------
    OutputError
        Naming what is in the way and what to do.
    """
    if target.exists() and not target.is_dir():
        raise OutputError(f"--out {target} is a file; give a directory for the report")
    if target.is_dir():
        foreign = sorted(p.name for p in target.iterdir() if p.name not in REPORT_ENTRIES)
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise OutputError(
                f"--out {target} holds files a report did not write ({shown}); the report replaces its "
                "output directory, so give a new or empty one"
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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        (tmp / "tables").mkdir()
        (tmp / "figures").mkdir()
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        for section in sections:
            _write_section(tmp, section, formats)
        backup = target.with_name(f".{target.name}.old")
        if backup.exists():
            shutil.rmtree(backup)
        if target.exists():
            os.replace(target, backup)
        os.replace(tmp, target)
        shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
