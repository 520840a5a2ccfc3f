"""The report's provenance section: which code, study, seeds and machine produced it, and how."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

import pandas as pd
import yaml

from analysis.report.document import INTERVAL_RULE, Settings
from downscalexr.provenance import git_state

LIBRARIES = ("numpy", "scipy", "pandas", "statsmodels", "matplotlib", "seaborn", "pyarrow")


def _distinct(frame: pd.DataFrame, column: str) -> str:
    values = sorted({str(v) for v in frame[column].dropna()}) if column in frame else []
    return ", ".join(values) if values else "not recorded"


def _training_device(runs: pd.DataFrame) -> str:
    """Which device trained the runs (issue 19); runs stored before the setting trained on the CPU."""
    devices = _distinct(runs, "device")
    if devices == "not recorded":
        return "Trained on: cpu (stored before the device was recorded; cpu was then the only device)."
    return f"Trained on: {devices} ({_distinct(runs, 'device_name')}); latency measured on the CPU."


def _ensemble_note(spec: object) -> str:
    """`` Seeds trained together ...`` when the study trained each cell's seeds as one ensemble."""
    train = spec.get("train") if isinstance(spec, dict) else None
    if isinstance(train, dict) and train.get("ensemble"):
        return (
            " The seeds of each cell were trained together as one vmapped ensemble (train.ensemble): each "
            "seed's numbers equal one-at-a-time training's up to float rounding."
        )
    return ""


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


def _analysis_code() -> str:
    """The analysis code: package version, git commit (and whether it was modified), Python, libraries."""
    state = git_state()
    commit = state.commit or "unknown (not a git checkout)"
    if state.dirty:
        commit += " (with uncommitted changes)"
    try:
        version = importlib.metadata.version("downscalexr")
    except importlib.metadata.PackageNotFoundError:
        version = "not installed"
    libs = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in LIBRARIES)
    python = platform.python_version()
    return f"Analysis code: downscalexr {version}, git commit {commit}; Python {python}; {libs}."


def _methods(settings: Settings, n_contrasts: int) -> list[str]:
    """How the intervals were made, how many resamples, and the multiple-comparison family."""
    return [
        f"Intervals: {settings.level} (alpha {settings.alpha:g}). Seed summaries and paired contrasts: "
        f"{INTERVAL_RULE}. "
        "Mixed models: seed and seed x variant random intercepts, Wald intervals (REML), likelihood-ratio "
        "tests (ML), fractions at the floor left out, binomial GEE on counts as a sensitivity model. "
        "Per-example accuracy: crossed seeds x test examples variance (two-way ANOVA), Satterthwaite t. "
        "Latency: ratio of medians, bootstrap over seeds and repeats, log scale. "
        "Power-law fits and examples to target: percentile bootstrap over seeds.",
        f"Resamples: {settings.n_boot} per bootstrap; random seed {settings.seed} "
        "(the same inputs and seed give byte-identical tables).",
        f"Multiple comparisons: Holm across the {n_contrasts} paired contrasts (rows without a p-value, not "
        "testable, are not in the family; metrics "
        f"{', '.join(settings.metrics)} x fractions and pooled x variants vs {settings.reference}); "
        "McNemar p-values are per seed and uncorrected; claims use their own stated tests.",
    ]


def provenance_lines(
    tables: dict, provenance: dict, settings: Settings, results_dir: Path, n_contrasts: int
) -> list[str]:
    """Which code, study, seeds and machine produced the report, and how the intervals were made."""
    runs = tables["runs"]
    ok = runs[runs["status"] == "ok"]
    spec_text = (
        f"{provenance['spec_file']} (reproduced at the end)"
        if provenance.get("spec") is not None
        else "no spec.yaml, study.yaml or spec.json beside the tables"
    )
    seeds = sorted(int(s) for s in ok["seed"].unique())
    ensemble = _ensemble_note(provenance.get("spec"))
    return [
        _analysis_code(),
        f"Results: {results_dir}; runs produced by git commit(s) {_distinct(runs, 'git_commit')}, package "
        f"version(s) {_distinct(runs, 'package_version')}, torch {_distinct(runs, 'torch_version')}.",
        f"Study specification: {spec_text}.",
        f"Seeds ({len(seeds)}): {', '.join(map(str, seeds))}; {len(ok)} successful runs, "
        f"{int((~runs['status'].isin(['ok', 'unsupported'])).sum())} failed or diverged (excluded from all "
        f"statistics){_unsupported(runs)}.",
        f"Machine of the runs: CPU {_distinct(runs, 'cpu')}; threads {_distinct(runs, 'threads')}; "
        f"host {_distinct(runs, 'host_id')}. {_training_device(runs)}{ensemble} "
        f"Environment (environment.json): {_environment(provenance.get('environment'))}.",
        *_methods(settings, n_contrasts),
    ]


def _unsupported(runs: pd.DataFrame) -> str:
    """``, N compression levels unsupported by their operator`` when the study has such rows."""
    n = int((runs["status"] == "unsupported").sum())
    return f", {n} compression level(s) unsupported by their operator (see 'Compression')" if n else ""
