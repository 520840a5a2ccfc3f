"""Rewrite a study's older result files with every column of their table: one table for any reader.

    python -m experiments.upgrade results/default            # rewrite what needs it
    python -m experiments.upgrade results/default --dry-run  # only list it

Files written before a column existed (``permute``, ``init``, ``reference_seconds``, ...) lack it: pandas
and pyarrow.dataset then drop that column from the whole table when such a file comes first, duckdb
refuses the table without ``union_by_name`` and polars raises a schema error. The analysis reads such
studies either way (:func:`downscalexr.schema.conform` fills what is missing), so nothing is rewritten
unless this command is run. It rewrites each outdated file with its table's one schema
(:mod:`experiments.table_schema`): the missing columns get the value an old cell had by definition
(``permute`` false, ``init`` random) or null where there is none; no stored value changes. Each file is
replaced atomically, under the study's runner lock; a file that does not validate is left as it is
(the grid's next run moves it to ``quarantine/``). Exit status: 0 done, 2 not a study directory,
3 the directory is locked by a runner or cannot be written.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from downscalexr import schema
from experiments.errors import EXIT_ENVIRONMENT, EXIT_OK, EXIT_USAGE
from experiments.store import (
    TABLES,
    StudyLockedError,
    StudyPaths,
    study_lock,
    write_common_metadata,
    write_frame_atomic,
)
from experiments.table_schema import is_current


def cell_files(paths: StudyPaths, table: str) -> list[Path]:
    """The cell files of one table (``<run_id>.parquet``; hidden temporaries left out), sorted."""
    folder = paths.table_dir(table)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))


def outdated_files(paths: StudyPaths) -> dict[str, list[Path]]:
    """Per table, the readable cell files whose schema is not the table's one schema.

    Files whose footer cannot be read are not listed: they are damaged, not outdated (the grid moves
    them to ``quarantine/``).
    """
    out: dict[str, list[Path]] = {}
    for table in TABLES:
        stale = []
        for path in cell_files(paths, table):
            try:
                if not is_current(path, table):
                    stale.append(path)
            except (OSError, pa.ArrowException):
                continue
        if stale:
            out[table] = stale
    return out


def upgrade_study(paths: StudyPaths, dry_run: bool = False) -> tuple[list[Path], list[str]]:
    """Rewrite every outdated file of the study with its table's schema; return (rewritten, left alone).

    Call it while holding the study lock (:func:`experiments.store.study_lock`). ``left alone`` names
    each file that could not be read or validated, with the reason. With ``dry_run`` nothing is
    written and ``rewritten`` lists what would be.
    """
    rewritten, left = [], []
    for table, files in outdated_files(paths).items():
        for path in files:
            try:
                frame = schema.validate(table, pq.read_table(path).to_pandas())
            except Exception as exc:  # unreadable or foreign: not ours to rewrite
                left.append(f"{path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
                continue
            if not dry_run:
                write_frame_atomic(path, frame, table)
            rewritten.append(path)
    if not dry_run:
        write_common_metadata(paths)
    return rewritten, left


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.upgrade",
        description="Rewrite the result files of a study that were written by an earlier version (without "
        "columns added since) with every column of their table, so that pandas, pyarrow.dataset, duckdb "
        "and polars read each table whole. Values are unchanged; the analysis reads old files anyway.",
    )
    parser.add_argument("study_dir", type=Path, help="the study directory, e.g. results/default")
    parser.add_argument("--dry-run", action="store_true", help="list the files to rewrite; change nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the upgrade CLI; return the exit status (0 done, 2 not a study, 3 locked or unwritable)."""
    args = build_parser().parse_args(argv)
    paths = StudyPaths(args.study_dir)
    if not paths.table_dir("runs").is_dir():
        print(
            f"experiments.upgrade: error: {paths.root} holds no study (no runs/ directory)", file=sys.stderr
        )
        return EXIT_USAGE
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": ["python", "-m", "experiments.upgrade", *(argv if argv is not None else sys.argv[1:])],
    }
    try:
        if args.dry_run:
            rewritten, left = upgrade_study(paths, dry_run=True)
        else:
            with study_lock(paths, holder):
                rewritten, left = upgrade_study(paths)
    except (StudyLockedError, OSError) as exc:
        print(f"experiments.upgrade: error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    verb = "would rewrite" if args.dry_run else "rewrote"
    print(f"{verb} {len(rewritten)} file(s) of {paths.root} with every column of their table")
    for line in left:
        print(f"left alone (not a valid results file): {line}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
