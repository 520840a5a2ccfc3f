"""Plain-word sentences of the report: the summary of findings (with numbers) and the provenance list."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from analysis.tables import format_interval, format_p, format_value, is_unit_metric


def _fractions(values) -> str:
    return ", ".join(f"{f:g}" for f in sorted(set(values)))


def _direction(low: float, high: float, above: str, below: str) -> str:
    if low > 0:
        return above
    if high < 0:
        return below
    return "no difference resolved (the interval includes 0)"


def summary_lines(tables: dict, results: dict, settings) -> list[str]:
    """The findings in plain words, each with its estimate and interval.

    Parameters
    ----------
    tables : dict of DataFrame
        The loaded study.
    results : dict
        Frames from ``report.build_sections``: ``contrasts``, ``mixed models`` (fits), ``bias``,
        ``latency`` (or None), ``power``, ``claims``.
    settings : analysis.report_sections.Settings
        Reference, metrics, resamples, alpha and seed.
    """
    ref, metric, level = settings.reference, settings.metrics[0], settings.level
    runs = tables["runs"]
    ok = runs[runs["status"] == "ok"]
    unit = " pp" if is_unit_metric(metric) else ""
    lines = [
        f"{len(ok)} successful runs of {len(runs)} ({len(runs) - len(ok)} failed or diverged): variants "
        f"{', '.join(sorted(set(ok['variant'])))}; data fractions {_fractions(ok['data_fraction'])}; "
        f"{ok['seed'].nunique()} seeds. All intervals are {level} intervals."
    ]
    pc = results["contrasts"]
    prim = pc[pc["metric"] == metric]
    for variant, part in prim.groupby("variant", sort=True):
        per = part[part["data_fraction"].notna()]
        # a study with one fraction has no pooled row: its single fraction is the overall answer
        pooled = part[part["data_fraction"].isna()] if part["data_fraction"].isna().any() else per
        n_sig = int((per["p_holm"] < settings.alpha).sum())
        if len(pooled):
            r = pooled.iloc[0]
            cell = format_interval(r["diff"], r["low"], r["high"], percent=is_unit_metric(metric))
            verdict = _direction(r["low"], r["high"], f"higher than {ref}", f"lower than {ref}")
            pooled_row = pd.isna(r["data_fraction"])
            where = "pooled over fractions" if pooled_row else f"at fraction {r['data_fraction']:g}"
            lines.append(
                f"{variant} vs {ref}, {metric} {where}: {cell}{unit} (Holm p {format_p(r['p_holm'])}): "
                f"{verdict}; Holm-significant at {n_sig} of {len(per)} fractions."
            )
    fits = results["mixed models"] or []
    for fit in fits[:1]:
        tests = fit.lrt.set_index("test")
        parts = [
            f"{name} chi2 = {tests.loc[key, 'chi2']:.2f} (df {int(tests.loc[key, 'df'])}, p "
            f"{format_p(tests.loc[key, 'p_value'])})"
            for key, name in (("variant", "variant effect"), ("variant:log2_fraction", "variant x fraction"))
            if key in tests.index
        ]
        caveat = "" if fit.converged else " (the fit did not converge: do not rely on these tests)"
        lines.append(f"Mixed model of {fit.metric} (pp): likelihood-ratio tests {'; '.join(parts)}{caveat}.")
    warned = [f for f in fits if f.warnings]
    if warned:
        failed = [f.metric for f in fits if not f.converged]
        lines.append(
            f"Mixed-model warnings: {sum(len(f.warnings) for f in warned)} for "
            f"{', '.join(f.metric for f in warned)}"
            + (f"; no converged fit for {', '.join(failed)}" if failed else "")
            + " (listed in the section 'Mixed-effects models')."
        )
    bs = results["bias"]
    pooled = bs[bs["data_fraction"].isna() & (bs["measure"] == "fpr") & (bs["variant"] != ref)]
    over = pooled[pooled["over_calls"].astype(bool)]
    if len(over):
        for r in over.itertuples(index=False):
            lines.append(
                f"{r.variant} over-calls the positive class: FPR difference vs {ref} pooled over fractions "
                f"{format_interval(r.diff_vs_reference, r.diff_low, r.diff_high, percent=True)} pp."
            )
    else:
        lines.append(f"No variant over-calls the positive class relative to {ref} (pooled over fractions).")
    lr = results["latency"]
    if lr is not None and len(lr):
        small = lr[lr["batch_size"] == lr["batch_size"].min()]
        ranked = small.sort_values(["ratio", "variant"])
        best = ranked.iloc[0]
        if best["variant"] == ref and len(ranked) > 1:
            nxt = ranked.iloc[1]
            ratio = format_interval(nxt["ratio"], nxt["low"], nxt["high"])
            lines.append(
                f"Fastest at batch size {int(best['batch_size'])}: {ref} itself "
                f"({best['median_ms']:.3g} ms); "
                f"the next, {nxt['variant']}, takes {ratio} x its median latency."
            )
        else:
            lines.append(
                f"Fastest at batch size {int(best['batch_size'])}: {best['variant']}, median latency "
                f"{format_interval(best['ratio'], best['low'], best['high'])} x {ref}'s "
                f"({best['median_ms']:.3g} ms)."
            )
    pw = results["power"]
    for r in pw[pw["metric"] == metric].itertuples(index=False):
        scale = is_unit_metric(metric)
        if not (np.isfinite(r.seed_sd) and r.seed_sd > 0):
            lines.append(
                f"Power: the paired {metric} differences do not vary across seeds, so the detectable "
                "difference cannot be estimated from this study."
            )
            continue
        lines.append(
            f"Power: with {r.n_seeds} seeds the smallest {metric} difference detectable at 80 % power is "
            f"{format_value(r.mde, percent=scale)}{unit}; detecting "
            f"{format_value(r.effect, percent=scale)}{unit} "
            f"needs {r.seeds_needed} seeds."
        )
    cl = results["claims"]
    counts = cl["verdict"].value_counts()
    lines.append("Claims of single-run studies: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".")
    lines += [f'Claim "{r.claim}": {r.verdict}.' for r in cl.itertuples(index=False)]
    return lines


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def _distinct(frame: pd.DataFrame, column: str) -> str:
    values = sorted({str(v) for v in frame[column].dropna()}) if column in frame else []
    return ", ".join(values) if values else "not recorded"


def _environment(env: object) -> str:
    """The scalar facts of ``environment.json`` in one line; nested records are only named."""
    if not isinstance(env, dict):
        return "not recorded"
    parts, nested = [], []
    for key in sorted(env):
        value = env[key]
        if key == "packages" and isinstance(value, dict):
            parts.append("packages " + ", ".join(f"{k} {v}" for k, v in sorted(value.items())))
        elif key == "command" and isinstance(value, list):
            parts.append("command `" + " ".join(map(str, value)) + "`")
        elif isinstance(value, dict | list):
            nested.append(key)
        else:
            parts.append(f"{key} {value}")
    if nested:
        parts.append(f"also recorded: {', '.join(nested)}")
    return "; ".join(parts)


def spec_block(provenance: dict) -> str | None:
    """The study specification as YAML text, to reproduce verbatim in the report (None if absent)."""
    spec = provenance.get("spec")
    if spec is None:
        return None
    return yaml.safe_dump(spec, sort_keys=True, default_flow_style=False).rstrip()


def provenance_lines(
    tables: dict, provenance: dict, settings, results_dir: Path, n_contrasts: int
) -> list[str]:
    """Which code, study, seeds and machine produced the report, and how the intervals were made."""
    runs = tables["runs"]
    ok = runs[runs["status"] == "ok"]
    commit = _git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    if dirty:
        commit += " (with uncommitted changes)"
    try:
        version = importlib.metadata.version("downscalexr")
    except importlib.metadata.PackageNotFoundError:
        version = "not installed"
    libs = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("numpy", "scipy", "pandas", "statsmodels", "matplotlib", "seaborn", "pyarrow")
    )
    spec_text = (
        f"{provenance['spec_file']} (reproduced at the end)"
        if provenance.get("spec") is not None
        else "no spec.yaml, study.yaml or spec.json beside the tables"
    )
    env_text = _environment(provenance.get("environment"))
    seeds = sorted(int(s) for s in ok["seed"].unique())
    return [
        f"Analysis code: downscalexr {version}, git commit {commit}; Python {platform.python_version()}; "
        f"{libs}.",
        f"Results: {results_dir}; runs produced by git commit(s) {_distinct(runs, 'git_commit')}, package "
        f"version(s) {_distinct(runs, 'package_version')}, torch {_distinct(runs, 'torch_version')}.",
        f"Study specification: {spec_text}.",
        f"Seeds ({len(seeds)}): {', '.join(map(str, seeds))}; {len(ok)} successful runs, "
        f"{int((runs['status'] != 'ok').sum())} failed or diverged (excluded from all statistics).",
        f"Machine of the runs: CPU {_distinct(runs, 'cpu')}; threads {_distinct(runs, 'threads')}; "
        f"host {_distinct(runs, 'host_id')}. Environment (environment.json): {env_text}.",
        f"Intervals: {settings.level} (alpha {settings.alpha:g}). Seed summaries: Student t below 10 seeds, "
        "BCa "
        "bootstrap over seeds from 10. Paired contrasts: bootstrap resampling seeds jointly across variants. "
        "Mixed models: Wald intervals (REML), likelihood-ratio tests (ML). Hierarchical bootstrap: seeds, "
        "then "
        "test examples, percentile. Latency: ratio of medians, bootstrap over seeds and repeats, log scale. "
        "Power-law fits and examples to target: percentile bootstrap over seeds.",
        f"Resamples: {settings.n_boot} per bootstrap; random seed {settings.seed} (the same inputs and seed "
        "give "
        "byte-identical tables).",
        f"Multiple comparisons: Holm across the family of {n_contrasts} paired contrasts (metrics "
        f"{', '.join(settings.metrics)} x fractions and pooled x variants vs {settings.reference}); McNemar "
        "p-values are per seed and uncorrected; claims use their own stated tests.",
    ]
