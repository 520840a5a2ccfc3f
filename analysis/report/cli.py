"""``python -m analysis.report``: study tables -> statistics -> Markdown/LaTeX report with figures.

Output (``reports/<study>/`` by default), written to a temporary folder and renamed into place so a
failed run never leaves a half-written report::

    report.md                 summary of findings, tables, figures, provenance
    report.tex                a complete LaTeX document that \\input's tables/*.tex
    tables/<name>.{tex,csv,parquet}
    figures/<name>.{png,pdf}

Exit status: 0 on success, 2 when the results are missing or invalid (one line on stderr names why).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from analysis import inductive
from analysis import report_extras as rx
from analysis import report_inductive as ri
from analysis import report_sections as rs
from analysis.load import LoadError, load_study, read_provenance
from analysis.report_text import provenance_lines, spec_block, summary_lines
from analysis.tables import latex_escape, to_latex, to_markdown
from downscalexr import schema

FORMATS = ("md", "tex", "pdf-figures")
DEFAULT_METRICS = ("accuracy", "balanced_accuracy", "auroc")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (``--help`` explains every flag)."""
    p = argparse.ArgumentParser(
        prog="python -m analysis.report",
        description="Statistics and report for one study: reads results/<study>/ (runs, epochs, predictions, "
        "latency Parquet tables) and writes reports/<study>/ (report.md, report.tex, tables/, figures/).",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--study", default="default", help="study name, read from results/<NAME>/ (default: default)"
    )
    src.add_argument(
        "--results", type=Path, help="read the study from this directory instead of results/<study>/"
    )
    p.add_argument(
        "--out", type=Path, help="output directory (default: reports/<study>/); replaced atomically"
    )
    p.add_argument(
        "--reference", default="avgpool", help="variant every contrast is against (default: avgpool)"
    )
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
        help="comma-separated outputs: md (report.md), tex (report.tex + tables/*.tex), pdf-figures (figures "
        "also as PDF; PNG is always written). CSV/Parquet tables are always written (default: "
        "md,tex,pdf-figures)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=inductive.DEFAULT_MARGIN,
        help="equivalence margin of the inductive-bias tests on the accuracy scale, e.g. 0.02 = 2 percentage "
        f"points (default: {inductive.DEFAULT_MARGIN:g})",
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


def _check_study(tables: dict[str, pd.DataFrame], settings: rs.Settings) -> None:
    ok = tables["runs"][tables["runs"]["status"] == "ok"]
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


def standard_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables with ``runs`` cut to the CNN runs at the base level of every inductive-bias factor.

    The standard sections compare variants of one CNN; MLP, permuted, shifted or edge-initialised runs
    are analysed in the "Inductive bias" section. A study without those factors is returned unchanged.
    """
    return {**tables, "runs": inductive.base_runs(tables["runs"])}


def build_sections(
    tables: dict[str, pd.DataFrame], settings: rs.Settings, log, margin: float = inductive.DEFAULT_MARGIN
) -> tuple[list[rs.Section], dict]:
    """Run every statistics section; return the sections and the frames the summary needs.

    ``tables`` is the whole study; the standard sections see :func:`standard_tables`, the calibration
    and inductive-bias sections the whole study.
    """
    full = tables
    tables = standard_tables(full)
    runs = tables["runs"]
    steps = [
        ("metrics", lambda: (rs.metrics_section(runs, settings), None)),
        ("contrasts", lambda: rs.contrasts_section(runs, settings)),
        ("mixed models", lambda: rs.mixed_section(runs, settings)),
        ("bias", lambda: rs.bias_section(runs, settings)),
        ("predictions", lambda: (rx.predictions_section(tables, settings), None)),
        ("curves", lambda: rx.curves_section(runs, settings)),
        ("latency", lambda: rx.latency_section(tables, settings)),
        ("power", lambda: rx.power_section(runs, settings)),
        ("claims", lambda: rx.claims_section(tables, settings)),
        ("calibration", lambda: ri.calibration_section(full, settings)),
    ]
    if inductive.has_inductive_design(full["runs"], full.get("kernels")):
        steps.append(("inductive bias", lambda: ri.inductive_section(full, settings, margin)))
    sections, results = [], {}
    for name, step in steps:
        start = time.perf_counter()
        section, result = step()
        sections.append(section)
        results[name] = result
        log(f"  {name}: {time.perf_counter() - start:.1f} s")
    return sections, results


def render_markdown(
    title: str, summary: list[str], sections: list[rs.Section], provenance: list[str], spec: str | None = None
) -> str:
    """The Markdown report: summary first, then each section's text, tables and figures, then provenance."""
    out = [f"# {title}", "", "## Summary of findings", ""] + [f"- {line}" for line in summary]
    for section in sections:
        out += ["", f"## {section.title}", ""]
        for paragraph in section.text:
            out += [paragraph, ""]
        for table in section.tables:
            out += [f"**{table.caption}** (`tables/{table.name}.csv`)", "", to_markdown(table.display), ""]
            if table.note:
                out += [f"_{table.note}_", ""]
        for name, caption, _ in section.figures:
            out += [f"![{caption}](figures/{name}.png)", ""]
    out += ["## Provenance", ""] + [f"- {line}" for line in provenance]
    if spec is not None:
        out += ["", "Study specification:", "", "```yaml", spec, "```"]
    return "\n".join(out).rstrip() + "\n"


