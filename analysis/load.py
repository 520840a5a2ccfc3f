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

One directory holds one study: :func:`load_study` refuses a directory whose runs come from two
specifications (a design cell stored twice, or runs of two studies or training settings), which
statistics would otherwise pool without a word.
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
# the columns that name a cell of the design: one run per combination in a study
DESIGN_COLUMNS = (
    "study", "dataset", "model", "variant", "seed", "data_fraction", "transform", "permute",
    "location_shift", "init",
)  # fmt: skip
# settings every run of one specification shares (the runs table records them per run)
ONE_PER_STUDY = {"study": "studies", "dataset": "data sets", "lr": "learning rates",
                 "batch_size": "batch sizes", "optimizer": "optimizers"}  # fmt: skip
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
        its runs come from more than one specification (:func:`check_one_study`), or the successful runs
        have fewer than ``min_seeds`` seeds.

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
    check_one_study(runs, root)
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


def check_one_study(runs: pd.DataFrame, where: str | Path = "the study") -> None:
    """Refuse runs that come from more than one specification.

    Two signs: a design cell (:data:`DESIGN_COLUMNS`) stored more than once (under different run ids,
    so run with different settings), or more than one value of a setting one specification fixes
    (:data:`ONE_PER_STUDY`: the study name, data set, learning rate, batch size, optimizer).

    Raises
    ------
    LoadError
        Naming the repeated cell or the differing setting, and what to do.
    """
    fix = (
        "analyse one specification per directory: move the other runs away, or rerun the grid into a "
        "new --out"
    )
    for column, what in ONE_PER_STUDY.items():
        values = sorted(map(str, runs[column].dropna().unique())) if column in runs else []
        if len(values) > 1:
            raise LoadError(f"{where} mixes runs of {len(values)} {what} ({', '.join(values)}); {fix}")
    design = [c for c in DESIGN_COLUMNS if c in runs]
    repeated = runs[runs.duplicated(subset=design, keep=False)]
    if not repeated.empty:
        first = repeated.sort_values(["run_id"]).iloc[0]
        same = repeated[_matching(repeated, first, design)]
        cell = ", ".join(f"{c} {first[c]}" for c in design if c != "study")
        ids = ", ".join(sorted(same["run_id"].astype(str)))
        n_cells = len(repeated.drop_duplicates(subset=design))
        raise LoadError(
            f"{where} holds {n_cells} design cell(s) more than once, i.e. runs of two specifications; "
            f"e.g. ({cell}) is stored {len(same)} times (run ids {ids}); {fix}"
        )


def _matching(frame: pd.DataFrame, row: pd.Series, columns: list[str]) -> pd.Series:
    """Rows equal to ``row`` in every column, missing values (a NaN location shift) counting as equal."""
    equal = pd.Series(True, index=frame.index)
    for c in columns:
        same = (frame[c] == row[c]).fillna(False).astype(bool)
        equal &= same | (frame[c].isna() & bool(pd.isna(row[c])))
    return equal


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
