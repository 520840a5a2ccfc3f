"""CIFAR-10 loader on small batch files written in the real python-pickle format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from downscalexr.data.cache import DataError
from downscalexr.data.cifar import CLASS_NAMES, load_cifar10, read_cifar10
from downscalexr.data.registry import dataset_options, list_datasets, load_dataset

PER_BATCH, N_TEST = 20, 30  # 100 training images, 10 of each class


def batch_arrays(index: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels balanced over the 10 classes (shuffled) and random uint8 images; the first pixel of the
    red plane holds the batch index and the second the row, so a loaded image can be traced back."""
    labels = rng.permutation(np.arange(n) % 10)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data[:, 0], data[:, 1] = index, np.arange(n)
    return data, labels


def write_cifar(root: Path, protocol: int = 2, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A ``cifar-10-batches-py`` folder with the real file names and keys; returns what each batch holds."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    written = {}
    names = [(f"data_batch_{i}", PER_BATCH, f"training batch {i} of 5") for i in range(1, 6)]
    for index, (name, n, label) in enumerate([*names, ("test_batch", N_TEST, "testing batch 1 of 1")]):
        data, labels = batch_arrays(index, n, rng)
        batch = {
            b"batch_label": label.encode(),
            b"labels": labels.tolist(),
            b"data": data,
            b"filenames": [
                f"{CLASS_NAMES[k]}_s_{index:02d}{j:04d}.png".encode() for j, k in enumerate(labels)
            ],
        }
        (root / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[name] = (data, labels)
    meta = {
        b"num_cases_per_batch": PER_BATCH,
        b"label_names": [c.encode() for c in CLASS_NAMES],
        b"num_vis": 3072,
    }
    (root / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return written


@pytest.fixture
def cifar(tmp_path) -> tuple[Path, dict]:
    root = tmp_path / "cifar-10-batches-py"
    return root, write_cifar(root)


def image_of(written: dict, source: str) -> torch.Tensor:
    """The image a source id such as ``data_batch_3[7]`` names, as the loader should give it."""
    name, index = source[:-1].split("[")
    return torch.from_numpy(written[name][0][int(index)].reshape(3, 32, 32)).float() / 255


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_loads_rgb_tensors_and_every_image_traces_back_to_its_batch(tmp_path, protocol):
    root = tmp_path / "cifar-10-batches-py"
    written = write_cifar(root, protocol=protocol)
    data = load_cifar10(root, val_size=0.2)
    assert data.class_names == CLASS_NAMES and data.num_classes == 10
    assert data.x_train.shape == (80, 3, 32, 32) and data.x_val.shape == (20, 3, 32, 32)
    assert data.x_test.shape == (N_TEST, 3, 32, 32) and data.x_test.dtype == torch.float32
    ids = data.info["ids"]
    assert ids["test"] == [f"test_batch[{i}]" for i in range(N_TEST)]
    assert data.y_test.tolist() == written["test_batch"][1].tolist()
    for split in ("train", "val", "test"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        for i, source in enumerate(ids[split]):
            assert torch.equal(x[i], image_of(written, source))  # channel planes, rows, columns in place
            name, index = source[:-1].split("[")
            assert y[i] == written[name][1][int(index)]


def test_validation_is_stratified_seeded_and_disjoint_from_train(cifar):
    root, _ = cifar
    data = load_cifar10(root, val_size=0.2, seed=3)
    assert data.y_val.bincount(minlength=10).tolist() == [2] * 10
    train, val = set(data.info["ids"]["train"]), set(data.info["ids"]["val"])
    assert not train & val and len(train | val) == 5 * PER_BATCH
    assert data.info["ids"]["val"] == load_cifar10(root, val_size=0.2, seed=3).info["ids"]["val"]
    assert data.info["ids"]["val"] != load_cifar10(root, val_size=0.2, seed=4).info["ids"]["val"]
    assert len(load_cifar10(root, val_size=30).y_val) == 30
    assert data.info["counts"]["val"] == dict.fromkeys(CLASS_NAMES, 2) and "seed 3" in data.info["val_source"]


def test_registry_uses_the_study_seed_for_validation_and_needs_a_path(cifar):
    root, _ = cifar
    assert "cifar10" in list_datasets()
    assert dataset_options("cifar10") == ["path", "val_size", "permute", "permutation_seed"]
    a = load_dataset("cifar10", seed=0, test_seed=7, path=str(root.parent), val_size=0.2)
    b = load_dataset("cifar10", seed=1, test_seed=7, path=str(root), val_size=0.2)
    assert a.info["ids"] == b.info["ids"] and torch.equal(a.x_val, b.x_val)  # the parent folder works too
    with pytest.raises(ValueError, match="--data PATH"):
        load_dataset("cifar10", seed=0)


def test_missing_folder_or_archive_instead_of_folder(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*cifar-10-python.tar.gz"):
        load_cifar10(tmp_path / "nowhere")
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError, match="is a file; pass the unpacked archive"):
        load_cifar10(archive)


def test_missing_files_are_all_named(cifar):
    root, _ = cifar
    (root / "data_batch_2").unlink()
    (root / "batches.meta").unlink()
    with pytest.raises(DataError, match="2 CIFAR-10 file") as err:
        load_cifar10(root)
    assert err.value.problems == [f"missing {root / 'data_batch_2'}", f"missing {root / 'batches.meta'}"]


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.0])
def test_truncated_batch_names_the_file(cifar, keep):
    root, _ = cifar
    blob = (root / "data_batch_3").read_bytes()
    (root / "data_batch_3").write_bytes(blob[: int(len(blob) * keep)])
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        load_cifar10(root)
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(f"{root / 'data_batch_3'}: ")


class _Planted:
    """Pickles as a call of ``open(path, "w")``: a file that would run code when unpickled."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_batch_that_would_run_code_is_refused(cifar, tmp_path):
    root, _ = cifar
    (root / "test_batch").write_bytes(pickle.dumps({b"data": _Planted(tmp_path / "ran"), b"labels": []}))
    with pytest.raises(DataError, match=r"test_batch: .*refusing to load (io|builtins).open"):
        load_cifar10(root)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ({b"labels": [0]}, r"missing key\(s\) \['data'\]"),
        ({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}, "data must be uint8 N x 3072"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "data must be uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "labels must be 2 integers"),
        (
            {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]},
            r"labels must lie in 0-9; found \[10\]",
        ),
        ([1, 2, 3], "holds a list, not the dict"),
    ],
)
def test_malformed_batch_contents_name_the_file(cifar, batch, expected):
    root, _ = cifar
    (root / "data_batch_5").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=expected) as err:
        read_cifar10(root)
    assert str(root / "data_batch_5") in str(err.value)


def test_a_class_missing_from_the_test_batch_is_reported(cifar):
    root, written = cifar
    data, labels = written["test_batch"]
    keep = labels != 4
    batch = {b"data": data[keep], b"labels": labels[keep].tolist()}
    (root / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(DataError, match=r"test batches have no image of class\(es\) \[4\]"):
        load_cifar10(root)


def test_class_names_come_from_the_meta_file(cifar):
    root, _ = cifar
    names = [f"class {k}" for k in range(10)]
    (root / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))  # str keys work too
    assert load_cifar10(root).class_names == tuple(names)
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"cat"]}))
    with pytest.raises(DataError, match="label_names must list 10 class names"):
        load_cifar10(root)


def test_a_grid_runs_a_multiclass_rgb_study_on_it(cifar, tmp_path, run_grid):
    root, written = cifar
    study = {
        "name": "cifar-tiny",
        "dataset": "cifar10",
        "data": {"val_size": 20},
        "model": "lenet",
        "model_options": {"channels": [4, 8], "kernel_size": 3},
        "variants": ["avgpool", "strided"],
        "fractions": [1.0],
        "seeds": [0],
        "train": {"epochs": 1, "batch_size": 16},
        "latency": {"enabled": False},
    }
    path = tmp_path / "cifar-tiny.yaml"
    path.write_text(yaml.safe_dump(study))
    out = tmp_path / "out"
    code, _, err = run_grid("--study", path, "--data", root, "--out", out, "--n-jobs", "1", "--quiet")
    assert code == 0, err
    runs = pd.read_parquet(out / "runs")
    assert len(runs) == 2 and set(runs["status"]) == {"ok"}
    predictions = pd.read_parquet(out / "predictions")
    per_run = predictions.groupby("run_id").size()
    assert (per_run == N_TEST * 10).all()  # one row per test example and class
    provenance = yaml.safe_load((out / "data.json").read_text())
    assert provenance["input_shape"] == [3, 32, 32] and provenance["info"]["source"] == "cifar10"
    assert provenance["class_counts"]["test"] == dict.fromkeys(CLASS_NAMES, 3)
