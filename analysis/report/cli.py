"""``python -m analysis.report``: study tables -> statistics -> Markdown/LaTeX report with figures.

Output (``reports/<study>/`` by default), written to a temporary folder and renamed into place so a
failed run never leaves a half-written report::

    report.md                 summary of findings, tables, figures, provenance
    report.tex                a complete LaTeX document that \\input's tables/*.tex
    tables/<name>.{tex,csv,parquet}
    figures/<name>.{png,pdf}

The output directory must be new, empty or an earlier report (marked by ``.downscalexr-report``);
anything else is refused and nothing in it is removed. ``--study`` is a plain name (``results/<NAME>``);
give any other results directory with ``--results``.

Exit status: 0 on success, 2 when the results are missing, invalid or mixed (two specifications in one
directory), an override is bad, or the output directory holds files a report did not write (one line
on stderr names why).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from pathlib import Path

from analysis.load import LoadError, load_study, read_provenance
from analysis.report.document import Settings, Study
from analysis.report.provenance import provenance_lines, spec_block
from analysis.report.render import render_latex, render_markdown
from analysis.report.sections import build_sections
from analysis.report.selection import REPORT_KEYS, choose_reference, parse_selection, select_runs
from analysis.report.summary import summary_lines
from analysis.report.write import OutputError, check_target, write_outputs
from analysis.verdicts.hypotheses import DEFAULT_MARGIN
from downscalexr import schema
from downscalexr.overrides import OverrideError, looks_like_override

FORMATS = ("md", "tex", "pdf-figures")
DEFAULT_METRICS = ("accuracy", "balanced_accuracy", "auroc")
# a study name as the grid allows it: a folder name under results/ (no separators, no "..")
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (``--help`` explains every flag)."""
    p = argparse.ArgumentParser(
        prog="python -m analysis.report",
        description="Statistics and report for one study: reads results/<study>/ (runs, epochs, predictions, "
        "latency Parquet tables) and writes reports/<study>/ (report.md, report.tex, tables/, figures/).",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--study",
        default="default",
        help="study name: reads results/<NAME>/, writes reports/<NAME>/ (default: default); a plain name, "
        "other directories go to --results",
    )
    src.add_argument(
        "--results", type=Path, help="read the study from this directory instead of results/<study>/"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="output directory (default: reports/<study>/): new, empty or an earlier report (it holds a "
        ".downscalexr-report marker), which is replaced atomically; any other directory is refused and "
        "nothing in it is removed",
    )
    p.add_argument(
        "--reference",
        help="variant every contrast is against (default: the study's reference when it has successful "
        "runs, else the study's first variant; the report says which)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="KEY=VALUE",
        help=f"analyse part of the study, value read as YAML (repeatable; keys {', '.join(REPORT_KEYS)}): "
        "--set 'variants=[avgpool, maxpool]' --set 'seeds=[0, 1, 2]' --set reference=maxpool",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the same as --set KEY=VALUE")
    p.add_argument(
        "--metrics",
        nargs="+",
        default=list(DEFAULT_METRICS),
        metavar="METRIC",
        help="runs-table metrics to analyse; the first is the primary metric of curves and trade-offs; all "
        f"of them form the Holm family (default: {' '.join(DEFAULT_METRICS)})",
    )
    p.add_argument(
        "--bootstrap", type=int, default=10000, metavar="N", help="bootstrap resamples (default: 10000)"
    )
    p.add_argument(
        "--alpha", type=float, default=0.05, help="1 - confidence level of every interval (default: 0.05)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of every random draw; same seed, same tables (default: 0)"
    )
    p.add_argument(
        "--format",
        default="md,tex,pdf-figures",
        help="comma-separated outputs: md (report.md), tex (report.tex + tables/*.tex), "
        "pdf-figures (figures also as PDF; PNG is always written). "
        "CSV/Parquet tables are always written (default: md,tex,pdf-figures)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help="equivalence margin of the inductive-bias tests on the accuracy scale, e.g. 0.02 = 2 percentage "
        f"points (default: {DEFAULT_MARGIN:g})",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return p


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> set[str]:
    formats = {f.strip() for f in args.format.split(",") if f.strip()}
    if not formats or formats - set(FORMATS):
        p.error(f"--format {args.format!r}: choose a comma-separated subset of {', '.join(FORMATS)}")
    if args.bootstrap < 100:
        p.error(f"--bootstrap {args.bootstrap}: need at least 100 resamples (10000 for a report to cite)")
    if not 0 < args.alpha < 0.5:
        p.error(f"--alpha {args.alpha}: must lie in (0, 0.5), e.g. 0.05 for 95 % intervals")
    if not 0 < args.margin < 1:
        p.error(f"--margin {args.margin}: must lie in (0, 1), e.g. 0.02 for 2 percentage points")
    if args.seed < 0:
        p.error(f"--seed {args.seed}: must be a non-negative integer")
    unknown = [m for m in args.metrics if m not in schema.METRIC_COLUMNS]
    if unknown:
        p.error(f"--metrics: unknown {unknown}; choose from {', '.join(schema.METRIC_COLUMNS)}")
    return formats


def _check_study(study: Study, settings: Settings) -> None:
    """Refuse a study the standard sections cannot analyse, naming what to change."""
    runs = study.standard["runs"]
    ok = runs[runs["status"] == "ok"]
    variants = sorted(set(ok["variant"]))
    if settings.reference not in variants:
        raise LoadError(
            f"reference variant {settings.reference!r} has no successful runs; choose from {variants}"
        )
    if len(variants) < 2:
        raise LoadError(f"the study has one variant ({variants[0]}); contrasts need at least two")
    empty = [m for m in settings.metrics if ok[m].isna().all()]
    if empty:
        raise LoadError(f"metrics {empty} are missing in every successful run; choose others with --metrics")


def _warnings_line(caught: list) -> str:
    """The numerical warnings raised during the analysis, counted and listed once each."""
    unique = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught})
    return (
        f"Numerical warnings raised by numpy/scipy/statsmodels during the analysis: {len(caught)} "
        f"({len(unique)} distinct): {'; '.join(unique[:8])}. Mixed-model fit problems are interpreted in "
        "'Mixed-effects models'."
    )


