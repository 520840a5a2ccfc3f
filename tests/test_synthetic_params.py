"""The synthetic generators' parameter classes: checked, normalised, frozen; flat options by name."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from downscalexr.data.registry import dataset_options, load_dataset
from downscalexr.data.synthetic import (
    EDGE_CLASSES_3,
    DetectionImages,
    DetectionTask,
    EdgeImages,
    EdgesTask,
    make_detection_splits,
    make_edges,
    make_edges_splits,
)

TINY = {"n_train": 30, "n_val": 10, "n_test": 12}


def test_parameters_are_normalised_and_frozen():
    p = EdgeImages(classes=["horizontal", "none"], edge_width=2, edge_intensity=[0.7, 0.9], region=[0.0, 0.5])
    assert p.classes == ("horizontal", "none") and p.edge_width == (2, 2)
    assert p.edge_intensity == (0.7, 0.9) and p.region == (0.0, 0.5)
    assert isinstance(p.diagonal_angles[0], float) and isinstance(p.noise, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.noise = 0.5
    d = DetectionImages(edge_types="vertical", segment_length=8)
    assert d.edge_types == ("vertical",) and d.segment_length == (8.0, 8.0)
    assert DetectionTask(val_prevalence=None).val_prevalence == 0.74  # defaults to the training prevalence


def test_task_defaults_differ_from_the_image_defaults_where_documented():
    assert EdgeImages().classes == ("horizontal", "vertical", "diagonal", "both", "none")
    assert EdgesTask().images.classes == EDGE_CLASSES_3 == EdgesTask.from_options().images.classes
    assert (EdgesTask().n_train, DetectionTask().n_train) == (3000, 2000)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: EdgeImages(image_size=7), r"image_size must be an integer >= 8, got 7"),
        (lambda: EdgeImages(edge_width=(1, 17)), r"edge_width"),
        (lambda: EdgeImages(region=(0.0, 0.05)), "too narrow"),
        (lambda: DetectionImages(segment_length=(5.0, 40.0)), r"at most image_size / 2 = 32.0"),
        (lambda: DetectionImages(edge_types=("any", "wavy")), "unknown: wavy"),
        (lambda: DetectionImages(diagonal_angles=()), "diagonal_angles must not be empty"),
        (lambda: DetectionTask(test_prevalence=1.5), r"test_prevalence must be a number in \(0.0, 1.0\)"),
        (lambda: DetectionTask(permute="yes"), "permute must be true or false"),
        (lambda: DetectionTask(permutation_seed=-1), "permutation_seed must be an integer >= 0"),
        (lambda: DetectionTask(n_val=2.5), "n_val must be an integer >= 1"),
        (lambda: EdgesTask(location_shift=0.0), r"location_shift must be a number in \(0.0, 1.0\)"),
        (lambda: EdgesTask(images=EdgeImages(classes=("none",))), "at least two classes"),
        (lambda: EdgesTask(images=EdgeImages(region=(0.0, 0.5))), "region is set per split"),
        (lambda: EdgesTask(location_shift=0.05), "too narrow"),  # the training band of 32 px: 1.6 px
        (lambda: EdgesTask(images=DetectionImages()), "images must be a EdgeImages"),
    ],
)
def test_bad_parameters_say_what_is_wrong(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_unknown_options_are_rejected_with_the_valid_names():
    with pytest.raises(ValueError, match="unknown parameter") as err:
        make_detection_splits(**TINY, edge_contrat=(0.1, 0.2))
    text = str(err.value)
    assert "edge_contrat" in text and all(n in text for n in DetectionTask.option_names())
    with pytest.raises(ValueError, match=r"EdgeImages: unknown parameter\(s\) colour; valid: classes"):
        make_edges(4, colour="red")
    with pytest.raises(ValueError, match="location_shift"):
        make_edges_splits(**TINY, location_shit=0.5)  # a misspelt key


def test_option_names_are_the_registry_options_and_route_to_the_right_class():
    for name, task in (("edges", EdgesTask), ("detection", DetectionTask)):
        assert dataset_options(name) == task.option_names()
        assert "region" not in task.option_names() and "images" not in task.option_names()
    task = DetectionTask.from_options(n_train=40, edge_contrast=(0.2, 0.3), label_noise=0.1)
    assert task.n_train == 40 and task.label_noise == 0.1 and task.images.edge_contrast == (0.2, 0.3)


def test_a_task_object_and_the_same_keywords_give_the_same_splits():
    task = EdgesTask(
        n_train=30, n_val=10, n_test=12, location_shift=0.5, images=EdgeImages(classes=EDGE_CLASSES_3)
    )
    by_object = make_edges_splits(task, seed=2, test_seed=3)
    by_keywords = make_edges_splits(**TINY, location_shift=0.5, seed=2, test_seed=3)
    for name in ("x_train", "y_train", "x_val", "x_test", "y_test", "masks_test"):
        assert torch.equal(getattr(by_object, name), getattr(by_keywords, name))
    assert by_object.info == by_keywords.info
    with pytest.raises(ValueError, match="not both"):
        make_edges_splits(task, n_train=5)
    with pytest.raises(ValueError, match="expected a DetectionTask"):
        make_detection_splits(task)


def test_registry_loads_synthetic_data_with_the_flat_study_keys():
    options = {**TINY, "image_size": 32, "segment_length": [4, 9]}
    data = load_dataset("detection", seed=1, test_seed=2, **options)
    direct = make_detection_splits(DetectionTask.from_options(**options), seed=1, test_seed=2)
    assert data.input_shape == (1, 32, 32) and data.info["segment_length"] == [4.0, 9.0]
    assert torch.equal(data.x_train, direct.x_train) and torch.equal(data.x_test, direct.x_test)
    with pytest.raises(ValueError, match="unknown option"):
        load_dataset("edges", seed=0, nosie=0.1)
