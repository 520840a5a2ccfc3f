"""The grid with ``--ensemble``: the seeds of each cell trained together, stored as the single-cell path
stores them, with their own run ids; and what it refuses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from experiments._dispatch import Jobs
from experiments._ensemble import groups_of
from experiments.cell import cells_of, run_id
from experiments.one_cell import train_cell
from experiments.spec import SpecError, load_spec
from experiments.store import StudyPaths, read_study

SMOKE = ("--study", "smoke", "--quiet", "--set", "latency.enabled=false")


def _runs(out) -> pd.DataFrame:
    return read_study(out)["runs"].sort_values(["variant", "data_fraction", "seed"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def single_and_ensemble(tmp_path_factory, kept_process_state):
    """The smoke study (3 variants x 2 fractions x 2 seeds) trained one cell at a time and as ensembles."""
    from experiments.grid import main

    root = tmp_path_factory.mktemp("ensemble")
    with kept_process_state():
        assert main([*SMOKE, "--out", str(root / "single"), "--n-jobs", "1"]) == 0
        assert main([*SMOKE, "--out", str(root / "ensemble"), "--n-jobs", "1", "--ensemble"]) == 0
    return root / "single", root / "ensemble"


def test_ensemble_cells_match_single_cells_with_their_own_run_ids(single_and_ensemble):
    single, together = (_runs(p) for p in single_and_ensemble)
    assert len(single) == len(together) == 12
    assert (together["status"] == "ok").all()
    assert not set(single["run_id"]) & set(together["run_id"]), "ensemble cells need their own run ids"
    for column in ("steps_run", "best_epoch", "n_train", "params"):
        assert together[column].tolist() == single[column].tolist(), column
    for column in ("accuracy", "auroc", "val_accuracy", "train_accuracy"):
        np.testing.assert_allclose(together[column], single[column], atol=1e-9, err_msg=column)
    preds = [read_study(p)["predictions"] for p in single_and_ensemble]
    ids = dict(zip(together["run_id"], single["run_id"], strict=True))
    for rid_ens, rid_single in ids.items():
        a = preds[1][preds[1]["run_id"] == rid_ens]["score"].to_numpy()
        b = preds[0][preds[0]["run_id"] == rid_single]["score"].to_numpy()
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("backend", ["processes", pytest.param("dask", marks=pytest.mark.slow)])
def test_ensemble_grid_in_worker_processes_reproduces_the_in_process_run(
    run_grid, single_and_ensemble, tmp_path, backend
):
    if backend == "dask":
        pytest.importorskip("distributed")
    out = tmp_path / backend
    argv = ("--out", out, "--n-jobs", "2", "--backend", backend, "--ensemble", "--fractions", "1.0")
    code, _, _ = run_grid(*SMOKE, *argv)
    assert code == 0
    pool = read_study(out)
    stored = read_study(single_and_ensemble[1])
    for table in ("runs", "predictions"):
        keep = stored[table]["run_id"].isin(pool["runs"]["run_id"])
        columns = ["run_id", "accuracy"] if table == "runs" else ["run_id", "example_id", "score"]
        a = pool[table][columns].sort_values(columns[:2]).reset_index(drop=True)
        b = stored[table][keep][columns].sort_values(columns[:2]).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)  # same groups, same process set-up: bit-identical


def test_groups_hold_the_seeds_of_one_cell_in_grid_order():
    spec = load_spec("smoke")
    cells = cells_of(spec)
    groups = groups_of(cells)
    assert len(groups) == len(cells) // len(spec.seeds)
    for group in groups:
        assert [c.seed for c in group] == list(spec.seeds)
        assert len({dataclasses.replace(c, seed=0) for c in group}) == 1
    pending = {cells[0]: ("int8",)}  # a cell with levels pending trains apart from fresh cells
    assert (cells[0],) in groups_of(cells, pending)


def test_a_lost_group_keeps_its_stored_cells_and_fails_the_rest(single_and_ensemble, tmp_path):
    import shutil

    root = tmp_path / "study"
    shutil.copytree(single_and_ensemble[1], root)
    spec = load_spec("smoke", "latency.enabled=false", "train.ensemble=true")
    group = groups_of(cells_of(spec))[0]
    kept, lost = group
    for table in ("runs", "epochs", "predictions", "kernels"):  # the worker died before storing `lost`
        StudyPaths(root).cell_file(table, run_id(spec, lost)).unlink(missing_ok=True)
    jobs = Jobs(spec, list(group), (spec.to_dict(), str(root), {}, {}))
    summaries = jobs.lost(group, -9)
    assert [s["status"] for s in summaries] == ["ok", "failed"]
    runs = read_study(root)["runs"].set_index("run_id")
    assert runs.loc[run_id(spec, kept), "status"] == "ok"
    assert "killed by signal 9" in runs.loc[run_id(spec, lost), "error"]


def test_batch_norm_models_and_train_cell_are_refused_with_the_fix(run_grid, tmp_path):
    from pathlib import Path

    import yaml

    study = yaml.safe_load(Path("experiments/studies/smoke.yaml").read_text())
    study |= {"model": "resnet8", "model_options": {}}
    (tmp_path / "bn.yaml").write_text(yaml.safe_dump(study))
    out = tmp_path / "resnet"
    code, _, err = run_grid("--study", tmp_path / "bn.yaml", "--out", out, "--ensemble", "--quiet")
    assert code == 2
    assert "BatchNorm2d" in err and "train.ensemble: false" in err
    assert not (out / "runs").exists()
    with pytest.raises(SpecError, match="rerun the grid"):
        train_cell("smoke", "train.ensemble=true")


def test_the_report_says_the_seeds_were_trained_together(single_and_ensemble):
    from analysis.load import read_provenance
    from analysis.report.provenance import _ensemble_note

    notes = [_ensemble_note(read_provenance(study).get("spec")) for study in single_and_ensemble]
    assert notes[0] == "" and "trained together as one vmapped ensemble" in notes[1]
