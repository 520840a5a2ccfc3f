"""Shift consistency: known answers for shifts; invariant vs position-reading models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from downscalexr.consistency import shift_consistency, shift_images, shift_pairs


def test_pairs_are_seeded_and_bounded():
    a, b = shift_pairs(50, 64, 0.125, seed=3), shift_pairs(50, 64, 0.125, seed=3)
    assert np.array_equal(a, b) and a.shape == (50, 2, 2)
    assert np.abs(a).max() <= 8
    assert not np.array_equal(a, shift_pairs(50, 64, 0.125, seed=4))


def test_circular_and_pad_shift_known_answers():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    rolled = shift_images(x, np.array([[1, 0]]), "circular")
    assert torch.equal(rolled[0, 0, 0], x[0, 0, 3]) and torch.equal(rolled[0, 0, 1], x[0, 0, 0])
    padded = shift_images(x, np.array([[0, 1]]), "pad")
    assert torch.equal(padded[0, 0, :, 0], torch.zeros(4))  # zeros enter on the left
    assert torch.equal(padded[0, 0, :, 1:], x[0, 0, :, :3])
    back = shift_images(rolled, np.array([[-1, 0]]), "circular")
    assert torch.equal(back, x)


class _GlobalMean(nn.Module):
    """Shift-invariant under circular shifts: the class is whether the mean is positive."""

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None]


class _TopLeftPixel(nn.Module):
    """Reads one position: maximally sensitive to shifts."""

    def forward(self, x):
        return x[:, 0, 0, :1]


def test_invariant_model_is_fully_consistent_and_position_reader_is_not():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 1, 16, 16, generator=gen)
    pairs = shift_pairs(200, 16, 0.25, seed=0)
    assert shift_consistency(_GlobalMean(), x, pairs, "circular") == 1.0
    assert shift_consistency(_TopLeftPixel(), x, pairs, "circular") < 0.75


def test_bad_mode_and_length_are_rejected():
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="choose from circular, pad"):
        shift_images(x, np.zeros((2, 2), dtype=int), "reflect")
    with pytest.raises(ValueError, match="2 images"):
        shift_images(x, np.zeros((3, 2), dtype=int))


def test_grid_stores_consistency_columns_when_enabled(tmp_path):
    import pandas as pd
    import yaml

    from experiments.grid import main

    study = {
        "name": "cons",
        "dataset": "detection",
        "data": {"n_train": 80, "n_val": 30, "n_test": 40, "image_size": 32, "segment_length": [4, 10]},
        "model_options": {"channels": [4, 8], "kernel_size": 3},
        "variants": ["avgpool", "strided"],
        "fractions": [1.0],
        "seeds": [0],
        "train": {"epochs": 1, "batch_size": 16},
        "latency": {"enabled": False},
        "consistency": {"enabled": True, "n_images": 20},
    }
    path = tmp_path / "cons.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["--study", str(path), "--out", str(tmp_path / "out"), "--n-jobs", "1", "--quiet"]) == 0
    runs = pd.read_parquet(tmp_path / "out" / "runs")
    for mode in ("circular", "pad"):
        values = runs[f"shift_consistency_{mode}"]
        assert values.between(0, 1).all() and len(values) == 2
