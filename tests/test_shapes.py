"""The RGB shapes task: shapes, balance, fixed test set, geometry against hand-computed areas, masks."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import yaml

from downscalexr.data.registry import dataset_options, load_dataset
from downscalexr.data.synthetic import SHAPE_CLASSES, ShapeImages, ShapesTask, make_shapes_splits

SMALL = {"n_train": 53, "n_val": 20, "n_test": 30}
# large, unrotated shapes on a flat background, so the mask's share of its bounding box is the shape's
FLAT = {"texture_amplitude": 0.0, "noise": 0.0}
BIG = {"image_size": 64, "shape_size": (22.0, 24.0), "rotation": 0.0, **FLAT}


def test_rgb_images_balanced_classes_and_info():
    s = make_shapes_splits(**SMALL)
    assert s.class_names == SHAPE_CLASSES and s.num_classes == 10
    assert s.input_shape == (3, 32, 32) and s.x_train.dtype == torch.float32
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    assert s.y_train.bincount().tolist() == [6, 6, 6] + [5] * 7  # exact balance, remainder to the first
    assert not torch.equal(s.y_train, torch.sort(s.y_train).values)  # shuffled
    assert s.info["generator"] == "shapes" and s.info["classes"] == list(SHAPE_CLASSES)
    assert s.masks_test.shape == (30, 32, 32) and s.masks_test.flatten(1).any(1).all()


def test_same_seed_same_bytes_and_a_fixed_test_set():
    a, b = make_shapes_splits(**SMALL, seed=1), make_shapes_splits(**SMALL, seed=1)
    c = make_shapes_splits(**SMALL, seed=2)
    for name in ("x_train", "y_train", "x_val", "x_test", "masks_test"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.x_train, c.x_train) and not torch.equal(a.x_val, c.x_val)
    assert torch.equal(a.x_test, c.x_test) and torch.equal(a.masks_test, c.masks_test)
    assert not torch.equal(a.x_test, make_shapes_splits(**SMALL, seed=1, test_seed=3).x_test)


def test_outside_the_mask_is_the_flat_background_inside_it_the_shape():
    s = make_shapes_splits(**SMALL, **FLAT)
    x, masks = s.x_test, s.masks_test[:, None].expand_as(s.x_test)
    corner = x[:, :, :1, :1].expand_as(x)  # shapes keep a margin, so a corner is background
    assert torch.equal(x[~masks], corner[~masks])
    assert (x != corner).any(dim=1)[s.masks_test].all()


# share of the bounding box, by hand: disc pi/4; ring pi/4 (1 - 0.55^2); square 1; frame 1 - (0.4/0.8)^2;
# triangle and diamond 1/2; cross (2 * 0.56 * 1.9 - 0.56^2) / 1.9^2
FILL = {
    "disc": math.pi / 4,
    "ring": math.pi / 4 * (1 - 0.55**2),
    "square": 1.0,
    "frame": 0.75,
    "triangle": 0.5,
    "diamond": 0.5,
    "cross": (2 * 0.56 * 1.9 - 0.56**2) / 1.9**2,
}


@pytest.mark.parametrize("name", list(FILL))
def test_shape_geometry_matches_the_hand_computed_fill(name):
    s = make_shapes_splits(n_train=2, n_val=2, n_test=4, classes=(name, "saltire"), **BIG)
    for mask in s.masks_test[s.y_test == 0]:
        rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
        box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert abs(box.float().mean().item() - FILL[name]) < 0.07  # the anti-aliased rim adds a little
        centre = box[box.shape[0] // 2, box.shape[1] // 2].item()
        assert centre == (name not in ("ring", "frame"))  # hollow shapes have no centre


@pytest.mark.parametrize("name", ["hstripes", "vstripes"])
def test_gratings_hold_three_stripes_across_their_orientation(name):
    s = make_shapes_splits(n_train=2, n_val=2, n_test=4, classes=(name, "disc"), **BIG)
    for mask in s.masks_test[s.y_test == 0]:
        across = mask.any(1 if name == "hstripes" else 0).int()  # rows (h) or columns (v) with a stripe
        starts = int((across[1:] - across[:-1] == 1).sum())
        assert starts == 3  # cos(3 pi t) > 0 on a unit disc: a central stripe and one at +-2/3 radius
        along = mask.any(0 if name == "hstripes" else 1)  # the other direction: one unbroken extent
        hits = along.nonzero()[:, 0]
        assert along[hits.min() : hits.max() + 1].all()


def test_the_rotation_keeps_every_shape_inside_the_image():
    s = make_shapes_splits(n_train=2, n_val=2, n_test=200, shape_size=(12.9, 13.04), rotation=44.0, **FLAT)
    border = torch.cat(
        [s.masks_test[:, 0], s.masks_test[:, -1], s.masks_test[:, :, 0], s.masks_test[:, :, -1]]
    )
    assert not border.any()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": ("disc",)}, "at least two classes"),
        ({"classes": ("disc", "star")}, "unknown: star"),
        ({"rotation": 45.0}, "rotation"),
        ({"shape_size": (4.0, 13.1)}, r"shape_size \(radius, at most 13.04 px\)"),
        ({"shape_size": (1.0, 4.0)}, "shape_size"),
        ({"contrast": (0.5, 0.2)}, "contrast"),
        ({"image_size": 12}, "image_size"),
        ({"n_test": 0}, "n_test"),
        ({"colour": "red"}, "unknown parameter"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_shapes_splits(**SMALL | kwargs)


def test_registered_with_its_options_and_a_subset_of_classes():
    assert dataset_options("shapes") == ShapesTask.option_names()
    data = load_dataset("shapes", seed=0, **SMALL, classes=["disc", "ring", "cross", "saltire"])
    assert data.class_names == ("disc", "ring", "cross", "saltire") and data.y_test.max() == 3
    assert ShapesTask(images=ShapeImages(classes=["ring", "disc"])).images.classes == ("ring", "disc")


def test_a_grid_runs_a_study_on_it_without_data(tmp_path, run_grid):
    study = {
        "name": "shapes-tiny",
        "dataset": "shapes",
        "data": {"n_train": 60, "n_val": 20, "n_test": 30, "classes": ["disc", "ring", "square"]},
        "model": "lenet",
        "model_options": {"channels": [4, 8], "kernel_size": 3},
        "variants": ["maxpool"],
        "reference": "maxpool",
        "fractions": [0.5, 1.0],
        "seeds": [0],
        "train": {"epochs": 1, "batch_size": 16},
        "latency": {"enabled": False},
    }
    path = tmp_path / "shapes-tiny.yaml"
    path.write_text(yaml.safe_dump(study))
    code, _, err = run_grid("--study", path, "--out", tmp_path / "out", "--n-jobs", "1", "--quiet")
    assert code == 0, err
    runs = pd.read_parquet(tmp_path / "out" / "runs")
    assert len(runs) == 2 and set(runs["status"]) == {"ok"} and set(runs["dataset"]) == {"shapes"}
    assert len(pd.read_parquet(tmp_path / "out" / "predictions")) == 2 * 30 * 3  # runs x examples x classes
