"""Compression levels in the grid: one row per level with its parent, resume, unsupported and failed levels.

Runs the ``smoke-compression`` study (LeNet with avgpool and lppool; lppool has no quantized kernel for
its ``pow``) on one seed: two cells, each with four compression levels.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from downscalexr.data.base import standardized
from downscalexr.data.splits import nested_fractions
from experiments import _compression
from experiments._compression import level_run_id, pending_levels
from experiments._resume import plan_cells, run_id_under
from experiments._worker import data_for, store_lost_cell
from experiments.cell import cells_of, run_cell, run_id
from experiments.grid import main
from experiments.spec import SpecError, load_spec
from experiments.store import TABLES, StudyPaths, read_study

STUDY = "smoke-compression"
ONE_SEED = ("--seed-list", "0")
LEVELS = ("prune_l1_50", "prune_channels_30_ft", "int8_dynamic", "int8_static")


def mtimes(root: Path) -> dict[str, int]:
    """Modification time (ns) of every Parquet file of a study, by path relative to the root."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.glob("*/*.parquet")}


def study_file(tmp_path: Path, levels: tuple[str, ...]) -> Path:
    """The smoke-compression study on seed 0 with the given compression levels, as a YAML file."""
    raw = load_spec(STUDY, seeds=[0]).to_dict()
    raw["factors"]["compression"] = ["none", *levels]
    path = tmp_path / f"{STUDY}-{len(levels)}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory, kept_process_state) -> Path:
    """The smoke-compression study on one seed (two cells and their levels), run once in-process."""
    out = tmp_path_factory.mktemp("compression") / "study"
    with kept_process_state():
        code = main(["--study", STUDY, *ONE_SEED, "--out", str(out), "--n-jobs", "1", "--quiet"])
    assert code == 0, "unsupported levels must not make the grid exit 1"
    return out


@pytest.fixture
def study_copy(study, tmp_path) -> Path:
    """A copy of the module's study that a test may change."""
    return Path(shutil.copytree(study, tmp_path / "copy"))


def test_every_cell_has_one_row_per_level_carrying_its_parent_id(study):
    runs = read_study(study)["runs"]
    parents = runs[runs["compression"] == "none"]
    assert len(parents) == 2 and (parents["parent_run_id"] == parents["run_id"]).all()
    for parent in parents.itertuples():
        levels = runs[(runs["parent_run_id"] == parent.run_id) & (runs["compression"] != "none")]
        assert sorted(levels["compression"]) == sorted(LEVELS)
        for level in levels.itertuples():
            assert level.run_id == level_run_id(parent.run_id, level.compression)
            for column in ("variant", "seed", "data_fraction", "n_train", "steps_run", "model"):
                assert getattr(level, column) == getattr(parent, column), column


def test_ok_levels_have_their_own_predictions_and_latency_and_no_epochs(study):
    tables = read_study(study)
    runs, preds, latency = tables["runs"], tables["predictions"], tables["latency"]
    levels = runs[runs["compression"] != "none"]
    for level in levels[levels["status"] == "ok"].itertuples():
        mine = preds[preds["run_id"] == level.run_id].sort_values("example_id")
        parent = preds[preds["run_id"] == level.parent_run_id].sort_values("example_id")
        assert mine["example_id"].tolist() == parent["example_id"].tolist()
        assert mine["label"].tolist() == parent["label"].tolist()
        blocks = latency.groupby("run_id")[["batch_size", "memory_format"]]
        assert blocks.get_group(level.run_id).drop_duplicates().values.tolist() == (
            blocks.get_group(level.parent_run_id).drop_duplicates().values.tolist()
        )
    for table in ("epochs", "kernels"):
        assert not tables[table]["run_id"].isin(levels["run_id"]).any()


def test_an_unsupported_level_is_stored_with_its_reason(study):
    tables = read_study(study)
    runs = tables["runs"]
    unsupported = runs[runs["status"] == "unsupported"]
    assert set(zip(unsupported["variant"], unsupported["compression"], strict=True)) == {
        ("lppool", "int8_static")
    }
    assert unsupported["error"].str.contains("no quantized kernel").all()
    assert not tables["predictions"]["run_id"].isin(unsupported["run_id"]).any()
    # avgpool has quantized kernels for everything: its static int8 level is a measured run
    avg = runs[(runs["variant"] == "avgpool") & (runs["compression"] == "int8_static")]
    assert avg["status"].tolist() == ["ok"] and avg["accuracy"].notna().all()


def test_level_rows_record_what_compression_did(study):
    runs = read_study(study)["runs"]
    by = runs[runs["variant"] == "avgpool"].set_index("compression")
    assert abs(by.loc["prune_l1_50", "sparsity"] - 0.5) < 1e-3
    assert by.loc["prune_channels_30_ft", "params"] < by.loc["none", "params"]
    assert by.loc["prune_channels_30_ft", "flops"] < by.loc["none", "flops"]
    assert by.loc["prune_channels_30_ft", "finetune_steps"] == 40
    assert by.loc["prune_l1_50", "state_dict_gzip_bytes"] < by.loc["none", "state_dict_gzip_bytes"]
    for level in ("int8_dynamic", "int8_static"):
        assert by.loc[level, "state_dict_bytes"] < by.loc["none", "state_dict_bytes"]
        assert "torch.ao.quantization" in by.loc[level, "quant_path"]
        assert by.loc[level, "quant_engine"] == "x86"
    detail = json.loads(by.loc["prune_channels_30_ft", "compression_detail"])
    assert detail["channels"]["conv1"] == [4, 3]  # 30 % of 4 channels, rounded half up, is 1
    assert by.loc["none", "state_dict_bytes"] > by.loc["int8_static", "state_dict_bytes"] > 0


def test_a_rerun_skips_every_finished_level(study_copy, run_grid):
    before = mtimes(study_copy)
    code, out, _ = run_grid("--study", STUDY, *ONE_SEED, "--out", study_copy, "--n-jobs", "1")
    assert code == 0
    assert "0 cell(s) run" in out
    assert "unsupported: int8_static on lppool" in out
    assert mtimes(study_copy) == before


def test_a_level_added_later_is_computed_from_the_retrained_parent(study_copy, tmp_path, run_grid):
    before = mtimes(study_copy)
    extended = study_file(tmp_path, (*LEVELS, "prune_l1_80"))
    code, out, _ = run_grid("--study", extended, "--out", study_copy, "--n-jobs", "1", "--dry-run")
    assert code == 0 and sum(line.startswith("levels ") for line in out.splitlines()) == 2
    code, _, _ = run_grid("--study", extended, "--out", study_copy, "--n-jobs", "1", "--quiet")
    assert code == 0
    after = mtimes(study_copy)
    assert {k: after[k] for k in before} == before  # parents and earlier levels are not rewritten
    runs = read_study(study_copy)["runs"]
    new = runs[runs["compression"] == "prune_l1_80"]
    assert len(new) == 2 and (new["status"] == "ok").all()
    assert set(after) - set(before) == {f"{t}/{rid}.parquet" for rid in new["run_id"] for t in TABLES}
    # the same level computed in one go with its freshly trained parent gives the same predictions
    fresh = tmp_path / "fresh"
    assert run_grid("--study", extended, "--out", fresh, "--n-jobs", "1", "--quiet")[0] == 0
    resumed = read_study(study_copy)["predictions"].set_index(["run_id", "example_id"])["score"]
    whole = read_study(fresh)["predictions"].set_index(["run_id", "example_id"])["score"]
    assert whole.index.isin(resumed.index).all()
    pd.testing.assert_series_equal(resumed.loc[whole.index], whole)


def test_a_parent_that_retraining_does_not_reproduce_fails_its_new_levels(study_copy, tmp_path, run_grid):
    runs = read_study(study_copy)["runs"]
    parent = runs[(runs["compression"] == "none") & (runs["variant"] == "avgpool")]["run_id"].iloc[0]
    path = StudyPaths(study_copy).cell_file("predictions", parent)
    stored = pd.read_parquet(path)
    stored.assign(score=stored["score"] * 0.9).to_parquet(path, index=False)  # not what training gives
    extended = study_file(tmp_path, (*LEVELS, "prune_l1_80"))
    code, _, err = run_grid("--study", extended, "--out", study_copy, "--n-jobs", "1", "--quiet")
    assert code == 1 and "compression level(s) failed or missing" in err
    runs = read_study(study_copy)["runs"].set_index("run_id")
    level = runs.loc[level_run_id(parent, "prune_l1_80")]
    assert level["status"] == "failed" and "does not reproduce" in level["error"]
    other = runs[(runs["compression"] == "prune_l1_80") & (runs["parent_run_id"] != parent)]
    assert other["status"].tolist() == ["ok"]
    code, _, _ = run_grid("--study", extended, "--out", study_copy, "--n-jobs", "1", "--quiet", "--force")
    assert code == 0
    assert read_study(study_copy)["runs"].set_index("run_id").loc[level.name, "status"] == "ok"


def test_the_plan_computes_missing_and_failed_levels_of_stored_parents():
    spec = load_spec(STUDY, seeds=[0])
    cells = cells_of(spec)
    ids = [run_id(spec, c) for c in cells]
    rows = [(ids[0], "ok"), (ids[1], "ok")]
    rows += [(level_run_id(ids[0], level), "ok") for level in LEVELS]
    rows += [(level_run_id(ids[1], level), "ok") for level in LEVELS[:2]]
    rows += [(level_run_id(ids[1], LEVELS[2]), "failed"), (level_run_id(ids[1], LEVELS[3]), "unsupported")]
    stored = pd.DataFrame(rows, columns=["run_id", "status"])
    plan = plan_cells(spec, stored, force=False, retry_failed=True)
    assert plan.todo == (cells[1],) and plan.levels_only == {cells[1]: (LEVELS[2],)}
    assert plan.mark(cells[0]) == "ok" and plan.mark(cells[1]) == "levels"
    assert plan_cells(spec, stored, force=False, retry_failed=False).todo == ()
    forced = plan_cells(spec, stored, force=True, retry_failed=True)
    assert forced.todo == tuple(cells) and forced.levels_only == {}
    status = dict(rows)
    assert pending_levels(spec, ids[0], status, retry_failed=True) == ()


def test_a_stored_level_row_maps_to_its_own_run_id(study):
    spec = load_spec(STUDY, seeds=[0])
    runs = read_study(study)["runs"]
    assert [run_id_under(spec, row) for _, row in runs.iterrows()] == runs["run_id"].tolist()


def test_a_lost_worker_of_a_levels_only_job_keeps_the_parent(study_copy):
    spec = load_spec(STUDY, seeds=[0])
    cell = cells_of(spec)[0]
    parent = run_id(spec, cell)
    paths = StudyPaths(study_copy)
    before = paths.cell_file("runs", parent).read_bytes()
    summary = store_lost_cell(spec.to_dict(), cell, str(study_copy), {}, -9, ("prune_l1_80",))
    assert summary["status"] == "failed"
    assert paths.cell_file("runs", parent).read_bytes() == before
    row = read_study(study_copy)["runs"].set_index("run_id").loc[level_run_id(parent, "prune_l1_80")]
    assert row["status"] == "failed" and "signal 9" in row["error"] and row["parent_run_id"] == parent


@pytest.fixture(scope="module")
def one_cell():
    """The first cell of the smoke-compression study with its data (standardised on its subset)."""
    spec = load_spec(STUDY, seeds=[0])
    cell = cells_of(spec)[0]
    return spec, cell, data_for(spec, cell)


def test_levels_see_only_the_cells_training_subset(one_cell, monkeypatch):
    spec, cell, data = one_cell
    seen = []
    real = _compression.apply_compression

    def spy(level, model, **kw):
        seen.append((level, kw.get("train_data"), kw.get("calib_data")))
        return real(level, model, **kw)

    monkeypatch.setattr(_compression, "apply_compression", spy)
    tables = run_cell(spec, cell, data, levels=("prune_channels_30_ft", "int8_static"))
    assert (tables["runs"]["status"] == "ok").all()
    index = nested_fractions(data.y_train, spec.fractions, cell.seed)[cell.data_fraction]
    subset = standardized(data, index)
    x_train = subset.x_train[torch.as_tensor(index)]
    for level, train, calib in seen:
        if level == "none":
            continue
        assert torch.equal(train[0], x_train) and torch.equal(calib, x_train)
        assert torch.equal(train[1], subset.y_train[torch.as_tensor(index)])
    assert {level for level, _, _ in seen} == {"none", "prune_channels_30_ft", "int8_static"}


def test_a_level_that_raises_is_failed_and_the_parent_and_other_levels_are_kept(one_cell, monkeypatch):
    spec, cell, data = one_cell
    real = _compression.apply_compression

    def broken(level, model, **kw):
        if level == "int8_dynamic":
            raise RuntimeError("a bug inside the level")
        return real(level, model, **kw)

    monkeypatch.setattr(_compression, "apply_compression", broken)
    runs = run_cell(spec, cell, data, levels=("prune_l1_50", "int8_dynamic"))["runs"].set_index("compression")
    assert runs.loc["none", "status"] == "ok" and runs.loc["prune_l1_50", "status"] == "ok"
    assert runs.loc["int8_dynamic", "status"] == "failed"
    assert "a bug inside the level" in runs.loc["int8_dynamic", "error"]
    assert np.isnan(runs.loc["int8_dynamic", "accuracy"])


def test_a_study_without_levels_stores_only_its_cells(one_cell):
    spec, cell, data = one_cell
    tables = run_cell(spec, cell, data, levels=())
    runs = tables["runs"]
    assert len(runs) == 1 and runs["compression"].tolist() == ["none"]
    assert runs["parent_run_id"].tolist() == runs["run_id"].tolist()
    assert set(tables["predictions"]["run_id"]) == set(runs["run_id"])


@pytest.mark.parametrize(
    ("levels", "message"),
    [(["none", "int8"], "choose from none, prune_l1_50"), (["int8_static"], "must include none")],
)
def test_the_study_file_names_valid_levels(levels, message):
    with pytest.raises(SpecError, match=message):
        load_spec(STUDY, factors={"compression": levels})