def render_latex(
    title: str,
    summary: list[str],
    sections: list[rs.Section],
    provenance: list[str],
    ext: str,
    spec: str | None = None,
) -> str:
    """A complete LaTeX document that ``\\input``'s ``tables/<name>.tex`` and includes the figures."""

    def items(lines: list[str]) -> list[str]:
        return (
            ["\\begin{itemize}"] + [f"  \\item {latex_escape(line)}" for line in lines] + ["\\end{itemize}"]
        )

    out = [
        "\\documentclass[10pt]{article}",
        "\\usepackage[margin=1.8cm,landscape]{geometry}",
        "\\usepackage{booktabs}",
        "\\usepackage{graphicx}",
        f"\\title{{{latex_escape(title)}}}",
        "\\author{}",
        "\\date{}",
        "\\begin{document}",
        "\\maketitle",
        "\\section{Summary of findings}",
        *items(summary),
    ]
    for section in sections:
        out += ["\\clearpage", f"\\section{{{latex_escape(section.title)}}}"]
        out += [latex_escape(p) + "\n" for p in section.text]
        out += [f"\\input{{tables/{t.name}}}" for t in section.tables]
        for name, caption, _ in section.figures:
            out += [
                "\\begin{figure}[htbp]",
                "\\centering",
                f"\\includegraphics[width=0.9\\linewidth,height=0.75\\textheight,keepaspectratio]{{figures/{name}.{ext}}}",
                f"\\caption{{{latex_escape(caption)}}}",
                f"\\label{{fig:{name}}}",
                "\\end{figure}",
            ]
    out += ["\\clearpage", "\\section{Provenance}", *items(provenance)]
    if spec is not None and "\\end{verbatim}" not in spec:
        ascii_spec = spec.encode("ascii", "replace").decode()  # pdflatex's verbatim needs plain characters
        out += [
            "Study specification:",
            "{\\footnotesize",
            "\\begin{verbatim}",
            ascii_spec,
            "\\end{verbatim}",
            "}",
        ]
    out.append("\\end{document}")
    return "\n".join(out) + "\n"


def write_outputs(
    target: Path, files: dict[str, object], sections: list[rs.Section], formats: set[str]
) -> None:
    """Write everything into a temporary sibling of ``target``, then swap it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        (tmp / "tables").mkdir()
        (tmp / "figures").mkdir()
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        for section in sections:
            for t in section.tables:
                t.raw.to_csv(tmp / "tables" / f"{t.name}.csv", index=False)
                t.raw.reset_index(drop=True).to_parquet(tmp / "tables" / f"{t.name}.parquet", index=False)
                if "tex" in formats:
                    tex = to_latex(t.display, caption=t.caption, label=f"tab:{t.name}", note=t.note)
                    (tmp / "tables" / f"{t.name}.tex").write_text(tex, encoding="utf-8")
            for name, _, fig in section.figures:
                fig.savefig(tmp / "figures" / f"{name}.png", dpi=130)
                if "pdf-figures" in formats:
                    fig.savefig(tmp / "figures" / f"{name}.pdf", metadata={"CreationDate": None})
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


def main(argv: list[str] | None = None) -> int:
    """Run the report CLI; return the exit status (0 ok, 2 missing/invalid results)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    formats = _check_args(parser, args)
    results_dir = args.results if args.results is not None else Path("results") / args.study
    study = results_dir.resolve().name if args.results is not None else args.study
    out = args.out if args.out is not None else Path("reports") / study

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr)

    settings = rs.Settings(args.reference, list(args.metrics), args.bootstrap, args.alpha, args.seed)
    start = time.perf_counter()
    try:
        tables = load_study(results_dir)
        provenance = read_provenance(results_dir)
        _check_study(standard_tables(tables), settings)
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log(f"loaded {len(tables['runs'])} runs from {results_dir} in {time.perf_counter() - start:.1f} s")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sections, results = build_sections(tables, settings, log, args.margin)
    title = f"DownScaleXR report: study {study}"
    summary = summary_lines(standard_tables(tables), results, settings)
    summary += ri.summary_lines(results.get("inductive bias"))
    n_standard = int((standard_tables(tables)["runs"]["status"] == "ok").sum())
    n_ok = int((tables["runs"]["status"] == "ok").sum())
    if n_standard < n_ok:
        summary.append(
            f"The standard sections analyse the {n_standard} successful CNN runs at the base level of every "
            "factor (unpermuted, no location shift, random init); calibration and inductive bias use all "
            f"{n_ok}."
        )
    prov = provenance_lines(tables, provenance, settings, results_dir, len(results["contrasts"]))
    if caught:
        unique = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught})
        prov.append(
            f"Numerical warnings raised by numpy/scipy/statsmodels during the analysis: {len(caught)} "
            f"({len(unique)} distinct): {'; '.join(unique[:8])}. Mixed-model fit problems are interpreted in "
            "'Mixed-effects models'."
        )
        log(f"  {len(caught)} numerical warnings recorded in the provenance section")
    files = {}
    if "md" in formats:
        files["report.md"] = render_markdown(title, summary, sections, prov, spec_block(provenance))
    if "tex" in formats:
        ext = "pdf" if "pdf-figures" in formats else "png"
        files["report.tex"] = render_latex(title, summary, sections, prov, ext, spec_block(provenance))
    write_outputs(out, files, sections, formats)
    n_tables = sum(len(s.tables) for s in sections)
    n_figures = sum(len(s.figures) for s in sections)
    log(f"wrote {out} ({n_tables} tables, {n_figures} figures) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
