"""MedMNIST npz loader: the real file format at several resolutions, and every kind of malformed file."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from downscalexr.data.cache import DataError
from downscalexr.data.npz import KEYS, load_npz, read_npz

SIZES = {"train": (12, 4), "val": (3, 2), "test": (5, 4)}  # (normal, pneumonia) per split, like MedMNIST


def medmnist_arrays(resolution: int = 28, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays in MedMNIST's exact format: uint8 N x H x W images, uint8 N x 1 labels.
    Normal images are dark (about 40), pneumonia images bright (about 200)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, (n0, n1) in SIZES.items():
        labels = rng.permutation(np.repeat(np.array([0, 1], np.uint8), [n0, n1]))
        base = np.where(labels == 1, 200, 40)[:, None, None]
        noise = rng.integers(-20, 21, size=(len(labels), resolution, resolution))
        arrays[f"{split}_images"] = np.clip(base + noise, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    return arrays


def write(tmp_path, arrays, name="pneumoniamnist.npz"):
    path = tmp_path / name
    np.savez_compressed(path, **arrays)
    return path


@pytest.mark.parametrize("resolution", [28, 64])
def test_loads_any_medmnist_resolution(tmp_path, resolution):
    arrays = medmnist_arrays(resolution)
    path = write(tmp_path, arrays, f"pneumoniamnist_{resolution}.npz")
    data = load_npz(path, min_val=5)
    assert data.x_train.shape == (16, 1, resolution, resolution) and data.x_train.dtype == torch.float32
    assert data.class_names == ("normal", "pneumonia")
    expected = torch.from_numpy(arrays["test_images"][:, None].astype(np.float32) / 255)
    assert torch.equal(data.x_test, expected)
    assert data.y_test.tolist() == arrays["test_labels"][:, 0].tolist() and data.y_test.dtype == torch.int64
    means = data.x_train.mean(dim=(1, 2, 3))
    assert (means[data.y_train == 0] < 0.3).all() and (means[data.y_train == 1] > 0.6).all()
    info = data.info
    assert info["resolution"] == [resolution, resolution] and info["source"] == "npz"
    assert info["md5"] == hashlib.md5(path.read_bytes()).hexdigest()
    assert info["counts"]["train"] == {"normal": 12, "pneumonia": 4}
    assert info["val_source"].startswith("official") and len(data.y_val) == 5


def test_resize_keeps_uniform_images_and_changes_size(tmp_path):
    arrays = medmnist_arrays(28)
    arrays["test_images"][:] = 51  # 51 / 255 = 0.2 exactly, whatever the interpolation
    data = load_npz(write(tmp_path, arrays), size=16, min_val=5)
    assert data.x_test.shape == (9, 1, 16, 16) and data.x_train.shape[-1] == 16
    assert torch.allclose(data.x_test, torch.full_like(data.x_test, 0.2))
    assert data.info["size"] == 16 and data.info["resolution"] == [28, 28]


def test_small_val_carved_from_train_test_untouched(tmp_path):
    arrays = medmnist_arrays(28)
    data = load_npz(write(tmp_path, arrays), min_val=6, seed=1)
    assert len(data.y_val) == 6 and len(data.y_train) == 21 - 6
    assert set(data.y_val.tolist()) == {0, 1}
    assert data.info["val_source"].startswith("carved")
    assert data.info["ids"]["test"] == [f"test_images[{i}]" for i in range(9)]
    pooled = {f"train_images[{i}]" for i in range(16)} | {f"val_images[{i}]" for i in range(5)}
    assert set(data.info["ids"]["train"]) | set(data.info["ids"]["val"]) == pooled


def test_rgb_and_float_images_are_accepted(tmp_path):
    arrays = medmnist_arrays(28)
    arrays["train_images"] = np.repeat(arrays["train_images"][..., None], 3, axis=-1)  # N x H x W x 3
    arrays["val_images"] = arrays["val_images"].astype(np.float32) / 255  # floats in [0, 1]
    arrays["test_labels"] = arrays["test_labels"][:, 0]  # N rather than N x 1
    data = load_npz(write(tmp_path, arrays), min_val=5)
    reference = load_npz(write(tmp_path, medmnist_arrays(28), "ref.npz"), min_val=5)
    for split in ("x_train", "x_val", "y_test"):
        assert torch.allclose(getattr(data, split).double(), getattr(reference, split).double(), atol=1 / 255)


def test_missing_keys_listed(tmp_path):
    arrays = medmnist_arrays(28)
    del arrays["val_labels"], arrays["test_images"]
    with pytest.raises(DataError, match=r"missing keys \['val_labels', 'test_images'\]") as err:
        load_npz(write(tmp_path, arrays))
    assert isinstance(err.value, ValueError) and all(k in str(err.value) for k in KEYS)


def test_every_malformed_array_reported_in_one_error(tmp_path):
    arrays = medmnist_arrays(28)
    arrays["train_labels"] = arrays["train_labels"][:-1]  # mismatched length
    arrays["val_labels"] = arrays["val_labels"].astype(np.int64)
    arrays["val_labels"][0] = -1  # not a class index
    arrays["test_images"] = arrays["test_images"][:, :, :20]  # another resolution
    with pytest.raises(DataError) as err:
        read_npz(write(tmp_path, arrays))
    message = str(err.value)
    assert len(err.value.problems) == 3
    assert "train_labels has 15 labels but the images have 16" in message
    assert "val_labels must be class indices 0 .. K-1; found negative" in message
    assert "image sizes differ" in message


def test_a_class_that_train_does_not_have_is_reported(tmp_path):
    arrays = medmnist_arrays(28)
    arrays["test_labels"][0] = 2  # a third class, absent from the (binary) training labels
    with pytest.raises(DataError, match=r"test_labels must be 0 \(normal\) or 1 \(pneumonia\).*values \[2\]"):
        read_npz(write(tmp_path, arrays))
    with pytest.raises(DataError, match=r"test_labels must be 0 .. 2.*found other values \[3\]"):
        arrays["test_labels"][0] = 3
        read_npz(write(tmp_path, arrays), num_classes=3)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda a: a.update(train_images=a["train_images"][:, 0]), "must be N x H x W"),
        (lambda a: a.update(val_labels=np.zeros((5, 2), np.uint8)), "must be N or N x 1"),
        (lambda a: a.update(test_labels=np.zeros((9, 1), np.uint8)), "only class normal"),
        (lambda a: a.update(train_images=a["train_images"].astype(np.int32) * 2), r"must lie in \[0, 255\]"),
    ],
    ids=["2d-images", "one-hot-labels", "one-class-test", "out-of-range"],
)
def test_malformed_arrays(tmp_path, change, expected):
    arrays = medmnist_arrays(28)
    change(arrays)
    with pytest.raises(DataError, match=expected):
        load_npz(write(tmp_path, arrays))


def test_missing_or_unreadable_file(tmp_path):
    with pytest.raises(DataError, match="Zenodo"):
        load_npz(tmp_path / "pneumoniamnist.npz")
    (tmp_path / "fake.npz").write_text("not a zip archive")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(tmp_path / "fake.npz")


def test_argument_errors_name_valid_choices(tmp_path):
    path = write(tmp_path, medmnist_arrays(28))
    with pytest.raises(ValueError, match="choose from stretch, center-crop"):
        load_npz(path, resize="squash")
    with pytest.raises(ValueError, match="positive integer"):
        load_npz(path, size=0)


# --- multi-class and RGB files (bloodmnist-style) -------------------------------------------------------

K = 8


def rgb_arrays(resolution: int = 28, seed: int = 0) -> dict[str, np.ndarray]:
    """A bloodmnist-style file: uint8 N x H x W x 3 images, uint8 N x 1 labels of 8 classes. The red
    plane holds 20 x the label, the green plane the row index, the blue plane noise."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 48), ("val", 16), ("test", 24)):
        labels = rng.permutation(np.arange(n) % K).astype(np.uint8)
        images = np.empty((n, resolution, resolution, 3), np.uint8)
        images[..., 0] = (20 * labels)[:, None, None]
        images[..., 1] = np.arange(n, dtype=np.uint8)[:, None, None]
        images[..., 2] = rng.integers(0, 256, size=(n, resolution, resolution))
        arrays |= {f"{split}_images": images, f"{split}_labels": labels[:, None]}
    return arrays


