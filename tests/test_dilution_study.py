"""The built-in dilution study and its CIFAR-10 twin, ResNets in studies, test-example sources for real
data, and the dry-run time estimate for RGB and multi-class data."""

from __future__ import annotations

import dataclasses

import pytest
from test_cifar import N_TEST, write_cifar

from downscalexr.data.registry import load_dataset
from downscalexr.models import create_model, forward_flops
from experiments._estimate import _flop_seconds, data_shape
from experiments.cell import cells_of, example_sources, run_cell
from experiments.spec import load_spec

# keys that must agree for "the same study" to run on the synthetic task and on CIFAR-10 (the training
# budget is longer on CIFAR-10, whose training pool is 22 times larger)
DESIGN_KEYS = ("models", "variants", "fractions", "seeds", "evaluation", "saliency", "reference", "factors")
TINY_TRAIN = {"batch_size": 16, "lr": 0.002, "steps": 4, "eval_every": 2}


def test_the_dilution_study_crosses_lenet_and_resnet_with_three_operators():
    spec = load_spec("dilution")
    assert spec.dataset == "shapes"
    assert [m.name for m in spec.model_specs] == ["lenet", "resnet8"]
    assert {"avgpool", "maxpool", "strided"} <= set(spec.variants)
    assert spec.saliency.enabled
    cells = cells_of(spec)
    assert len(cells) == 2 * len(spec.variants) * len(spec.fractions) * len(spec.seeds)
    shape, classes, _ = data_shape(spec)
    assert shape == (3, 32, 32) and classes == 10


def test_the_cifar10_twin_is_the_same_design_on_other_data():
    synthetic, cifar = load_spec("dilution"), load_spec("cifar10-dilution")
    assert cifar.dataset == "cifar10"
    for key in DESIGN_KEYS:
        assert getattr(cifar, key) == getattr(synthetic, key), key
    same = ("batch_size", "lr", "optimizer", "patience", "monitor")
    assert all(getattr(cifar.train, k) == getattr(synthetic.train, k) for k in same)
    assert cifar.train.steps > synthetic.train.steps


def _tiny_cifar_spec(path, **changes):
    return load_spec(
        "cifar10-dilution",
        data={"path": str(path), "val_size": 20},
        train=TINY_TRAIN,
        seeds=[0],
        fractions=[1.0],
        saliency={"enabled": True, "n_images": 8},
        **changes,
    )


def test_the_cifar10_dilution_study_trains_every_model_and_traces_errors_to_batches(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    write_cifar(root)
    spec = _tiny_cifar_spec(root, variants=["strided"])
    data = load_dataset("cifar10", seed=0, test_seed=spec.test_seed, path=str(root), val_size=20)
    for cell in cells_of(spec):
        tables = run_cell(spec, cell, data)
        row = tables["runs"].iloc[0]
        assert row["status"] == "ok", row["error"]
        preds = tables["predictions"]
        assert len(preds) == N_TEST * 10
        expected = [f"test_batch[{i}]" for i in preds["example_id"]]
        assert preds["source"].tolist() == expected
        sal = tables["saliency"]
        assert len(sal) == spec.saliency.n_images
        assert sal["localisation"].isna().all() and sal["mask_fraction"].isna().all()  # no masks
        assert tables["saliency_maps"]["mask"].isna().all()


def test_sources_are_missing_without_ids_and_follow_the_example_ids_with_them():
    data = load_dataset("shapes", seed=0, test_seed=0, n_train=10, n_val=10, n_test=5)
    assert example_sources(data, [0, 4]).isna().all()
    ids = [f"test_images[{i}]" for i in range(5)]
    traced = dataclasses.replace(data, info=data.info | {"ids": {"test": ids}})
    assert example_sources(traced, [4, 4, 1]).tolist() == [
        "test_images[4]",
        "test_images[4]",
        "test_images[1]",
    ]


# --- the time estimate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("study", "data", "expected"),
    [
        ("dilution", {}, ((3, 32, 32), 10, 2000)),
        ("smoke-dilution", {}, ((3, 32, 32), 3, 60)),
        ("smoke", {}, ((1, 32, 32), 2, 120)),
        ("edges5", {}, ((1, 32, 32), 5, 2000)),
        ("cifar10-dilution", {"path": "/nowhere"}, ((3, 32, 32), 10, 45_000)),
        ("cifar10-dilution", {"path": "/nowhere", "val_size": 5000}, ((3, 32, 32), 10, 45_000)),
        ("pneumoniamnist", {"size": 28}, ((1, 28, 28), 2, 2000)),
    ],
)
def test_the_estimate_sees_the_data_shape_and_classes(study, data, expected):
    spec = load_spec(study, data=(load_spec(study).data | data) or None)
    assert data_shape(spec) == expected


def test_the_flop_estimate_costs_rgb_multiclass_models_with_their_own_shape():
    spec = load_spec("dilution")
    cell = next(c for c in cells_of(spec) if c.model == "resnet8" and c.variant == "maxpool")
    options = spec.model_spec("resnet8").options
    model = create_model(
        "resnet8", downsample="maxpool", in_channels=3, input_size=32, num_outputs=10, **options
    )
    images = spec.train.steps * spec.train.batch_size
    expected = 3 * forward_flops(model, (3, 32, 32)) * images / 50e9 + 0.3
    assert _flop_seconds(spec, [cell]) == pytest.approx(expected)
    grey_data = {"n_train": 2000, "image_size": 32, "segment_length": [4.0, 9.0]}  # 1 channel, binary
    grey = dataclasses.replace(spec, data=grey_data, dataset="detection")
    assert _flop_seconds(grey, [dataclasses.replace(cell, dataset="detection")]) < expected


def test_a_dry_run_of_the_cifar10_study_estimates_without_reading_the_data(tmp_path, run_grid):
    code, out, err = run_grid("--study", "cifar10-dilution", "--data", tmp_path / "absent", "--dry-run")
    assert code == 0, err
    assert "90 cells, 0 done, 90 to run; estimated" in out
