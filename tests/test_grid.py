"""The grid runner end to end on the tiny ``smoke`` study: CLI, storage, resume and every failure mode."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest
import torch

from experiments import cell as cell_module
from experiments.cell import Cell, cells_of, run_cell, run_id
from experiments.grid import main
from experiments.spec import load_spec
from experiments.store import TABLES, StudyPaths, finished_run_ids, read_study

ONE_SEED = ("--seed-list", "0", "--fractions", "1.0")  # the smoke study's three variants, one cell each


def mtimes(root: Path) -> dict[str, int]:
    """Modification time (ns) of every Parquet file of a study, by path relative to the root."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.glob("*/*.parquet")}


def cells_run(stdout: str) -> int:
    """The number of cells a grid invocation computed, from its summary line."""
    line = next(x for x in stdout.splitlines() if "cell(s) run in" in x)
    return int(line.split()[0])


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, kept_process_state) -> Path:
    """The whole smoke study (2 seeds x 2 fractions x 3 variants), run once in-process."""
    out = tmp_path_factory.mktemp("smoke") / "study"
    with kept_process_state():
        code = main(["--study", "smoke", "--out", str(out), "--n-jobs", "1", "--quiet"])
    assert code == 0
    return out


# --- command line -----------------------------------------------------------------------------------


def test_help_describes_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--study", "--seeds", "--seed-list", "--fractions", "--n-jobs", "--backend", "--dry-run"):
        assert option in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("--variants", "avgpool", "maxpoool"), ["maxpoool", "avgpool", "maxpool", "strided", "choose from"]),
        (("--fractions", "0"), ["outside (0, 1]"]),
        (("--fractions", "0.5", "1.5"), ["1.5", "outside (0, 1]"]),
        (("--seeds", "0"), ["--seeds", "positive"]),
        (("--seeds", "-2"), ["--seeds", "positive"]),
        (("--seed-list", "1,x"), ["--seed-list"]),
        (("--n-jobs", "0"), ["--n-jobs"]),
        (("--study", "nonexistent"), ["nonexistent", "smoke", "default"]),
    ],
)
def test_bad_argument_exits_2_with_a_one_line_reason(run_grid, tmp_path, argv, expected):
    out = tmp_path / "study"
    argv = ("--study", "smoke", "--out", out, *argv) if "--study" not in argv else ("--out", out, *argv)
    code, stdout, stderr = run_grid(*argv)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert all(word in lines[0] for word in expected), lines[0]
    assert not out.exists()


def test_unwritable_out_exits_2_naming_the_directory(run_grid, tmp_path):
    blocker = tmp_path / "plain_file"
    blocker.write_text("a regular file, not a directory")
    code, _, stderr = run_grid("--study", "smoke", "--out", blocker / "study", "--n-jobs", "1")
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1
    assert str(blocker / "study") in stderr


def test_results_of_another_specification_are_not_mixed_in(run_grid, smoke, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(smoke, out)
    code, _, stderr = run_grid("--study", "smoke", "--out", out, "--epochs", "3", "--n-jobs", "1")
    assert code == 2
    assert "different specification" in stderr and "train" in stderr


def test_dry_run_lists_cells_and_estimate_and_writes_nothing(run_grid, tmp_path):
    out = tmp_path / "study"
    code, stdout, _ = run_grid("--study", "smoke", "--out", out, "--dry-run")
    assert code == 0
    assert not out.exists()
    spec = load_spec("smoke")
    listed = [line for line in stdout.splitlines() if line.startswith("todo")]
    assert len(listed) == len(cells_of(spec)) == 12
    assert {line.split()[1] for line in listed} == {run_id(spec, c) for c in cells_of(spec)}
    assert "12 cells, 0 done, 12 to run; estimated" in stdout


def test_dry_run_counts_finished_cells(run_grid, smoke):
    before = mtimes(smoke)
    code, stdout, _ = run_grid("--study", "smoke", "--out", smoke, "--dry-run")
    assert code == 0
    assert "12 cells, 12 done, 0 to run" in stdout
    assert mtimes(smoke) == before


# --- a full run ---------------------------------------------------------------------------------------


def test_full_run_tables_are_readable_by_plain_readers(smoke):
    study = read_study(smoke)
    spec = load_spec("smoke")
    runs = study["runs"]
    assert len(runs) == 12 and runs["run_id"].is_unique
    assert set(runs["run_id"]) == {run_id(spec, c) for c in cells_of(spec)}
    assert (runs["status"] == "ok").all()
    assert len(study["predictions"]) == 12 * spec.data["n_test"]
    assert len(study["epochs"]) == runs["epochs_run"].sum()
    for table in TABLES:
        plain = pd.read_parquet(smoke / table)
        arrow = ds.dataset(smoke / table, format="parquet").to_table().to_pandas()
        assert len(plain) == len(arrow) == len(study[table])
        assert set(plain["run_id"]) == set(study[table]["run_id"])
    assert (smoke / "spec.yaml").exists()
    env = json.loads((smoke / "environment.json").read_text())
    assert env["packages"]["torch"] and env["worker_threads"] == 1 and env["git_commit"]
    assert "--study" in env["command"] and len(env["invocations"]) == 1


def test_run_ids_are_stable_across_runs_and_overrides(run_grid, smoke, tmp_path):
    out = tmp_path / "subset"
    code, _, _ = run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", "--quiet", *ONE_SEED)
    assert code == 0
    full = read_study(smoke)["runs"].set_index("run_id")
    part = read_study(out)["runs"].set_index("run_id")
    assert set(part.index) <= set(full.index) and len(part) == 3
    cols = ["variant", "seed", "data_fraction", "n_train", "accuracy", "auroc", "log_loss"]
    pd.testing.assert_frame_equal(part[cols], full.loc[part.index, cols])


def test_paired_design_shares_test_set_subsets_and_initial_weights(smoke):
    study = read_study(smoke)
    preds = study["predictions"].sort_values(["run_id", "example_id"])
    per_run = {rid: g[["example_id", "label"]].to_numpy() for rid, g in preds.groupby("run_id")}
    first = next(iter(per_run.values()))
    assert all((v == first).all() for v in per_run.values())
    runs = study["runs"]
    # one training subset per seed and fraction, whatever the variant
    assert (runs.groupby(["seed", "data_fraction"])["n_train"].nunique() == 1).all()
    assert (runs.groupby("data_fraction")["n_train"].first().diff().dropna() > 0).all()
    spec = load_spec("smoke")
    options = spec.model_options | {"in_channels": 1, "input_size": spec.data["image_size"], "num_outputs": 1}
    avg, mx = (
        cell_module.create_model(spec.model, downsample=v, seed=3, **options).state_dict()
        for v in ("avgpool", "maxpool")
    )
    assert avg.keys() == mx.keys() and all(torch.equal(avg[k], mx[k]) for k in avg)


def test_same_cell_twice_gives_identical_results():
    from experiments._worker import data_for

    spec = load_spec("smoke")
    cell = Cell(spec.name, spec.dataset, spec.model, "maxpool", 1, 0.5)
    first, second = (run_cell(spec, cell, data_for(spec, cell)) for _ in range(2))
    metrics = ["accuracy", "auroc", "log_loss", "train_accuracy", "val_accuracy", "n_train", "status"]
    pd.testing.assert_frame_equal(first["runs"][metrics], second["runs"][metrics])
    pd.testing.assert_frame_equal(first["predictions"], second["predictions"])
    pd.testing.assert_frame_equal(
        first["epochs"].drop(columns="seconds"), second["epochs"].drop(columns="seconds")
    )


def test_rerun_skips_every_finished_cell_and_force_recomputes(run_grid, tmp_path):
    out = tmp_path / "study"
    assert run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", *ONE_SEED)[0] == 0
    before = mtimes(out)
    first = read_study(out)
    time.sleep(0.01)
    code, stdout, _ = run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert code == 0 and cells_run(stdout) == 0
    assert mtimes(out) == before
    code, stdout, _ = run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", "--force", *ONE_SEED)
    assert code == 0 and cells_run(stdout) == 3
    after = mtimes(out)
    assert all(
        after[f"runs/{rid}.parquet"] != before[f"runs/{rid}.parquet"] for rid in first["runs"]["run_id"]
    )
    again = read_study(out)
    cols = ["run_id", "accuracy", "auroc", "n_train"]
    pd.testing.assert_frame_equal(again["runs"][cols], first["runs"][cols])
    pd.testing.assert_frame_equal(again["predictions"], first["predictions"])


def test_resuming_cells_timed_without_the_reference_workload_warns(run_grid, tmp_path):
    out = tmp_path / "study"
    assert run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", *ONE_SEED)[0] == 0
    code, _, err = run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert code == 0 and "reference workload" not in err
    # make one finished cell look as if an older version had written it
    path = sorted((out / "latency").glob("*.parquet"))[0]
    pd.read_parquet(path).drop(columns="reference_seconds").to_parquet(path, index=False)
    code, stdout, err = run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert code == 0 and cells_run(stdout) == 0
    assert "1 of the 3 finished cells" in err and "--force" in err


# --- failure handling ---------------------------------------------------------------------------------


def test_a_raising_cell_is_stored_as_failed_and_the_grid_continues(run_grid, tmp_path, monkeypatch):
    real = cell_module.fit

    def flaky(model, *args, **kwargs):  # fails in training: the checks before the grid build models
        if model.downsample_name == "maxpool":
            raise RuntimeError("planted failure in maxpool")
        return real(model, *args, **kwargs)

    monkeypatch.setattr(cell_module, "fit", flaky)
    out = tmp_path / "study"
    code, stdout, _ = run_grid(
        "--study", "smoke", "--out", out, "--n-jobs", "1", "--seed-list", "0,1", "--fractions", "1.0"
    )
    assert code == 1
    runs = read_study(out)["runs"].set_index("variant")
    assert len(runs) == 6
    failed = runs.loc["maxpool"]
    assert (failed["status"] == "failed").all()
    assert failed["error"].str.contains("planted failure in maxpool").all()
    assert (runs.drop(index="maxpool")["status"] == "ok").all()
    assert "failed: maxpool" in stdout


def test_a_seed_whose_data_fails_to_load_fails_its_cells_only(run_grid, tmp_path, monkeypatch):
    import experiments._worker as execute

    real = execute.data_for

    def flaky(spec, cell):
        if cell.seed == 1:
            raise OSError("planted: data of seed 1 unreadable")
        return real(spec, cell)

    monkeypatch.setattr(execute, "data_for", flaky)
    out = tmp_path / "study"
    argv = ("--study", "smoke", "--out", out, "--n-jobs", "1", "--seed-list", "0,1", "--fractions", "1.0")
    code, _, _ = run_grid(*argv)
    assert code == 1
    runs = read_study(out)["runs"].set_index("seed")
    assert (runs.loc[0, "status"] == "ok").all()
    assert (runs.loc[1, "status"] == "failed").all()
    assert runs.loc[1, "error"].str.contains("planted: data of seed 1 unreadable").all()


def test_a_diverging_run_is_stored_as_diverged(run_grid, study_yaml, tmp_path):
    path = study_yaml("exploding", variants=["avgpool", "strided"], train={"lr": 1e12, "optimizer": "sgd"})
    out = tmp_path / "study"
    code, _, _ = run_grid("--study", path, "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert code == 1
    runs = read_study(out)["runs"]
    assert len(runs) == 2 and (runs["status"] == "diverged").all()
    assert runs["error"].str.contains("non-finite").all()


def test_corrupt_and_foreign_files_are_quarantined_and_own_cells_recomputed(run_grid, tmp_path):
    out = tmp_path / "study"
    assert run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", "--quiet", *ONE_SEED)[0] == 0
    ids = sorted(read_study(out)["runs"]["run_id"])
    before = mtimes(out)
    (out / "runs" / f"{ids[0]}.parquet").write_bytes(b"\x00garbage, not parquet\x00" * 50)
    (out / "predictions" / f"{ids[1]}.parquet").write_bytes(b"PAR1 truncated")
    pd.DataFrame({"patient": ["p1"], "score": [0.3]}).to_parquet(out / "runs" / "foreign.parquet")
    pd.DataFrame({"x": [1, 2]}).to_parquet(out / "epochs" / "foreign.parquet")
    with pytest.warns(UserWarning) as warned:
        code, stdout, _ = run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", *ONE_SEED)
    assert code == 0
    messages = " ".join(str(w.message) for w in warned)
    for bad in (f"runs/{ids[0]}", f"predictions/{ids[1]}", "runs/foreign", "epochs/foreign"):
        assert bad in messages
        assert (out / "quarantine" / f"{bad}.parquet").exists()
    assert cells_run(stdout) == 2
    after = mtimes(out)
    assert after[f"runs/{ids[2]}.parquet"] == before[f"runs/{ids[2]}.parquet"]
    study = read_study(out)
    assert sorted(study["runs"]["run_id"]) == ids
    assert set(study["predictions"]["run_id"]) == set(ids)
    for table in TABLES:
        assert len(pd.read_parquet(out / table)) == len(study[table])


@pytest.mark.slow
def test_sigkill_mid_grid_loses_only_unfinished_cells(start_grid, run_grid, study_yaml, tmp_path):
    # longer cells than smoke's, so the kill lands mid-grid rather than after the last cell
    path = study_yaml("killed", train={"epochs": 12})
    out = tmp_path / "study"
    proc = start_grid("--study", path, "--out", out, "--n-jobs", "1", "--quiet")
    paths = StudyPaths(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if paths.table_dir("runs").is_dir() and len(list(paths.table_dir("runs").glob("*.parquet"))) >= 2:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the grid finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    survived = finished_run_ids(paths)
    assert 2 <= len(survived) < 12
    for table in TABLES:
        strays = [p.name for p in paths.table_dir(table).iterdir() if not p.name.endswith(".parquet")]
        # hidden temporaries and the table's _common_metadata: skipped by pandas and pyarrow.dataset
        assert all(name.startswith((".", "_")) for name in strays), strays
    before = mtimes(out)
    code, stdout, _ = run_grid("--study", path, "--out", out, "--n-jobs", "1")
    assert code == 0
    assert cells_run(stdout) == 12 - len(survived)
    after = mtimes(out)
    assert all(after[f"runs/{rid}.parquet"] == before[f"runs/{rid}.parquet"] for rid in survived)
    study = read_study(out)
    assert len(study["runs"]) == 12 and study["runs"]["run_id"].is_unique
    for table in TABLES:
        assert len(pd.read_parquet(out / table)) == len(study[table])
        assert ds.dataset(out / table, format="parquet").count_rows() == len(study[table])


@pytest.mark.slow
def test_a_second_runner_on_a_busy_directory_is_refused_naming_the_first(start_grid, run_grid, tmp_path):
    out = tmp_path / "study"
    first = start_grid("--study", "smoke", "--out", out, "--n-jobs", "1", "--quiet")
    lock = StudyPaths(out).lock
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        if lock.exists() and lock.read_text().strip():
            break
        time.sleep(0.01)
    assert first.poll() is None, "the first runner ended before the second could start"
    # another specification (3 epochs) and the same one: both refused while the first runs
    for extra in (("--epochs", "3"), ()):
        code, _, stderr = run_grid("--study", "smoke", "--out", out, "--n-jobs", "1", *extra)
        assert code == 3
        assert len(stderr.strip().splitlines()) == 1
        assert f"pid {first.pid}" in stderr and "runner.lock" in stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    study = read_study(out)
    assert len(study["runs"]) == 12 and study["runs"]["run_id"].is_unique
    invocations = json.loads((out / "environment.json").read_text())["invocations"]
    assert len(invocations) == 1  # the refused runners wrote nothing


@pytest.mark.slow
def test_dask_backend_on_a_loopback_cluster(run_grid, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "study"
    code, stdout, _ = run_grid(
        "--study", "smoke", "--out", out, "--backend", "dask", "--n-jobs", "2", *ONE_SEED
    )
    assert code == 0
    assert cells_run(stdout) == 3
    runs = read_study(out)["runs"]
    assert len(runs) == 3 and (runs["status"] == "ok").all()
    assert set(runs["threads"]) == {1}


@pytest.mark.slow
def test_dask_workers_get_the_allocator_and_thread_settings():
    pytest.importorskip("distributed")
    import os

    from experiments._dispatch import _dask_backend
    from experiments._worker import worker_environment

    wanted = worker_environment()
    with _dask_backend(None, 1) as client:
        seen = client.run(lambda: {k: os.environ.get(k) for k in wanted})
    (worker_env,) = seen.values()
    # dask's nanny would set MALLOC_TRIM_THRESHOLD_=65536 (measured to halve training speed)
    assert worker_env == wanted
    assert worker_env["MALLOC_TRIM_THRESHOLD_"] != "65536"


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_in_process_path_gets_the_workers_allocator_settings():
    from experiments._worker import apply_allocator_settings

    # every threshold accepted by glibc; --n-jobs 1 calls this before its first cell
    assert apply_allocator_settings() is True