def test_rgb_multiclass_file_keeps_colour_classes_and_sources(tmp_path):
    arrays = rgb_arrays()
    data = load_npz(write(tmp_path, arrays, "bloodmnist.npz"), min_val=10)
    assert data.x_train.shape == (48, 3, 28, 28) and data.num_classes == K
    assert data.class_names == tuple(f"class_{k}" for k in range(K))
    expected = torch.from_numpy(arrays["test_images"]).permute(0, 3, 1, 2).float() / 255  # channels first
    assert torch.equal(data.x_test, expected)
    assert data.y_test.tolist() == arrays["test_labels"][:, 0].tolist()
    assert torch.equal(
        data.x_train[:, 0, 0, 0] * 255 / 20, data.y_train.float()
    )  # red still encodes the class
    for i, source in enumerate(data.info["ids"]["val"]):  # the official 16-image val split is kept
        assert source == f"val_images[{i}]"
    assert data.info["channels"] == 3 and data.info["num_classes"] == K
    assert data.info["counts"]["test"] == {f"class_{k}": 3 for k in range(K)}


def test_small_multiclass_validation_is_carved_stratified(tmp_path):
    data = load_npz(write(tmp_path, rgb_arrays()), min_val=32, val_size=32, seed=2)
    assert data.y_val.bincount(minlength=K).tolist() == [4] * K  # 32 of the pooled 64, 8 per class
    assert data.info["val_source"].startswith("carved") and len(data.y_train) == 32


