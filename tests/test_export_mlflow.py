"""The MLflow export: a smoke study replayed into a temporary SQLite store and read back with MlflowClient.

The checks that need no MLflow (arguments, missing extra, the metric rows of one cell) always run; the
store tests skip only when the optional extra is not installed (CI installs it: ``.[dev,dask,mlflow]``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis import export_mlflow
from analysis.load import read_table
from downscalexr import schema

REPO = Path(__file__).resolve().parent.parent
try:
    import mlflow  # noqa: F401

    HAVE_MLFLOW = True
except ImportError:
    HAVE_MLFLOW = False
needs_mlflow = pytest.mark.skipif(not HAVE_MLFLOW, reason='MLflow not installed: pip install -e ".[mlflow]"')


# ---------------------------------------------------------------- without MLflow


def test_help_names_the_extra(capsys):
    with pytest.raises(SystemExit) as exc:
        export_mlflow.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--tracking-uri" in out and "sqlite:///mlflow.db" in out
    assert 'pip install -e ".[mlflow]"' in " ".join(out.split())


def test_missing_extra_says_the_pip_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    code = export_mlflow.main(["--results", str(tmp_path), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    assert code == 2
    err = capsys.readouterr().err
    assert "MLflow is not installed" in err and 'pip install -e ".[mlflow]"' in err


def test_no_tracking_uri_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert export_mlflow.main(["--results", str(tmp_path)]) == 2
    assert "--tracking-uri" in capsys.readouterr().err


@needs_mlflow
def test_missing_results_dir_is_refused(tmp_path, capsys):
    code = export_mlflow.main(
        ["--results", str(tmp_path / "nope"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]
    )
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "m.db").exists()  # nothing written when the input is bad


def test_cell_metrics_known_answer():
    """Metric rows of one hand-made cell: values worked out by hand, NaN left out, epochs as steps."""
    row = {c: np.nan for c in schema.RUNS} | {"run_id": "r", "study": "s", "seed": 3, "status": "ok"}
    row |= {"accuracy": 0.75, "params": 120, "auroc": np.nan, "permute": True, "threads": 1}
    epochs = pd.DataFrame(
        {"run_id": "r", "epoch": [1, 0], "train_loss": [0.5, 0.9], "val_auroc": [np.nan, 0.6]}
    )
    latency = pd.DataFrame(
        {
            "run_id": "r",
            "batch_size": 4,
            "threads": 1,
            "memory_format": "contiguous",
            "repeat": [0, 1, 2, 3],
            "seconds": [0.004, 0.001, 0.003, 0.002],
            "reference_seconds": np.nan,
        }
    )
    got = {(k, step): v for k, v, step in export_mlflow.cell_metrics(row, epochs, latency)}
    lat = "latency/b4_contiguous_t1/"
    expected = {
        ("accuracy", 0): 0.75,
        ("params", 0): 120.0,  # a model fact is a metric; design (seed) and provenance (threads) are not
        ("epoch/train_loss", 0): 0.9,
        ("epoch/train_loss", 1): 0.5,
        ("epoch/val_auroc", 0): 0.6,
        (lat + "median_ms", 0): 2.5,
        (lat + "q25_ms", 0): 1.75,  # linear interpolation between 1 and 2 ms
        (lat + "q75_ms", 0): 3.25,
        (lat + "min_ms", 0): 1.0,
        (lat + "images_per_s", 0): 4 / 0.0025,
        (lat + "repeats", 0): 4.0,
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key


# ---------------------------------------------------------------- against a SQLite store


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """The smoke study (6 cells), trained once for this module."""
    out = tmp_path_factory.mktemp("smoke") / "results"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    }
    cmd = [sys.executable, "-m", "experiments.grid", "--study", "smoke", "--seeds", "1", "--n-jobs", "1"]
    proc = subprocess.run([*cmd, "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def blank_store(tmp_path_factory) -> Path:
    """A SQLite store with MLflow's tables created once (the migrations take seconds); tests copy it."""
    if not HAVE_MLFLOW:
        pytest.skip('MLflow not installed: pip install -e ".[mlflow]"')
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("store") / "blank.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


