"""The ``augment`` factor of a study: parsing, cells and run ids, seeded application to training batches
only, and ``none`` leaving training exactly as it was without the factor."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import experiments.cell as cell_module
from downscalexr.augment import make_augmenter
from downscalexr.data.base import standardized
from downscalexr.data.registry import load_dataset
from downscalexr.data.splits import nested_fractions
from downscalexr.models import create_model
from downscalexr.train import TrainConfig, fit
from experiments.cell import cells_of, run_cell, run_id
from experiments.spec import FactorSpec, SpecError, StudySpec, from_dict

STUDY = {
    "name": "aug",
    "dataset": "detection",
    "data": {"n_train": 96, "n_val": 32, "n_test": 40, "image_size": 32, "segment_length": [4.0, 9.0]},
    "model": "lenet",
    "model_options": {"channels": [4, 8], "kernel_size": 3},
    "variants": ["avgpool"],
    "fractions": [1.0],
    "seeds": [0],
    "test_seed": 5,
    "train": {"epochs": 2, "batch_size": 16, "lr": 0.003},
    "latency": {"enabled": False},
}
CONFIG = TrainConfig(epochs=2, batch_size=16, lr=0.003)


def spec_with(**changes) -> StudySpec:
    return from_dict(StudySpec, STUDY | changes)


@pytest.fixture(scope="module")
def data():
    return load_dataset("detection", seed=0, test_seed=5, **STUDY["data"])


def _model(seed: int = 0):
    return create_model("lenet", downsample="avgpool", seed=seed, channels=(4, 8), kernel_size=3,
                        input_size=32, num_outputs=1)  # fmt: skip


def _weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def _equal(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# --- specification and cells ----------------------------------------------------------------------------


def test_augment_levels_parse_and_default_to_none():
    assert StudySpec(name="x").factors.augment == ("none",)
    spec = spec_with(factors={"augment": ["none", "flip_rotate"]})
    assert spec.factors == FactorSpec(augment=("none", "flip_rotate"))
    assert spec.factor_levels()["augment"] == ("none", "flip_rotate")


@pytest.mark.parametrize(
    ("levels", "words"),
    [
        (["flipp"], ["factors.augment", "'flipp'", "none", "flip_rotate_contrast"]),
        (["flip", "flip"], ["factors.augment", "repeats"]),
        ([], ["factors.augment", "at least one"]),
    ],
)
def test_bad_augment_levels_are_refused_with_the_valid_ones(levels, words):
    with pytest.raises(SpecError) as info:
        spec_with(factors={"augment": levels})
    for word in words:
        assert word in str(info.value)


def test_cells_cross_the_augment_levels_and_none_keeps_the_run_id():
    plain = spec_with()
    crossed = spec_with(factors={"augment": ["none", "flip_rotate"]}, variants=["avgpool", "maxpool"])
    cells = cells_of(crossed)
    assert sorted({c.augment for c in cells}) == ["flip_rotate", "none"]
    assert len(cells) == 2 * 2
    none_cell = next(c for c in cells if c.augment == "none" and c.variant == "avgpool")
    # a cell at "none" hashes as a cell of a study without the factor (stored studies stay valid)
    assert run_id(crossed, none_cell) == run_id(plain, cells_of(plain)[0])
    flip_cell = dataclasses.replace(none_cell, augment="flip_rotate")
    assert run_id(crossed, flip_cell) != run_id(crossed, none_cell)


# --- training ---------------------------------------------------------------------------------------------


def test_no_augmenter_and_the_identity_policy_train_bit_identically(data):
    data = standardized(data)
    plain = fit(_model(), data, CONFIG, seed=3)
    identity = fit(_model(), data, CONFIG, seed=3, augment=make_augmenter("none", 3))
    assert _equal(_weights(plain.model), _weights(identity.model))
    assert _timeless(plain.history) == _timeless(identity.history)


def _timeless(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_augmented_training_repeats_for_its_seed_and_differs_from_plain(data):
    data = standardized(data)
    runs = [fit(_model(), data, CONFIG, seed=3, augment=make_augmenter("flip_rotate", 3)) for _ in range(2)]
    assert _equal(_weights(runs[0].model), _weights(runs[1].model))
    plain = fit(_model(), data, CONFIG, seed=3)
    assert not _equal(_weights(plain.model), _weights(runs[0].model))
    other = fit(_model(), data, CONFIG, seed=3, augment=make_augmenter("flip_rotate", 4))
    assert not _equal(_weights(other.model), _weights(runs[0].model))


class _Spy:
    """An augmenter that records every batch it is given (and flips it, so it changes something)."""

    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.batches.append(images.detach().clone())
        return images.flip(-1)


def _rows_of(batch: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """Whether each image of ``batch`` is an image of ``pool`` (exactly)."""
    same = (batch[:, None] == pool[None]).flatten(2).all(-1)  # (B, N)
    return same.any(1)


def test_a_cell_augments_training_batches_only(data, monkeypatch):
    spec = spec_with(factors={"augment": ["flip"]})
    (cell,) = cells_of(spec)
    spy = _Spy()
    monkeypatch.setattr(cell_module, "make_augmenter", lambda policy, seed: spy)
    tables = run_cell(spec, cell, data)
    row = tables["runs"].iloc[0]
    assert row["status"] == "ok", row["error"]
    assert row["augment"] == "flip"
    index = nested_fractions(data.y_train, spec.fractions, cell.seed)[1.0]
    seen = standardized(data, index)
    # every optimiser step saw one augmented batch, of training images, and nothing else passed through it
    assert len(spy.batches) == row["steps_run"]
    for batch in spy.batches:
        assert _rows_of(batch, seen.x_train).all()
        assert not _rows_of(batch, seen.x_val).any()
        assert not _rows_of(batch, seen.x_test).any()
    assert sum(len(b) for b in spy.batches) == row["epochs_run"] * len(index)


def test_an_augmented_cell_draws_from_its_own_seed_and_repeats_exactly(data, monkeypatch):
    spec = spec_with(factors={"augment": ["flip_rotate"]}, seeds=[0, 1])
    asked: list[tuple[str, int]] = []

    def recording(policy, seed):
        asked.append((policy, seed))
        return make_augmenter(policy, seed)

    monkeypatch.setattr(cell_module, "make_augmenter", recording)
    for cell in cells_of(spec):
        first, again = run_cell(spec, cell, data), run_cell(spec, cell, data)
        for table in ("epochs", "predictions"):
            keep = [c for c in first[table].columns if c != "seconds"]
            assert first[table][keep].equals(again[table][keep]), (cell.seed, table)
    assert asked == [("flip_rotate", 0)] * 2 + [("flip_rotate", 1)] * 2


def test_a_none_cell_trains_exactly_as_fit_without_augmentation(data):
    spec = spec_with()
    (cell,) = cells_of(spec)
    assert cell.augment == "none"
    tables = run_cell(spec, cell, data)
    index = nested_fractions(data.y_train, spec.fractions, cell.seed)[1.0]
    reference = fit(_model(cell.seed), standardized(data, index), spec.train, cell.seed, train_index=index)
    epochs = tables["epochs"]
    assert epochs["train_loss"].tolist() == [h["train_loss"] for h in reference.history]
    assert epochs["val_loss"].tolist() == [h["val_loss"] for h in reference.history]


def test_the_standard_report_analyses_the_unaugmented_runs_only():
    import pandas as pd

    from analysis.design import base_runs, has_inductive_design

    runs = pd.DataFrame(
        {"model": "lenet", "variant": ["avgpool", "avgpool", "maxpool"], "permute": False,
         "location_shift": float("nan"), "init": "random", "augment": ["none", "flip", "none"],
         "status": "ok"}
    )  # fmt: skip
    assert base_runs(runs)["augment"].tolist() == ["none", "none"]
    assert not has_inductive_design(runs)  # augmentation is not an inductive-bias control
    older = runs.drop(columns="augment")  # a study stored before the factor: every run unaugmented
    assert len(base_runs(older)) == 3
