"""Where a study's results live, and how they are written and read back.

Layout of a study directory::

    <root>/spec.yaml             resolved specification (what every cell was run with)
    <root>/environment.json      packages, threads, CPU, git commit, command lines of every invocation
    <root>/<table>/<run_id>.parquet   for table in runs, epochs, predictions, latency, kernels
    <root>/locks/<run_id>.lock   per-cell exclusivity between concurrent runners
    <root>/quarantine/           unreadable or foreign files moved aside, with a note of why

Every write goes to a temporary file in the target directory and is renamed into place. A cell's
``runs`` file is written last, so its presence means the whole cell is stored; an interrupted cell
leaves at most complete files of the other tables, which the rerun overwrites.

``kernels`` arrived after the first studies were stored. A finished cell (its ``runs`` file present)
without a kernels file was therefore written before kernels were recorded: it counts as finished and
simply has no kernel rows, rather than being recomputed. A kernels file that exists but is invalid
makes its cell unfinished, like any other damaged table.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from downscalexr import schema

TABLES = ("runs", "epochs", "predictions", "latency", "kernels")
WRITE_ORDER = ("epochs", "predictions", "latency", "kernels", "runs")
# tables a finished cell of an older version may lack (see the module docstring)
OPTIONAL = ("kernels",)


class StoreError(RuntimeError):
    """The study directory cannot be used (unwritable, or holds results of another specification)."""


class StudyPaths:
    """Builds every path of one study directory."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def cell_file(self, table: str, run_id: str) -> Path:
        return self.root / table / f"{run_id}.parquet"

    def lock_file(self, run_id: str) -> Path:
        return self.root / "locks" / f"{run_id}.lock"

    @property
    def spec(self) -> Path:
        return self.root / "spec.yaml"

    @property
    def environment(self) -> Path:
        return self.root / "environment.json"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def prepare(self) -> None:
        """Create the directories; raise :class:`StoreError` when the root is not writable."""
        try:
            for table in (*TABLES, "locks"):
                self.table_dir(table).mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-", delete=True)
            probe.close()
        except OSError as exc:
            raise StoreError(
                f"cannot write to results directory {self.root}: {exc.strerror or exc}"
            ) from None


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_frame_atomic(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame as Parquet at ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_cell(paths: StudyPaths, tables: dict[str, pd.DataFrame]) -> None:
    """Store one cell's rows; the ``runs`` row goes last and marks the cell as finished."""
    (run_id,) = tables["runs"]["run_id"].unique()
    for table in WRITE_ORDER:
        write_frame_atomic(paths.cell_file(table, run_id), schema.validate(table, tables[table]))


@contextlib.contextmanager
def cell_lock(paths: StudyPaths, run_id: str, wait: bool = False) -> Iterator[bool]:
    """Hold an exclusive lock on one cell; yields False when another runner holds it.

    With ``wait`` the call blocks until the other runner lets go, then yields True.
    ``flock`` locks die with their process, so a killed runner never leaves a stale lock behind.
    """
    path = paths.lock_file(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_finished(paths: StudyPaths, run_id: str) -> bool:
    """Whether every table's file of the cell exists and is valid (``runs``: one row for ``run_id``).

    Checking every table, not only the ``runs`` marker, means a cell whose predictions file was damaged
    after it finished is recomputed rather than kept without its predictions. A missing file of an
    :data:`OPTIONAL` table is allowed (a cell stored before that table existed).
    """
    for table in ("runs", *WRITE_ORDER[:-1]):
        path = paths.cell_file(table, run_id)
        if not path.exists():
            if table in OPTIONAL:
                continue
            return False
        if _read_valid(paths, table, path) is None:
            return False
    return True


def finished_run_ids(paths: StudyPaths) -> set[str]:
    """Run ids whose files are all present and valid; invalid files are quarantined with a warning."""
    return {
        path.stem
        for path in sorted(paths.table_dir("runs").glob("*.parquet"))
        if is_finished(paths, path.stem)
    }


def read_study(root: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Read a study directory back as validated DataFrames, one per table.

    A study written before a table existed (``kernels``) reads back with that table empty. Files that
    cannot be read or do not match the schema are reported by path (``UserWarning``) and left out,
    never merged; rows of cells without a ``runs`` row (an interrupted cell) are dropped.
    """
    paths = StudyPaths(root)
    if not paths.table_dir("runs").is_dir():
        raise StoreError(f"{paths.root} holds no study results (no runs/ directory)")
    out = {}
    for table in TABLES:
        frames = [
            f
            for p in sorted(paths.table_dir(table).glob("*.parquet"))
            if (f := _read_valid(paths, table, p)) is not None
        ]
        frames = [f for f in frames if len(f)]
        out[table] = (
            schema.validate(table, pd.concat(frames, ignore_index=True)) if frames else schema.empty(table)
        )
    finished = set(out["runs"]["run_id"])
    for table in TABLES[1:]:
        out[table] = out[table][out[table]["run_id"].isin(finished)].reset_index(drop=True)
    return out


def _read_valid(paths: StudyPaths, table: str, path: Path) -> pd.DataFrame | None:
    try:
        frame = schema.validate(table, pq.read_table(path).to_pandas())
        ids = set(frame["run_id"].unique())
        if ids and ids != {path.stem}:
            raise schema.SchemaError(f"holds run_id {sorted(ids)[0]!r}, not {path.stem!r} as its name says")
        if table == "runs" and len(frame) != 1:
            raise schema.SchemaError(f"has {len(frame)} rows; a runs file holds exactly one")
    except Exception as exc:  # anything unreadable is reported and set aside, never merged
        _quarantine(paths, table, path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    return frame


def _quarantine(paths: StudyPaths, table: str, path: Path, reason: str) -> None:
    target = paths.quarantine / table / path.name
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)
        write_atomic(target.with_suffix(".why.txt"), reason + "\n")
        where = f"moved to {target}"
    except OSError:
        where = "left in place (could not move it)"
    warnings.warn(f"ignored invalid results file {path}: {reason}; {where}", UserWarning, stacklevel=3)


def write_json(path: Path, payload: dict) -> None:
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