def test_class_names_option_names_the_classes(tmp_path):
    names = [
        "basophil",
        "eosinophil",
        "erythroblast",
        "ig",
        "lymphocyte",
        "monocyte",
        "neutrophil",
        "platelet",
    ]
    path = write(tmp_path, rgb_arrays())
    data = load_npz(path, min_val=10, class_names=names)
    assert data.class_names == tuple(names) and data.info["counts"]["train"]["platelet"] == 6
    with pytest.raises(DataError, match=r"must be 0 .. 6.*found other values \[7\]"):
        load_npz(path, min_val=10, class_names=names[:7])
    with pytest.raises(ValueError, match="at least two distinct non-empty names"):
        load_npz(path, class_names=["a", "a"])


def test_color_modes(tmp_path):
    arrays = rgb_arrays()
    gray = load_npz(write(tmp_path, arrays), min_val=10, color="gray")
    luma = arrays["test_images"].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert gray.x_test.shape == (24, 1, 28, 28)
    assert torch.equal(gray.x_test[:, 0], torch.from_numpy(np.rint(luma).astype(np.uint8)).float() / 255)
    single = load_npz(write(tmp_path, medmnist_arrays(28), "gray.npz"), min_val=5, color="rgb")
    assert single.x_test.shape == (9, 3, 28, 28)
    assert torch.equal(single.x_test[:, 0], single.x_test[:, 2])  # grayscale repeated into three channels
    with pytest.raises(ValueError, match="choose from auto, gray, rgb"):
        load_npz(write(tmp_path, arrays), color="colour")


def test_rgb_resize_keeps_a_uniform_colour(tmp_path):
    arrays = rgb_arrays(28)
    arrays["test_images"][:] = (51, 102, 204)  # 0.2, 0.4, 0.8 exactly
    data = load_npz(write(tmp_path, arrays), size=16, min_val=10)
    assert data.x_test.shape == (24, 3, 16, 16)
    colour = torch.tensor([0.2, 0.4, 0.8])[None, :, None, None].expand_as(data.x_test)
    assert torch.allclose(data.x_test, colour)


def test_multilabel_and_one_class_files_are_refused(tmp_path):
    arrays = rgb_arrays()
    arrays["train_labels"] = np.zeros((48, 14), np.uint8)  # chestmnist-style multi-label
    with pytest.raises(DataError, match="multi-label files such as chestmnist are not supported"):
        load_npz(write(tmp_path, arrays))
    arrays = rgb_arrays()
    arrays["train_labels"][:] = 0
    with pytest.raises(DataError, match="train split has only class normal"):
        load_npz(write(tmp_path, arrays))
    arrays = rgb_arrays()
    arrays["test_labels"][arrays["test_labels"] == 5] = 4
    with pytest.raises(DataError, match=r"test split has no example of class\(es\) \[5\]"):
        load_npz(write(tmp_path, arrays))
