"""The study store: atomic per-cell writes, finished cells, quarantine of bad files, the runner lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from downscalexr import schema
from experiments.store import (
    StoreError,
    StudyLockedError,
    StudyPaths,
    finished_run_ids,
    is_finished,
    read_study,
    study_lock,
    write_atomic,
    write_cell,
    write_frame_atomic,
)

REPO = Path(__file__).resolve().parent.parent


def fake_cell(run_id: str, status: str = "ok", n_examples: int = 3) -> dict[str, pd.DataFrame]:
    """Schema-valid rows of one cell without training anything."""
    row = {}
    for col, dtype in schema.RUNS.items():
        row[col] = {"string": "x", "int64": 1, "float64": 0.5, "boolean": False}[dtype]
    row |= {"run_id": run_id, "status": status, "variant": "avgpool", "seed": 0}
    runs = schema.conform("runs", pd.DataFrame([row]))
    epochs = schema.conform(
        "epochs",
        pd.DataFrame(
            {c: [0.1, 0.2] if d == "float64" else [0, 1] for c, d in schema.EPOCHS.items()}
            | {"run_id": run_id}
        ),
    )
    predictions = schema.conform(
        "predictions",
        pd.DataFrame(
            {
                "run_id": run_id,
                "example_id": range(n_examples),
                "label": [i % 2 for i in range(n_examples)],
                "class_index": 1,
                "score": 0.5,
            }
        ),
    )
    kernels = schema.conform(
        "kernels",
        pd.DataFrame(
            {"run_id": run_id, "layer": "conv1", "out_channel": [0, 1], "in_channel": 0, "row": 0, "col": 0}
            | {"value": [0.25, -0.25]}
        ),
    )
    return {
        "runs": runs,
        "epochs": epochs,
        "predictions": predictions,
        "latency": schema.empty("latency"),
        "kernels": kernels,
    }


@pytest.fixture
def paths(tmp_path) -> StudyPaths:
    p = StudyPaths(tmp_path / "study")
    p.prepare()
    return p


def test_prepare_makes_every_table_directory(paths):
    for table in ("runs", "epochs", "predictions", "latency", "kernels"):
        assert paths.table_dir(table).is_dir()


def test_prepare_refuses_a_path_under_a_regular_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(NotADirectoryError):
        StudyPaths(blocker / "study").prepare()


def test_written_cell_reads_back_equal(paths):
    tables = fake_cell("aaaa")
    write_cell(paths, tables)
    back = read_study(paths.root)
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(back[name], frame, check_dtype=True)
    assert is_finished(paths, "aaaa")
    assert finished_run_ids(paths) == {"aaaa"}


def test_cell_without_runs_row_is_not_finished_and_not_read(paths):
    tables = fake_cell("bbbb")
    # an interrupted cell: every table but the runs row, which is written last
    for name in ("epochs", "predictions", "latency"):
        write_frame_atomic(paths.cell_file(name, "bbbb"), tables[name])
    write_cell(paths, fake_cell("cccc"))
    assert not is_finished(paths, "bbbb")
    back = read_study(paths.root)
    assert set(back["predictions"]["run_id"]) == {"cccc"}
    assert set(back["epochs"]["run_id"]) == {"cccc"}


def test_atomic_write_leaves_no_temporary_file_on_failure(tmp_path):
    class Boom(Exception):
        pass

    class Exploding(pd.DataFrame):
        def to_parquet(self, *args, **kwargs):
            raise Boom

    target = tmp_path / "runs" / "x.parquet"
    with pytest.raises(Boom):
        write_frame_atomic(target, Exploding({"a": [1]}))
    assert list(target.parent.iterdir()) == []
    write_atomic(tmp_path / "note.txt", "hello")
    assert (tmp_path / "note.txt").read_text() == "hello"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_garbage_bytes_are_reported_by_path_and_quarantined(paths):
    write_cell(paths, fake_cell("good"))
    bad = paths.cell_file("runs", "junk")
    bad.write_bytes(b"this is not parquet" * 10)
    with pytest.warns(UserWarning, match=str(bad)):
        done = finished_run_ids(paths)
    assert done == {"good"}
    assert not bad.exists()
    moved = paths.quarantine / "runs" / "junk.parquet"
    assert moved.exists() and moved.with_suffix(".why.txt").read_text().strip()


def test_foreign_parquet_in_a_table_dir_is_never_merged(paths):
    write_cell(paths, fake_cell("good"))
    foreign = paths.cell_file("predictions", "other")
    pd.DataFrame({"who": ["me"], "value": [1.0]}).to_parquet(foreign)
    with pytest.warns(UserWarning, match="other.parquet"):
        back = read_study(paths.root)
    assert list(back["predictions"].columns) == list(schema.PREDICTIONS)
    assert set(back["predictions"]["run_id"]) == {"good"}
    assert (paths.quarantine / "predictions" / "other.parquet").exists()


def test_file_whose_rows_belong_to_another_run_is_quarantined(paths):
    write_cell(paths, fake_cell("good"))
    # valid schema, but named after a cell it does not describe
    write_frame_atomic(paths.cell_file("runs", "impostor"), fake_cell("good")["runs"])
    with pytest.warns(UserWarning, match="impostor"):
        back = read_study(paths.root)
    assert list(back["runs"]["run_id"]) == ["good"]


def test_runs_file_with_two_rows_is_quarantined(paths):
    two = pd.concat([fake_cell("dup")["runs"]] * 2, ignore_index=True)
    write_frame_atomic(paths.cell_file("runs", "dup"), two)
    with pytest.warns(UserWarning, match="dup.parquet"):
        assert finished_run_ids(paths) == set()


def test_unknown_status_is_quarantined(paths):
    write_frame_atomic(paths.cell_file("runs", "odd"), fake_cell("odd", status="crashed")["runs"])
    with pytest.warns(UserWarning, match="crashed"):
        assert not is_finished(paths, "odd")


def test_read_study_of_an_empty_directory_is_an_error(tmp_path):
    with pytest.raises(StoreError, match="no study results"):
        read_study(tmp_path)


def test_plain_readers_see_the_same_rows(paths):
    for rid in ("r1", "r2", "r3"):
        write_cell(paths, fake_cell(rid, n_examples=4))
    assert len(pd.read_parquet(paths.table_dir("runs"))) == 3
    assert ds.dataset(paths.table_dir("predictions"), format="parquet").count_rows() == 12


def _hold_study_lock(paths, seconds: float) -> subprocess.Popen:
    """A separate process that takes the study lock as a runner would, says so, then holds it."""
    code = (
        "import sys, time; from experiments.store import StudyPaths, study_lock; "
        "holder = {'pid': __import__('os').getpid(), 'host': __import__('socket').gethostname(), "
        "'started_at': '2030-01-01T00:00:00+00:00', 'command': ['python', '-m', 'experiments.grid']}; "
        f"cm = study_lock(StudyPaths(sys.argv[1]), holder); cm.__enter__(); print('locked', flush=True); "
        f"time.sleep({seconds})"
    )
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(paths.root)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_study_lock_refuses_a_second_holder_naming_the_first(paths):
    proc = _hold_study_lock(paths, 60)
    try:
        with pytest.raises(StudyLockedError) as err, study_lock(paths, {"pid": os.getpid()}):
            pass
    finally:
        proc.kill()
        proc.wait()
    message = str(err.value)
    for part in (f"pid {proc.pid}", socket.gethostname(), "2030-01-01", "experiments.grid", "runner.lock"):
        assert part in message, message
    assert "fuser" in message  # how to find the holder of a stale lock


def test_study_lock_dies_with_its_process_and_records_the_holder(paths):
    proc = _hold_study_lock(paths, 60)
    proc.kill()
    proc.wait()
    holder = {"pid": os.getpid(), "host": "here", "started_at": "now", "command": ["x"]}
    with study_lock(paths, holder):  # the killed holder left no lock behind
        assert json.loads(paths.lock.read_text()) == holder


def test_study_lock_is_exclusive_within_one_process_too(paths):
    with study_lock(paths, {"pid": 1}), pytest.raises(StudyLockedError):
        with study_lock(paths, {"pid": 2}):
            pass
    with study_lock(paths, {"pid": 3}):
        pass
