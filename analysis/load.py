"""Read and validate a study's Parquet tables (the only way ``analysis`` sees results).

A study directory, as written by ``experiments.store``, looks like::

    <results_dir>/
        runs/<run_id>.parquet          one file per cell (required)
        epochs/<run_id>.parquet        optional
        predictions/<run_id>.parquet   optional
        latency/<run_id>.parquet       optional
        spec.yaml | study.yaml | spec.json   the study specification (optional, provenance)
        environment.json               the machine and package versions (optional, provenance)

Files in a ``quarantine/`` sub-folder, hidden files (``.name``) and temporaries (``*.tmp``) are ignored:
they are cells that an interrupted or rejected write left behind, not results.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from downscalexr import schema

TABLES = tuple(schema.TABLES)
SPEC_FILES = ("spec.yaml", "study.yaml", "study.yml", "spec.json")
ENVIRONMENT_FILE = "environment.json"


class LoadError(ValueError):
    """A study directory cannot be analysed; the message names the problem and, where possible, the file."""


def parquet_files(table_dir: Path) -> list[Path]:
    """The Parquet files of one table directory, sorted, skipping quarantine, hidden and temporary files.

    Parameters
    ----------
    table_dir : Path
        A ``<results_dir>/<table>`` directory.

    Returns
    -------
    list of Path
        Sorted by path, so that the row order of a loaded table does not depend on the file system.
    """
    files = []
    # the glob already leaves out "*.parquet.tmp" temporaries; hidden files cover ".name.parquet" ones
    for path in sorted(table_dir.rglob("*.parquet")):
        parts = path.relative_to(table_dir).parts
        if "quarantine" in parts[:-1] or any(p.startswith(".") for p in parts):
            continue
        files.append(path)
    return files


def read_table(results_dir: str | Path, table: str) -> pd.DataFrame:
    """Read one table of a study and validate it against :mod:`downscalexr.schema`.

    Parameters
    ----------
    results_dir : str or Path
        The study directory.
    table : str
        One of ``runs``, ``epochs``, ``predictions``, ``latency``.

    Returns
    -------
    DataFrame
        The conformed table; an empty table with the schema's columns when the study has none.

    Raises
    ------
    LoadError
        If a file cannot be read or does not match the schema (the message names the file).
    """
    if table not in schema.TABLES:
        raise LoadError(f"unknown table {table!r}; choose from {', '.join(TABLES)}")
    root = Path(results_dir)
    single = root / f"{table}.parquet"
    files = parquet_files(root / table) if (root / table).is_dir() else []
    if not files and single.is_file():
        files = [single]
    frames = []
    for path in files:
        try:
            frame = pq.read_table(path).to_pandas()
        except (OSError, pa.ArrowException) as exc:
            raise LoadError(f"cannot read {path}: {exc}") from exc
        try:
            frames.append(schema.conform(table, frame))
        except schema.SchemaError as exc:
            raise LoadError(f"schema mismatch in {path}: {exc}") from exc
    if not frames:
        return schema.empty(table)
    frames = [f for f in frames if len(f)] or frames[:1]
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    try:
        return schema.validate(table, combined)
    except schema.SchemaError as exc:
        raise LoadError(f"schema mismatch in {root / table}: {exc}") from exc


def load_study(results_dir: str | Path, *, min_seeds: int = 2) -> dict[str, pd.DataFrame]:
    """Read the four tables of a study directory, validated, ready for the statistics modules.

    Parameters
    ----------
    results_dir : str or Path
        The study directory (``results/<study>``).
    min_seeds : int, default 2
        The fewest distinct seeds among successful runs; intervals across seeds need at least two.

    Returns
    -------
    dict of str to DataFrame
        Keys ``runs``, ``epochs``, ``predictions``, ``latency``. ``runs`` keeps every status (the report
        counts failures); statistics use the rows with ``status == "ok"``.

    Raises
    ------
    LoadError
        If the directory is missing, holds no runs or no successful runs, a file does not match the schema,
        or the successful runs have fewer than ``min_seeds`` seeds.

    Examples
    --------
    >>> load_study("/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    LoadError: results directory /nonexistent does not exist
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise LoadError(f"results directory {root} does not exist; run `python -m experiments.grid` first")
    tables = {name: read_table(root, name) for name in TABLES}
    runs = tables["runs"]
    if runs.empty:
        raise LoadError(f"no runs in {root / 'runs'}: the study has no finished cells")
    ok = runs[runs["status"] == "ok"]
    if ok.empty:
        counts = runs["status"].value_counts().to_dict()
        raise LoadError(f"no successful runs in {root}: every run failed or diverged ({counts})")
    n_seeds = ok["seed"].nunique()
    if n_seeds < min_seeds:
        raise LoadError(
            f"the study in {root} has {n_seeds} seed(s) with successful runs; intervals across seeds "
            f"need at least {min_seeds}: rerun the grid with more seeds (e.g. --seeds 10)"
        )
    return tables


def read_provenance(results_dir: str | Path) -> dict[str, object]:
    """The study specification and environment stored beside the tables, as far as they exist.

    Parameters
    ----------
    results_dir : str or Path
        The study directory.

    Returns
    -------
    dict
        ``spec`` (the parsed study file or ``None``), ``spec_file`` (its name or ``None``) and
        ``environment`` (the parsed ``environment.json`` or ``None``).

    Raises
    ------
    LoadError
        If a provenance file exists but cannot be parsed.
    """
    root = Path(results_dir)
    out: dict[str, object] = {"spec": None, "spec_file": None, "environment": None}
    for name in SPEC_FILES:
        path = root / name
        if path.is_file():
            out["spec"] = _parse(path)
            out["spec_file"] = name
            break
    env = root / ENVIRONMENT_FILE
    if env.is_file():
        out["environment"] = _parse(env)
    return out


def _parse(path: Path) -> object:
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise LoadError(f"cannot parse {path}: {exc}") from exc
