"""One schema per table (issue 16 item 5): every file has every column, ``_common_metadata`` holds the
schema, and pandas, pyarrow.dataset, duckdb, polars and the analysis loader read a study as one table,
an upgraded mixed-version study included."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from test_store import fake_cell

from analysis.load import read_table
from downscalexr import schema
from experiments import upgrade
from experiments.store import TABLES, StudyPaths, study_lock, write_cell, write_common_metadata
from experiments.table_schema import arrow_schema, is_current

# columns that versions before the inductive-bias factors and the latency probe did not write
OLD_RUNS_DROP = list(schema.LATE_DEFAULTS["runs"])
OLD_LATENCY_DROP = list(schema.LATE_DEFAULTS["latency"])


def latency_rows(run_id: str) -> pd.DataFrame:
    return schema.conform(
        "latency",
        pd.DataFrame(
            {"run_id": run_id, "batch_size": [1, 1, 8], "threads": 1, "memory_format": "contiguous"}
            | {"repeat": [0, 1, 0], "seconds": [0.01, 0.011, 0.05], "reference_seconds": [0.2, 0.21, 0.2]}
        ),
    )


def write_old_cell(paths: StudyPaths, run_id: str) -> dict[str, pd.DataFrame]:
    """A cell as an earlier version stored it: no factor columns, no reference timings, no kernels file."""
    cell = fake_cell(run_id) | {"latency": latency_rows(run_id)}
    cell["runs"] = cell["runs"].drop(columns=OLD_RUNS_DROP).assign(variant="maxpool", seed=3)
    cell["latency"] = cell["latency"].drop(columns=OLD_LATENCY_DROP)
    for table in ("epochs", "predictions", "latency", "runs"):
        cell[table].to_parquet(paths.cell_file(table, run_id), index=False)  # pandas' own schema, as then
    return cell


@pytest.fixture
def mixed(tmp_path) -> StudyPaths:
    """Two cells of an earlier version (sorted first, so they set the schema naive readers infer) and
    two of this one."""
    paths = StudyPaths(tmp_path / "study")
    paths.prepare()
    for rid in ("0000old1", "0000old2"):
        write_old_cell(paths, rid)
    for rid in ("ffffnew1", "ffffnew2"):
        write_cell(paths, fake_cell(rid) | {"latency": latency_rows(rid)})
    return paths


def test_every_file_the_grid_writes_has_the_tables_one_schema(tmp_path):
    paths = StudyPaths(tmp_path / "study")
    paths.prepare()
    cell = fake_cell("r1")
    cell["runs"] = cell["runs"].assign(error=pd.NA, location_shift=np.nan)  # nulls keep their types
    write_cell(paths, cell | {"latency": schema.empty("latency")})
    write_common_metadata(paths)
    for table in TABLES:
        wanted = arrow_schema(table)
        assert pq.read_schema(paths.cell_file(table, "r1")).remove_metadata().equals(wanted), table
        assert pq.read_schema(paths.common_metadata(table)).equals(wanted), table
        assert pq.read_metadata(paths.common_metadata(table)).num_rows == 0
        assert wanted.names == list(schema.TABLES[table])  # the schema module's columns, in its order


def test_the_analysis_reads_a_mixed_version_study_without_an_upgrade(mixed):
    runs = read_table(mixed.root, "runs").set_index("run_id")
    assert list(runs.columns) == list(schema.RUNS)[1:]
    assert not runs.loc["0000old1", "permute"] and runs.loc["0000old1", "init"] == "random"
    assert runs.loc["ffffnew1", "variant"] == "avgpool" and runs.loc["0000old1", "variant"] == "maxpool"
    latency = read_table(mixed.root, "latency")
    old = latency["run_id"].str.startswith("0000")
    assert latency.loc[old, "reference_seconds"].isna().all()
    assert (latency.loc[~old, "reference_seconds"] > 0).all()


def _read_with_each_reader(folder) -> dict[str, pd.DataFrame]:
    """The table in ``folder`` as pandas, pyarrow.dataset, duckdb and polars read it, given the folder
    (pandas, pyarrow) or its files (duckdb, polars: the folder also holds ``_common_metadata``)."""
    files = str(folder / "*.parquet")
    return {
        "pandas": pd.read_parquet(folder),
        "pyarrow.dataset": ds.dataset(folder, format="parquet").to_table().to_pandas(),
        "duckdb": duckdb.sql(f"SELECT * FROM read_parquet('{files}')").df(),
        "polars": pl.read_parquet(files).to_pandas(),
        "polars folder": pl.scan_parquet(folder, hidden_file_prefix=["_", "."]).collect().to_pandas(),
    }


def _comparable(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """Rows in a fixed order, every value as text (each reader has its own null and dtype flavours)."""
    out = frame[list(schema.TABLES[table])].astype(object)
    out = out.where(out.notna(), None).astype(str).replace({"nan": "None", "<NA>": "None"})
    return out.sort_values(list(out.columns)).reset_index(drop=True)


def test_after_the_upgrade_every_reader_sees_one_table_and_agrees(mixed):
    before = {t: read_table(mixed.root, t) for t in TABLES}
    assert upgrade.main([str(mixed.root)]) == 0
    assert upgrade.outdated_files(mixed) == {}
    for table in TABLES:
        expected = _comparable(before[table], table)
        for reader, frame in _read_with_each_reader(mixed.table_dir(table)).items():
            assert list(frame.columns) == list(schema.TABLES[table]), (table, reader)
            pd.testing.assert_frame_equal(_comparable(frame, table), expected, obj=f"{table} by {reader}")
        # the analysis loader reads the same values as before the upgrade
        pd.testing.assert_frame_equal(_comparable(read_table(mixed.root, table), table), expected)


def test_the_upgrade_changes_no_stored_value_and_says_what_it_did(mixed, capsys):
    old = pq.read_table(mixed.cell_file("latency", "0000old1")).to_pandas()
    assert upgrade.main([str(mixed.root)]) == 0
    assert "rewrote 4 file(s)" in capsys.readouterr().out  # two runs and two latency files
    new = pq.read_table(mixed.cell_file("latency", "0000old1")).to_pandas()
    pd.testing.assert_frame_equal(new[old.columns], old, check_dtype=False)
    assert new["reference_seconds"].isna().all()
    assert all(is_current(p, t) for t in TABLES for p in upgrade.cell_files(mixed, t))
    assert upgrade.main([str(mixed.root)]) == 0
    assert "rewrote 0 file(s)" in capsys.readouterr().out


def test_a_dry_run_upgrade_lists_and_changes_nothing(mixed, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in mixed.root.rglob("*") if p.is_file()}
    assert upgrade.main([str(mixed.root), "--dry-run"]) == 0
    assert "would rewrite 4 file(s)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in mixed.root.rglob("*") if p.is_file()} == stamps


def test_the_upgrade_leaves_foreign_files_alone_and_refuses_a_locked_or_missing_study(mixed, capsys):
    foreign = mixed.table_dir("runs") / "notes.parquet"
    pd.DataFrame({"my": [1, 2]}).to_parquet(foreign)
    content = foreign.read_bytes()
    assert upgrade.main([str(mixed.root)]) == 0
    assert "left alone (not a valid results file)" in capsys.readouterr().out
    assert foreign.read_bytes() == content
    with study_lock(mixed, {"pid": 1, "host": "elsewhere", "command": ["grid"]}):
        assert upgrade.main([str(mixed.root)]) == 3
    assert "in use by another runner" in capsys.readouterr().err
    assert upgrade.main([str(mixed.root / "absent")]) == 2


def test_the_grid_notes_outdated_files_and_still_flags_untimed_latency(run_grid, tmp_path):
    out = tmp_path / "study"
    argv = ("--study", "smoke", "--out", out, "--seed-list", "0", "--fractions", "1.0", "--n-jobs", "1")
    assert run_grid(*argv, "--quiet")[0] == 0
    victim = sorted((out / "latency").glob("*.parquet"))[0]
    old = pq.read_table(victim).to_pandas().drop(columns=OLD_LATENCY_DROP)
    old.to_parquet(victim, index=False)  # as a version without the latency probe stored it
    code, _, err = run_grid(*argv)
    assert code == 0
    assert "note: 1 result file(s)" in err and "python -m experiments.upgrade" in err
    assert "1 of the 3 finished cells kept from an earlier run were timed without" in err
    assert upgrade.main([str(out)]) == 0
    code, _, err = run_grid(*argv)
    assert code == 0 and "note:" not in err
    assert "1 of the 3 finished cells" in err  # upgraded, the cell is still known to lack the probe
