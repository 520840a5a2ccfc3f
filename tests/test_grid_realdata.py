"""The grid on real-data formats: a Kaggle-layout chest X-ray folder and a MedMNIST .npz file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import yaml
from test_folder import make_cxr

from experiments.grid import main

COUNTS = {
    "train": {"NORMAL": 10, "PNEUMONIA": 18},
    "val": {"NORMAL": 1, "PNEUMONIA": 1},
    "test": {"NORMAL": 5, "PNEUMONIA": 7},
}
TINY = {
    "model": "lenet",
    "model_options": {"channels": [4, 8], "kernel_size": 3},
    "variants": ["avgpool", "strided"],
    "fractions": [0.5, 1.0],
    "seeds": [0, 1],
    "train": {"epochs": 1, "batch_size": 8},
    "latency": {"enabled": False},
}


def _study(tmp_path, name: str, dataset: str, data: dict):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "dataset": dataset, "data": data, **TINY}))
    return path


def test_folder_study_runs_with_data_flag_and_fixed_test_set(tmp_path):
    root = make_cxr(tmp_path / "chest_xray", counts=COUNTS)
    data = {"size": 32, "min_val": 4, "cache_dir": str(tmp_path / "cache"), "workers": 1, "quiet": True}
    study = _study(tmp_path, "cxr-tiny", "folder", data)
    out = tmp_path / "out"
    assert (
        main(["--study", str(study), "--data", str(root), "--out", str(out), "--n-jobs", "1", "--quiet"]) == 0
    )
    runs = pd.read_parquet(out / "runs")
    preds = pd.read_parquet(out / "predictions")
    assert len(runs) == 8 and set(runs["status"]) == {"ok"}
    assert set(runs["dataset"]) == {"folder"}
    # the untouched official test split: 12 images, the same labels in every run
    per_run = preds.groupby("run_id")["label"].apply(tuple)
    assert per_run.nunique() == 1 and len(per_run.iloc[0]) == 12
    assert sum(per_run.iloc[0]) == 7
    # the 2-image official val split was too small: the provenance says a validation set was carved
    provenance = json.loads((out / "data.json").read_text())
    assert provenance["class_counts"]["test"] == {"normal": 5, "pneumonia": 7}
    assert "carved" in json.dumps(provenance["info"]["val_source"]).lower()


def test_folder_study_without_data_path_exits_2_and_says_where_to_get_it(tmp_path, capsys):
    study = _study(tmp_path, "cxr-nodata", "folder", {"size": 32})
    assert main(["--study", str(study), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "real-data" in err


def test_npz_study_runs(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 40), ("val", 12), ("test", 16)):
        labels = (np.arange(n) % 3 != 0).astype(np.uint8)[:, None]  # N x 1, as MedMNIST stores them
        images = rng.integers(0, 120, size=(n, 28, 28), dtype=np.uint8)
        images[labels[:, 0] == 1, 10:18, 10:18] = 230
        arrays |= {f"{split}_images": images, f"{split}_labels": labels}
    path = tmp_path / "pneumoniamnist.npz"
    np.savez(path, **arrays)
    study = _study(tmp_path, "pmnist-tiny", "npz", {"min_val": 4})
    out = tmp_path / "out"
    assert (
        main(["--study", str(study), "--data", str(path), "--out", str(out), "--n-jobs", "1", "--quiet"]) == 0
    )
    runs = pd.read_parquet(out / "runs")
    assert len(runs) == 8 and set(runs["image_size"]) == {28}