def _render(title: str, summary: list[str], sections: list, prov: list[str], spec, formats: set[str]) -> dict:
    """The report's text files in the requested formats."""
    files = {}
    if "md" in formats:
        files["report.md"] = render_markdown(title, summary, sections, prov, spec)
    if "tex" in formats:
        ext = "pdf" if "pdf-figures" in formats else "png"
        files["report.tex"] = render_latex(title, summary, sections, prov, ext, spec)
    return files


def _paths(args: argparse.Namespace) -> tuple[Path, str, Path]:
    """The results directory, the study's name and the output directory of the command line."""
    if args.results is None and (not STUDY_NAME.match(args.study) or ".." in args.study):
        raise OutputError(
            f"--study {args.study!r} is not a study name (results/<NAME>: no '/', no '..'); give a "
            "results directory with --results"
        )
    results_dir = args.results if args.results is not None else Path("results") / args.study
    study_name = results_dir.resolve().name if args.results is not None else args.study
    out = args.out if args.out is not None else Path("reports") / study_name
    return results_dir, study_name, out


def _prepare(args: argparse.Namespace, results_dir: Path, out: Path) -> tuple:
    """Check the output, load and select the runs, and choose the reference; raise on any problem."""
    for word in args.overrides:
        if not looks_like_override(word):
            raise OverrideError(
                f"unexpected argument {word!r}: a positional argument is an override KEY=VALUE"
            )
    check_target(out)
    tables = load_study(results_dir)
    provenance = read_provenance(results_dir)
    selection = parse_selection([*args.sets, *args.overrides], provenance.get("spec"))
    if args.reference and selection.reference and args.reference != selection.reference:
        raise OverrideError(
            f"--reference {args.reference} and --set reference={selection.reference} disagree; give one"
        )
    tables = select_runs(tables, selection)
    ok = tables["runs"][tables["runs"]["status"] == "ok"]
    if ok["seed"].nunique() < 2:
        raise LoadError("the selected runs have fewer than 2 seeds with successful runs; select more seeds")
    reference, why = choose_reference(
        tables["runs"], provenance.get("spec"), args.reference or selection.reference
    )
    notes = [f"Reference variant: {why}."] + ([selection.describe()] if selection.describe() else [])
    return tables, provenance, reference, notes


def main(argv: list[str] | None = None) -> int:
    """Run the report CLI; return the exit status (0 ok, 2 missing/invalid/mixed results, a bad override
    or a foreign --out)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    formats = _check_args(parser, args)

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    start = time.perf_counter()
    try:
        results_dir, study_name, out = _paths(args)
        tables, provenance, reference, notes = _prepare(args, results_dir, out)
        settings = Settings(
            reference, tuple(args.metrics), args.bootstrap, args.alpha, args.seed, args.margin
        )
        study = Study.of(tables, settings.reference)
        _check_study(study, settings)
    except (LoadError, OutputError, OverrideError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log(f"loaded {len(tables['runs'])} runs from {results_dir} in {time.perf_counter() - start:.1f} s")
    log(notes[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sections, results = build_sections(study, settings, log)
    summary = summary_lines(study, results, settings)
    prov = provenance_lines(tables, provenance, settings, results_dir, len(results["contrasts"]))
    prov += notes
    if caught:
        prov.append(_warnings_line(caught))
        log(f"  {len(caught)} numerical warnings recorded in the provenance section")
    title = f"DownScaleXR report: study {study_name}"
    files = _render(title, summary, sections, prov, spec_block(provenance), formats)
    try:
        write_outputs(out, files, sections, formats)
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    n_tables = sum(len(s.tables) for s in sections)
    n_figures = sum(len(s.figures) for s in sections)
    log(f"wrote {out} ({n_tables} tables, {n_figures} figures) in {time.perf_counter() - start:.1f} s")
    return 0