def _store(blank_store: Path, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(blank_store, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def _export(results: Path, uri: str, *extra: str) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = export_mlflow.main(["--results", str(results), "--tracking-uri", uri, *extra])
    return code, out.getvalue(), err.getvalue()


def _cells(client, experiment="smoke", view=None):
    from mlflow.entities import ViewType

    eid = client.get_experiment_by_name(experiment).experiment_id
    view = ViewType.ACTIVE_ONLY if view is None else view
    return client.search_runs([eid], "tags.`downscalexr.role` = 'cell'", run_view_type=view, max_results=1000)


@pytest.fixture(scope="module")
def exported(smoke, blank_store, tmp_path_factory):
    """The smoke study exported once, with a report directory; returns (client, uri, stdout)."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("exported")
    report = folder / "report"
    (report / "tables").mkdir(parents=True)
    (report / "report.md").write_text("# Report\n")
    (report / "tables" / "metrics.csv").write_text("variant,accuracy\n")
    uri = _store(blank_store, folder / "store")
    cwd = os.getcwd()
    os.chdir(folder)  # nothing may land in the working directory
    try:
        code, out, err = _export(smoke, uri, "--report", str(report))
    finally:
        os.chdir(cwd)
    assert code == 0, err
    assert not (folder / "mlruns").exists() and (folder / "store" / "mlartifacts").is_dir()
    return MlflowClient(tracking_uri=uri), uri, out


@pytest.mark.slow
@needs_mlflow
def test_one_run_per_cell_under_one_parent(smoke, exported):
    client, _, out = exported
    runs = read_table(smoke, "runs")
    cells = _cells(client)
    assert sorted(r.data.tags["downscalexr.run_id"] for r in cells) == sorted(runs["run_id"])
    eid = client.get_experiment_by_name("smoke").experiment_id
    parents = client.search_runs([eid], "tags.`downscalexr.role` = 'study'")
    assert len(parents) == 1 and parents[0].info.run_name == "smoke"
    assert {r.data.tags["mlflow.parentRunId"] for r in cells} == {parents[0].info.run_id}
    assert {r.info.status for r in cells} == {"FINISHED"}
    assert f"exported {len(runs)} cell(s)" in out


@pytest.mark.slow
@needs_mlflow
def test_design_is_params_and_tags(smoke, exported):
    client = exported[0]
    runs = read_table(smoke, "runs").set_index("run_id")
    for run in _cells(client):
        row = runs.loc[run.data.tags["downscalexr.run_id"]]
        assert set(run.data.params) == set(export_mlflow.DESIGN_COLUMNS)
        assert run.data.params["variant"] == row["variant"] == run.data.tags["variant"]
        assert int(run.data.params["seed"]) == row["seed"]
        assert float(run.data.params["data_fraction"]) == row["data_fraction"]
        assert float(run.data.params["lr"]) == row["lr"]
        assert run.data.tags["status"] == "ok" and run.data.tags["git_commit"] == row["git_commit"]


@pytest.mark.slow
@needs_mlflow
def test_every_runs_column_is_exported(smoke, exported):
    """Each column of a cell's row is a param, tag or metric unless its value is missing (NaN or NA)."""
    client = exported[0]
    runs = read_table(smoke, "runs").set_index("run_id", drop=False)
    for run in _cells(client):
        row = runs.loc[run.data.tags["downscalexr.run_id"]]
        logged = set(run.data.params) | set(run.data.tags) | set(run.data.metrics) | {"run_id"}
        present = {c for c, v in row.items() if not (pd.api.types.is_scalar(v) and pd.isna(v))}
        assert present - logged == set()


@pytest.mark.slow
@needs_mlflow
def test_metrics_replay_the_tables(smoke, exported):
    client = exported[0]
    runs = read_table(smoke, "runs").set_index("run_id")
    epochs, latency = read_table(smoke, "epochs"), read_table(smoke, "latency")
    for run in _cells(client):
        rid = run.data.tags["downscalexr.run_id"]
        for metric in ("accuracy", "auroc", "brier", "params", "train_seconds"):
            assert run.data.metrics[metric] == pytest.approx(float(runs.loc[rid, metric]))
        mine = epochs[epochs["run_id"] == rid].sort_values("epoch")
        history = client.get_metric_history(run.info.run_id, "epoch/val_loss")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == mine["epoch"].tolist()
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            mine["val_loss"].tolist()
        )
        lat = latency[(latency["run_id"] == rid) & (latency["batch_size"] == 8)]
        key = "latency/b8_contiguous_t1/median_ms"
        assert run.data.metrics[key] == pytest.approx(1e3 * float(np.median(lat["seconds"])))
        assert run.data.metrics["latency/b8_contiguous_t1/repeats"] == len(lat)


@pytest.mark.slow
@needs_mlflow
def test_parent_carries_spec_and_report(exported):
    client = exported[0]
    eid = client.get_experiment_by_name("smoke").experiment_id
    parent = client.search_runs([eid], "tags.`downscalexr.role` = 'study'")[0].info.run_id
    top = {f.path for f in client.list_artifacts(parent)}
    assert {"spec.yaml", "environment.json", "data.json", "report"} <= top
    report = {f.path for f in client.list_artifacts(parent, "report")}
    assert {"report/report.md", "report/tables"} <= report
    local = Path(client.download_artifacts(parent, "spec.yaml"))
    assert "name: smoke" in local.read_text()


@pytest.mark.slow
@needs_mlflow
def test_rerun_adds_nothing(smoke, exported):
    client, uri, _ = exported
    before = sorted(r.info.run_id for r in _cells(client))
    code, out, err = _export(smoke, uri)
    assert code == 0, err
    assert "exported 0 cell(s), replaced 0, skipped 6" in out
    assert sorted(r.info.run_id for r in _cells(client)) == before


@pytest.mark.slow
@needs_mlflow
def test_recomputed_cell_is_replaced(smoke, blank_store, tmp_path):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    results = tmp_path / "results"
    shutil.copytree(smoke, results)
    uri = _store(blank_store, tmp_path / "store")
    assert _export(results, uri)[0] == 0
    path = sorted((results / "runs").glob("*.parquet"))[0]
    frame = pq.read_table(path).to_pandas()
    frame["finished_at"] = "2030-01-01T00:00:00.000+00:00"  # as if rerun with --force
    frame["accuracy"] = 0.5
    pq.write_table(pq.read_table(path).from_pandas(frame, preserve_index=False), path)
    code, out, err = _export(results, uri)
    assert code == 0, err
    assert "exported 0 cell(s), replaced 1, skipped 5" in out
    client = MlflowClient(tracking_uri=uri)
    active = {r.data.tags["downscalexr.run_id"]: r for r in _cells(client)}
    assert len(active) == 6 and active[path.stem].data.metrics["accuracy"] == 0.5
    deleted = _cells(client, view=ViewType.DELETED_ONLY)
    assert [r.data.tags["downscalexr.run_id"] for r in deleted] == [path.stem]  # kept, restorable


@pytest.mark.slow
@needs_mlflow
def test_interrupted_export_finishes_on_rerun(smoke, blank_store, tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = _store(blank_store, tmp_path / "store")
    real = MlflowClient.set_terminated
    calls = []

    def failing(self, run_id, *args, **kwargs):
        calls.append(run_id)
        if len(calls) == 3:
            raise MlflowException("store went away")
        return real(self, run_id, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "set_terminated", failing)
    code, _, err = _export(smoke, uri)
    assert code == 1 and "rerun to finish" in err
    monkeypatch.setattr(MlflowClient, "set_terminated", real)
    client = MlflowClient(tracking_uri=uri)
    assert sorted(r.info.status for r in _cells(client)) == ["FINISHED", "FINISHED", "RUNNING"]
    code, out, err = _export(smoke, uri)
    assert code == 0, err
    assert "exported 3 cell(s), replaced 1, skipped 2" in out
    cells = _cells(client)
    assert len(cells) == 6 and {r.info.status for r in cells} == {"FINISHED"}
