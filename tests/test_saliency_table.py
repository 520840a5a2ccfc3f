"""The ``saliency`` study key and the ``saliency`` / ``saliency_maps`` tables: settings, the coarse maps,
and the tiny dilution study (LeNet and ResNet-8, Grad-CAM on) run end to end through the grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from analysis.load import load_study
from downscalexr import schema
from downscalexr.data.registry import load_dataset
from downscalexr.saliency import saliency_subset
from experiments._saliency import SaliencySpec, check_saliency, map_rows, saliency_tables
from experiments._worker import data_for
from experiments.cell import cells_of, run_cell
from experiments.spec import STUDIES_DIR, SpecError, StudySpec, from_dict, load_spec

SMOKE = yaml.safe_load((STUDIES_DIR / "smoke-dilution.yaml").read_text()) | {"name": "smoke-dilution"}


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory, kept_process_state):
    """The smoke-dilution study, run once in-process through the grid CLI."""
    from experiments.grid import main

    out = tmp_path_factory.mktemp("dilution") / "study"
    with kept_process_state():
        code = main(["--study", "smoke-dilution", "--out", str(out), "--n-jobs", "1", "--quiet"])
    assert code == 0
    return out


# --- settings ---------------------------------------------------------------------------------------------


def test_saliency_is_off_by_default_and_parses_from_yaml():
    assert StudySpec(name="x").saliency == SaliencySpec(enabled=False, n_images=32, grid=8, steps=20)
    spec = load_spec("smoke-dilution")
    assert spec.saliency == SaliencySpec(enabled=True, n_images=6, grid=4)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"n_images": 0}, ["saliency.n_images", ">= 1"]),
        ({"grid": -2}, ["saliency.grid"]),
        ({"target": "logit"}, ["saliency.target", "'logit'", "label", "predicted"]),
        ({"layers": 3}, ["layers", "enabled", "n_images"]),
    ],
)
def test_bad_saliency_settings_are_refused(options, words):
    with pytest.raises(SpecError) as info:
        from_dict(StudySpec, SMOKE | {"saliency": {"enabled": True} | options})
    for word in words:
        assert word in str(info.value)


def test_settings_the_data_cannot_meet_are_named():
    data = load_dataset("shapes", seed=0, test_seed=3, **SMOKE["data"])
    with pytest.raises(ValueError, match=r"n_images is 31 but the test set has 30 images"):
        check_saliency(SaliencySpec(enabled=True, n_images=31), data)
    with pytest.raises(ValueError, match=r"grid is 33 but the images are 32 pixels"):
        check_saliency(SaliencySpec(enabled=True, n_images=8, grid=33), data)
    check_saliency(SaliencySpec(enabled=False, n_images=10_000), data)  # off: nothing to check


def test_the_grid_refuses_too_many_images_before_training(tmp_path, run_grid):
    path = tmp_path / "too-many.yaml"
    path.write_text(yaml.safe_dump(SMOKE | {"saliency": {"enabled": True, "n_images": 500}}))
    code, _, err = run_grid("--study", path, "--out", tmp_path / "out", "--n-jobs", "1")
    assert code == 2
    assert "saliency.n_images is 500 but the test set has 30 images" in err
    assert not (tmp_path / "out" / "runs").exists() or not any((tmp_path / "out" / "runs").iterdir())


# --- coarse maps ------------------------------------------------------------------------------------------


def test_maps_and_masks_are_averaged_over_equal_blocks_of_the_grid():
    cam = torch.zeros(1, 4, 4)
    cam[0, 0, 0], cam[0, 0, 1], cam[0, 3, 3] = 1.0, 0.5, 0.25
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 2:, 2:] = True
    mask[0, 0, 0] = True
    rows = map_rows(cam, mask, np.array([7]), grid=2, rid="r")
    assert list(rows.columns) == list(schema.SALIENCY_MAPS)
    assert rows[["row", "col"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    # top-left block holds 1.0 and 0.5 of four pixels; bottom-right 0.25; the mask's share per block
    assert rows["cam"].tolist() == [1.5 / 4, 0.0, 0.0, 0.25 / 4]
    assert rows["mask"].tolist() == [0.25, 0.0, 0.0, 1.0]
    assert set(rows["example_id"]) == {7}
    assert map_rows(cam, None, np.array([7]), grid=2, rid="r")["mask"].isna().all()


def test_a_model_without_a_convolution_or_a_disabled_study_gives_no_rows():
    data = load_dataset("shapes", seed=0, test_seed=3, **SMOKE["data"])
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 3))
    on, off = SaliencySpec(enabled=True, n_images=4), SaliencySpec()
    for spec, model in ((on, mlp), (off, mlp)):
        tables = saliency_tables(spec, 3, model, data, "r")
        assert tables["saliency"].empty and tables["saliency_maps"].empty


# --- the tiny dilution study, end to end --------------------------------------------------------------------


def test_every_cell_of_the_smoke_dilution_study_is_stored_with_its_saliency(smoke_study):
    tables = load_study(smoke_study)
    runs, sal, maps = tables["runs"], tables["saliency"], tables["saliency_maps"]
    assert len(runs) == 2 * 2 * 2 and set(runs["status"]) == {"ok"}
    assert set(runs["model"]) == {"lenet", "resnet8"}
    n, grid = SMOKE["saliency"]["n_images"], SMOKE["saliency"]["grid"]
    assert len(sal) == len(runs) * n and len(maps) == len(runs) * n * grid * grid
    # the same test images in every seed, variant and model, chosen by the study's test_seed alone
    chosen = saliency_subset(SMOKE["data"]["n_test"], n, SMOKE["test_seed"]).tolist()
    for _, rows in sal.groupby("run_id"):
        assert sorted(rows["example_id"]) == chosen
    layers = sal.merge(runs[["run_id", "model"]]).groupby("model")["layer"].unique()
    assert layers["lenet"].tolist() == ["down2"] and layers["resnet8"].tolist() == ["stage3"]
    assert sal["deletion_area"].between(0, 1).all()
    assert sal["localisation"].dropna().between(0, 1).all()
    assert maps["cam"].between(0, 1).all() and maps["mask"].between(0, 1).all()


def test_saliency_rows_agree_with_the_data_and_the_predictions_table(smoke_study):
    tables = load_study(smoke_study)
    sal, preds = tables["saliency"], tables["predictions"]
    data = load_dataset("shapes", seed=0, test_seed=SMOKE["test_seed"], **SMOKE["data"])
    ids = sal["example_id"].to_numpy()
    assert (sal["label"].to_numpy() == data.y_test.numpy()[ids]).all()
    assert (sal["target"] == sal["label"]).all()  # target: label (the default)
    # the share of the image in each shape's mask, computed here from the generator's masks
    share = data.masks_test.double().mean(dim=(1, 2)).numpy()[ids]
    np.testing.assert_allclose(sal["mask_fraction"].to_numpy(), share)
    # the probability of the explained class on the intact image (Grad-CAM's model copy, stage 0 of the
    # deletion curve) is the one the predictions table holds (the evaluation path), and so is the argmax
    scores = preds.pivot_table(index=["run_id", "example_id"], columns="class_index", values="score")
    wide = scores.loc[list(zip(sal["run_id"], sal["example_id"], strict=True))].to_numpy()
    np.testing.assert_allclose(sal["target_probability"], wide[np.arange(len(sal)), sal["target"]], atol=1e-5)
    assert (sal["predicted"].to_numpy() == wide.argmax(axis=1)).all()
    # each stored map's mask column is the generator's mask averaged onto the grid
    maps = tables["saliency_maps"]
    first = maps[maps["run_id"] == maps["run_id"].iloc[0]]
    example = int(first["example_id"].iloc[0])
    grid = SMOKE["saliency"]["grid"]
    block = data.masks_test[example].double().reshape(grid, 32 // grid, grid, 32 // grid).mean(dim=(1, 3))
    got = first[first["example_id"] == example].sort_values(["row", "col"])["mask"].to_numpy()
    np.testing.assert_allclose(got, block.reshape(-1).numpy())


def test_grad_cam_of_a_cell_repeats_exactly_for_its_seed(smoke_study, kept_process_state):
    spec = load_spec("smoke-dilution")
    cell = next(c for c in cells_of(spec) if c.model == "resnet8" and c.variant == "strided")
    with kept_process_state():
        torch.set_num_threads(1)  # as in a grid worker: the thread count changes float summation order
        again = run_cell(spec, cell, data_for(spec, cell))
    stored = load_study(smoke_study)
    rid = again["runs"]["run_id"].iloc[0]
    for table in ("saliency", "saliency_maps"):
        mine = stored[table][stored[table]["run_id"] == rid].reset_index(drop=True)
        pd.testing.assert_frame_equal(again[table].reset_index(drop=True), mine)


def test_synthetic_predictions_have_no_source(smoke_study):
    assert load_study(smoke_study)["predictions"]["source"].isna().all()


def test_the_report_reads_the_runner_tables_into_its_issue_18_sections(smoke_study, tmp_path):
    """The real runner output (not a simulation) feeds the dilution, saliency, error and curve sections,
    and the standard sections analyse one model rather than pooling the LeNet with the ResNet."""
    from analysis import report

    out = tmp_path / "report"
    assert (
        report.main(["--results", str(smoke_study), "--out", str(out), "--bootstrap", "200", "--quiet"]) == 0
    )
    text = (out / "report.md").read_text()
    for title in ("Training curves", "Multi-class error analysis", "Dilution", "Grad-CAM saliency"):
        assert f"## {title}" in text, title
    tables = load_study(smoke_study)
    runs = tables["runs"]
    dilution = pd.read_csv(out / "tables" / "dilution_tests.csv")
    assert dilution[["model", "base_model", "variant"]].drop_duplicates().values.tolist() == [
        ["resnet8", "lenet", "strided"]
    ]
    arms = {f"{m}:{v}" for m, v in runs[["model", "variant"]].drop_duplicates().values}
    assert set(pd.read_csv(out / "tables" / "saliency.csv")["arm"]) == arms
    assert set(pd.read_csv(out / "tables" / "training_curves.csv")["arm"]) == arms
    # the standard metrics table: one model's runs, mean over its seeds, recomputed from the runs table
    metrics = pd.read_csv(out / "tables" / "metrics.csv").query("metric == 'accuracy'")
    lenet = runs[runs["model"] == "lenet"].groupby("variant")["accuracy"].mean()
    np.testing.assert_allclose(metrics.set_index("variant")["mean"].sort_index(), lenet.sort_index())
    # the saliency section's per-arm deletion area: per-run mean over images, then mean over seeds
    sal = tables["saliency"].merge(runs[["run_id", "model", "variant", "seed"]])
    per_run = sal.groupby(["model", "variant", "seed"])["deletion_area"].mean()
    expected = per_run.groupby(["model", "variant"]).mean()
    got = pd.read_csv(out / "tables" / "saliency.csv").query("outcome == 'deletion_area'").set_index("arm")
    for (model, variant), value in expected.items():
        assert got.loc[f"{model}:{variant}", "mean"] == pytest.approx(value)
