"""Where a study's results live, and how they are written and read back.

Layout of a study directory::

    <root>/spec.yaml             resolved specification (what every cell was run with)
    <root>/environment.json      packages, threads, CPU, git commit; every invocation appended
    <root>/data.json             how the data were made (counts, skipped files)
    <root>/runner.lock           held by the one runner working on the directory (pid, host, start)
    <root>/<table>/<run_id>.parquet   for table in runs, epochs, predictions, latency, kernels,
                                 saliency, saliency_maps
    <root>/<table>/_common_metadata  the table's one schema (Parquet metadata, no rows)
    <root>/quarantine/           unreadable, foreign or superseded files moved aside, with a note of why

Every write goes to a temporary sibling (``.<name>.<random>.tmp``), is flushed to disk and renamed into
place, and the directory is flushed too (:mod:`downscalexr.safe_output`). A cell's ``runs`` file is
written last, so its presence means the whole cell is stored; an interrupted cell leaves at most
complete files of the other tables, which the rerun overwrites. Temporaries left by a killed writer are
removed by the next runner (:func:`remove_leftover_temporaries`), which holds the directory's lock.

**One schema per table.** Every file of a table is written with the table's one Arrow schema
(:func:`arrow_schema`, from :mod:`downscalexr.schema`): every column, in order, with its type, nulls
where a value is missing, so pandas, pyarrow.dataset, duckdb and polars read ``<root>/<table>`` as one
table and agree. ``_common_metadata`` holds that schema for readers that look for it. Files written by
versions before a column existed lack it; :mod:`experiments.upgrade` rewrites them (the analysis reads
them either way).

``kernels`` (and later ``saliency`` and ``saliency_maps``) arrived after the first studies were stored.
A finished cell (its ``runs`` file present) without a kernels file was therefore written before kernels
were recorded: it counts as finished and simply has no kernel rows, rather than being recomputed. A
kernels file that exists but is invalid makes its cell unfinished, like any other damaged table.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from downscalexr import schema
from downscalexr.safe_output import (
    fsync_directory,
    make_directories,
    temporary_name,
    write_atomic,
    write_atomic_with,
)
from downscalexr.safe_output import (
    remove_leftover_temporaries as _remove_temporaries,
)
from experiments.table_schema import COMMON_METADATA, arrow_schema, to_arrow

TABLES = ("runs", "epochs", "predictions", "latency", "kernels", "saliency", "saliency_maps")
WRITE_ORDER = ("epochs", "predictions", "latency", "kernels", "saliency", "saliency_maps", "runs")
# tables a finished cell of an older version may lack (see the module docstring)
OPTIONAL = ("kernels", "saliency", "saliency_maps")
# Temporaries this module writes (``.<name>.<8 random characters>.tmp``, see
# :mod:`downscalexr.safe_output`): at the root only for its own files, in table folders only for cell files.
_ROOT_TEMPORARY = re.compile(r"^\.(spec\.yaml|environment\.json|data\.json|probe)\.[a-z0-9_]{8}\.tmp$")
_CELL_TEMPORARY = re.compile(
    r"^\.[0-9a-zA-Z_.-]+\.(parquet|why\.txt)\.[a-z0-9_]{8}\.tmp$|^\._common_metadata\.[a-z0-9_]{8}\.tmp$"
)
_OLD_PROBE = re.compile(r"^\.probe-[a-z0-9_]{8}$")  # the write probe of earlier versions


class StoreError(RuntimeError):
    """The study directory cannot be used (unwritable, or holds results of another specification)."""


class StudyLockedError(StoreError):
    """Another runner holds the study directory's lock; the message names it and how to clear a stale lock."""


class StudyPaths:
    """Builds every path of one study directory."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def cell_file(self, table: str, run_id: str) -> Path:
        return self.root / table / f"{run_id}.parquet"

    @property
    def spec(self) -> Path:
        return self.root / "spec.yaml"

    @property
    def environment(self) -> Path:
        return self.root / "environment.json"

    @property
    def lock(self) -> Path:
        return self.root / "runner.lock"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def written_directories(self) -> list[Path]:
        """Every directory the runner writes files into (where its temporaries may be left)."""
        quarantined = sorted(p for p in self.quarantine.glob("*") if p.is_dir())
        return [self.root, *(self.table_dir(t) for t in TABLES), self.quarantine, *quarantined]

    def common_metadata(self, table: str) -> Path:
        return self.root / table / COMMON_METADATA

    def prepare(self) -> None:
        """Create the directories; raise :class:`OSError` when they cannot be made or written to."""
        for table in TABLES:
            make_directories(self.table_dir(table))
        probe = temporary_name(self.root / "probe")  # removed as a leftover temporary if killed here
        try:
            probe.write_bytes(b"")
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()


def remove_leftover_temporaries(paths: StudyPaths) -> int:
    """Remove the temporary files interrupted writers left in the study directory; return how many.

    Only names this module writes are touched: at the root the temporaries of ``spec.yaml``,
    ``environment.json``, ``data.json`` and the write probe; in table and quarantine folders those of
    cell files and notes. Call it while holding :func:`study_lock`, so that no writer is mid-write.
    """
    folders = paths.written_directories()[1:]
    removed = _remove_temporaries([paths.root], _ROOT_TEMPORARY) + _remove_temporaries(
        [paths.root], _OLD_PROBE
    )
    return removed + _remove_temporaries(folders, _CELL_TEMPORARY)


@contextlib.contextmanager
def study_lock(paths: StudyPaths, holder: dict) -> Iterator[None]:
    """Hold the study directory's exclusive lock for the whole run; record ``holder`` in the lock file.

    ``holder`` should name the pid, host, start time and command. The lock is an ``flock`` on
    ``runner.lock``: it dies with its process, so a killed runner leaves no lock behind.

    Raises
    ------
    StudyLockedError
        Another runner holds the lock; the message names it (from the lock file) and how to clear a
        stale lock.
    OSError
        The lock file cannot be made, or the file system has no locks.
    """
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyLockedError(_locked_message(paths, _read_holder(fd))) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder, sort_keys=True) + "\n").encode(), 0)
        os.fsync(fd)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_holder(fd: int) -> dict:
    """The holder record of a held lock (waiting briefly for a holder that has just taken it)."""
    deadline = time.monotonic() + 1.0
    while True:
        text = os.pread(fd, 65536, 0).decode(errors="replace")
        with contextlib.suppress(ValueError):
            record = json.loads(text)
            if isinstance(record, dict):
                return record
        if time.monotonic() > deadline:
            return {}
        time.sleep(0.02)


def _locked_message(paths: StudyPaths, holder: dict) -> str:
    pid, host = holder.get("pid", "?"), holder.get("host", "?")
    since = holder.get("started_at", "an unknown time")
    command = " ".join(holder.get("command", [])) or "unknown command"
    text = f"{paths.root} is in use by another runner: pid {pid} on {host}, started {since} ({command}); "
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        text += f"pid {pid} has ended, so a process it started still holds the lock: "
    else:
        text += "wait for it to finish or stop it; "
    return text + (
        f"`fuser -v {paths.lock}` names the holder; a lock that outlived every runner (a network file "
        f"system) is cleared by deleting {paths.lock}"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_frame_atomic(path: Path, frame: pd.DataFrame, table: str | None = None) -> None:
    """Write a DataFrame as Parquet at ``path`` atomically and durably.

    With ``table`` the file gets that table's one schema (:func:`to_arrow`); without, pandas' own.
    """
    if table is None:
        write_atomic_with(path, lambda fh: frame.to_parquet(fh, index=False))
        return
    data = to_arrow(table, frame)
    write_atomic_with(path, lambda fh: pq.write_table(data, fh))


def write_common_metadata(paths: StudyPaths) -> None:
    """Write ``<table>/_common_metadata`` (the table's schema, no rows) for every table, if it differs."""
    for table in TABLES:
        target = paths.common_metadata(table)
        wanted = arrow_schema(table)
        with contextlib.suppress(OSError, pa.ArrowException):
            if pq.read_schema(target).remove_metadata().equals(wanted):
                continue
        write_atomic_with(target, lambda fh, s=wanted: pq.write_metadata(s, fh))


def write_cell(paths: StudyPaths, tables: dict[str, pd.DataFrame]) -> None:
    """Store one cell's rows; the ``runs`` row goes last and marks the cell as finished.

    A cell stored before (a retried ``failed`` cell, or ``--force``) first loses its ``runs`` marker,
    so that an interruption never leaves the old ``runs`` row beside new rows of the other tables.
    An :data:`OPTIONAL` table the caller leaves out is stored empty.
    """
    (run_id,) = tables["runs"]["run_id"].unique()
    tables = {t: schema.empty(t) for t in OPTIONAL} | dict(tables)
    valid = {table: schema.validate(table, tables[table]) for table in WRITE_ORDER}
    marker = paths.cell_file("runs", run_id)
    if marker.exists():
        marker.unlink()
        fsync_directory(marker.parent)
    for table in WRITE_ORDER:
        write_frame_atomic(paths.cell_file(table, run_id), valid[table], table)


def is_finished(paths: StudyPaths, run_id: str, quarantine: bool = True) -> bool:
    """Whether every table's file of the cell exists and is valid (``runs``: one row for ``run_id``).

    Checking every table, not only the ``runs`` marker, means a cell whose predictions file was damaged
    after it finished is recomputed rather than kept without its predictions. A missing file of an
    :data:`OPTIONAL` table is allowed (a cell stored before that table existed). Invalid files are
    moved to ``quarantine/`` unless ``quarantine`` is False (then they are only reported).
    """
    return _finished_row(paths, run_id, quarantine) is not None


def _finished_row(paths: StudyPaths, run_id: str, quarantine: bool) -> pd.DataFrame | None:
    row = None
    for table in ("runs", *WRITE_ORDER[:-1]):
        path = paths.cell_file(table, run_id)
        if not path.exists():
            if table in OPTIONAL:
                continue
            return None
        frame = _read_valid(paths, table, path, quarantine)
        if frame is None:
            return None
        row = frame if table == "runs" else row
    return row


def finished_run_ids(paths: StudyPaths, quarantine: bool = True) -> set[str]:
    """Run ids whose files are all present and valid; invalid files are reported (and quarantined)."""
    return set(stored_runs(paths, quarantine)["run_id"])


def stored_runs(paths: StudyPaths, quarantine: bool = True) -> pd.DataFrame:
    """The ``runs`` rows of every finished cell (see :func:`is_finished`), one per cell."""
    frames = []
    if paths.table_dir("runs").is_dir():
        for path in sorted(paths.table_dir("runs").glob("*.parquet")):
            row = _finished_row(paths, path.stem, quarantine)
            if row is not None:
                frames.append(row)
    if not frames:
        return schema.empty("runs")
    return schema.validate("runs", pd.concat(frames, ignore_index=True))


def read_study(root: str | os.PathLike, quarantine: bool = True) -> dict[str, pd.DataFrame]:
    """Read a study directory back as validated DataFrames, one per table.

    A study written before a table existed (``kernels``) reads back with that table empty. Files that
    cannot be read or do not match the schema are reported by path (``UserWarning``), moved to
    ``quarantine/`` (unless ``quarantine`` is False) and left out, never merged; rows of cells without
    a ``runs`` row (an interrupted cell) are dropped.
    """
    paths = StudyPaths(root)
    if not paths.table_dir("runs").is_dir():
        raise StoreError(f"{paths.root} holds no study results (no runs/ directory)")
    out = {}
    for table in TABLES:
        frames = [
            f
            for p in sorted(paths.table_dir(table).glob("*.parquet"))
            if (f := _read_valid(paths, table, p, quarantine)) is not None
        ]
        frames = [f for f in frames if len(f)]
        out[table] = (
            schema.validate(table, pd.concat(frames, ignore_index=True)) if frames else schema.empty(table)
        )
    finished = set(out["runs"]["run_id"])
    for table in TABLES[1:]:
        out[table] = out[table][out[table]["run_id"].isin(finished)].reset_index(drop=True)
    return out


def _read_valid(paths: StudyPaths, table: str, path: Path, quarantine: bool = True) -> pd.DataFrame | None:
    try:
        frame = schema.validate(table, pq.read_table(path).to_pandas())
        ids = set(frame["run_id"].unique())
        if ids and ids != {path.stem}:
            raise schema.SchemaError(f"holds run_id {sorted(ids)[0]!r}, not {path.stem!r} as its name says")
        if table == "runs" and len(frame) != 1:
            raise schema.SchemaError(f"has {len(frame)} rows; a runs file holds exactly one")
    except Exception as exc:  # anything unreadable is reported and set aside, never merged
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if quarantine:
            where = _quarantine(paths, table, path, reason)
        else:
            where = "left in place (a dry run changes nothing; a run moves it to quarantine/)"
        warnings.warn(f"ignored invalid results file {path}: {reason}; {where}", UserWarning, stacklevel=3)
        return None
    return frame


def set_aside(paths: StudyPaths, run_id: str, reason: str) -> None:
    """Move every file of one stored cell to ``quarantine/``, ``runs`` first, with a note of why."""
    for table in ("runs", *WRITE_ORDER[:-1]):
        path = paths.cell_file(table, run_id)
        if path.exists():
            _quarantine(paths, table, path, reason)


def _quarantine(paths: StudyPaths, table: str, path: Path, reason: str) -> str:
    """Move ``path`` to ``quarantine/<table>/`` under a name no earlier quarantined file has."""
    folder = paths.quarantine / table
    try:
        make_directories(folder)
        for k in range(10_000):
            stem = path.stem if k == 0 else f"{path.stem}.{k}"
            target, note = folder / f"{stem}{path.suffix}", folder / f"{stem}.why.txt"
            if target.exists():
                continue
            try:  # reserve the note's name: a later quarantine of the same cell takes the next number
                os.close(os.open(note, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                continue
            os.rename(path, target)
            fsync_directory(path.parent)
            write_atomic(note, reason + "\n")
            return f"moved to {target}"
        return "left in place (quarantine/ is full)"
    except OSError:
        return "left in place (could not move it)"


def write_json(path: Path, payload: dict) -> None:
    write_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def move_aside(paths: StudyPaths, path: Path, reason: str) -> str:
    """Move a damaged provenance file (``environment.json``) to ``quarantine/`` rather than overwrite it."""
    return _quarantine(paths, "provenance", path, reason)
