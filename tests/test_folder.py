"""Chest X-ray folder loader: layout discovery, preprocessing, validation carving, duplicates, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from downscalexr.data.cache import DataError
from downscalexr.data.folder import (
    CLASS_NAMES,
    average_hash,
    carve_validation,
    difference_hash,
    discover,
    find_duplicates,
    load_folder,
)

# Normal images are dark and pneumonia images bright, so the label mapping is visible in the pixels.
LEVEL = {"NORMAL": 60, "PNEUMONIA": 190}
COUNTS = {
    "train": {"NORMAL": 4, "PNEUMONIA": 6},
    "val": {"NORMAL": 1, "PNEUMONIA": 1},
    "test": {"NORMAL": 3, "PNEUMONIA": 3},
}


def _pattern(rng: np.random.Generator, level: int, w: int = 40, h: int = 30) -> np.ndarray:
    """A smooth random pattern around ``level``: distinct images get distinct perceptual hashes."""
    coarse = rng.uniform(-40, 40, size=(4, 5))
    big = np.asarray(Image.fromarray(coarse.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))
    return np.clip(level + big, 0, 255).astype(np.uint8)


def make_cxr(root, counts=COUNTS, split_names=None, class_names=None, seed=0):
    """Kaggle-layout folders of 40x30 grayscale JPEGs; the first pneumonia train image is RGB, the
    second a PNG (as in the real archive, a few files are not plain grayscale JPEGs)."""
    rng = np.random.default_rng(seed)
    split_names = split_names or {}
    class_names = class_names or {}
    for split, classes in counts.items():
        for cls, n in classes.items():
            folder = root / split_names.get(split, split) / class_names.get(cls, cls)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = _pattern(rng, LEVEL[cls])
                if split == "train" and cls == "PNEUMONIA" and i == 0:
                    Image.fromarray(np.stack([arr] * 3, axis=-1), mode="RGB").save(folder / f"rgb-{i}.jpeg")
                elif split == "train" and cls == "PNEUMONIA" and i == 1:
                    Image.fromarray(arr, mode="L").save(folder / f"im-{i}.png")
                else:
                    Image.fromarray(arr, mode="L").save(folder / f"{split}-{cls}-{i}.jpeg", quality=90)
    return root


def load(root, tmp_path, **kw):
    kw.setdefault("min_val", 2)
    return load_folder(root, size=16, cache_dir=tmp_path / "cache", quiet=True, workers=1, **kw)


def test_loads_shapes_labels_and_provenance(tmp_path):
    data = load(make_cxr(tmp_path / "cxr"), tmp_path)
    assert data.class_names == CLASS_NAMES == ("normal", "pneumonia")
    assert data.x_train.shape == (10, 1, 16, 16) and data.x_train.dtype == torch.float32
    assert len(data.x_val) == 2 and len(data.x_test) == 6
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.min() >= 0 and x.max() <= 1 and y.dtype == torch.int64
        means = x.mean(dim=(1, 2, 3))
        # NORMAL (dark) -> 0, PNEUMONIA (bright) -> 1
        assert (means[y == 0] < 0.4).all() and (means[y == 1] > 0.6).all()
    info = data.info
    assert info["counts"]["train"] == {"normal": 4, "pneumonia": 6}
    assert info["val_source"].startswith("official")
    assert info["skipped"]["count"] == 0 and info["duplicates"] == {"checked": False}
    assert len(info["ids"]["test"]) == 6 and all(f.startswith("test/") for f in info["ids"]["test"])


def test_folder_names_matched_ignoring_case(tmp_path):
    root = make_cxr(
        tmp_path / "cxr",
        split_names={"train": "TRAIN", "val": "Val", "test": "Test"},
        class_names={"NORMAL": "normal", "PNEUMONIA": "Pneumonia"},
    )
    (root / "TRAIN" / "normal" / "upper.JPG").write_bytes(
        (root / "Test" / "normal" / "test-NORMAL-0.jpeg").read_bytes()
    )
    data = load(root, tmp_path)
    assert data.info["counts"]["train"] == {"normal": 5, "pneumonia": 6}


def test_rgb_becomes_luma_and_resize_modes(tmp_path):
    root = make_cxr(tmp_path / "cxr")
    folder = root / "train" / "NORMAL"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(folder / "flat-rgb.png")
    # black 30x30 centre between white 5-pixel bands: a centre crop sees only black, a stretch sees both
    arr = np.zeros((30, 40), np.uint8)
    arr[:, :5] = arr[:, 35:] = 255
    Image.fromarray(arr).save(folder / "banded.png")
    names = None
    for mode in ("stretch", "center-crop"):
        data = load(root, tmp_path, resize=mode)
        names = data.info["ids"]["train"]
        flat = data.x_train[names.index("train/NORMAL/flat-rgb.png"), 0]
        # ITU-R 601-2 luma: 0.299 R + 0.587 G + 0.114 B = 124.2
        assert torch.allclose(flat, torch.full_like(flat, 124 / 255), atol=1 / 255)
        banded = data.x_train[names.index("train/NORMAL/banded.png"), 0]
        if mode == "center-crop":
            assert banded.max() < 0.05
        else:
            assert banded[:, 0].min() > 0.9 and banded[:, 8].max() < 0.05


def test_small_val_is_carved_stratified_and_test_untouched(tmp_path):
    root = make_cxr(tmp_path / "cxr")
    data = load(root, tmp_path, min_val=4, val_size=0.25, seed=3)
    assert len(data.y_val) == 4 and len(data.y_train) == 8  # max(round(0.25 * 12), 4) of 12 pooled
    assert set(data.y_val.tolist()) == {0, 1}
    files = data.info["ids"]
    pooled = {p.relative_to(root).as_posix() for s in ("train", "val") for p in (root / s).rglob("*.*")}
    assert set(files["train"]) | set(files["val"]) == pooled and not set(files["train"]) & set(files["val"])
    assert files["test"] == sorted(p.relative_to(root).as_posix() for p in (root / "test").rglob("*.jpeg"))
    assert data.info["val_source"].startswith("carved") and "seed 3" in data.info["val_source"]
    again = load(root, tmp_path, min_val=4, val_size=0.25, seed=3)
    assert again.info["ids"]["val"] == files["val"] and torch.equal(again.x_val, data.x_val)


def test_missing_val_folder_is_carved(tmp_path):
    root = make_cxr(tmp_path / "cxr")
    shutil.rmtree(root / "val")  # the Mendeley release has only train/ and test/
    data = load(root, tmp_path, min_val=3)
    assert len(data.y_val) == 3 and len(data.y_train) == 7
    assert data.info["official_counts"]["val"] == {"normal": 0, "pneumonia": 0}


def test_hidden_files_and_stray_folders_are_ignored(tmp_path):
    root = make_cxr(tmp_path / "cxr")
    (root / "train" / "NORMAL" / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "train" / "NORMAL" / "__MACOSX").mkdir()
    (root / "__MACOSX").mkdir()
    layout = discover(root)
    assert layout.problems == [] and layout.bad_files == [] and len(layout.files["train"]["normal"]) == 4
    data = load(root, tmp_path)
    assert len(data.info["ignored"]) == 2 and data.info["skipped"]["count"] == 0


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda r: shutil.rmtree(r / "test"), "missing split folder"),
        (lambda r: shutil.rmtree(r / "train" / "PNEUMONIA"), "missing class folder"),
        (lambda r: [p.unlink() for p in (r / "test" / "NORMAL").iterdir()], "empty class folder"),
    ],
    ids=["missing-split", "missing-class", "empty-class"],
)
def test_structural_problems_always_raise(tmp_path, damage, expected):
    root = make_cxr(tmp_path / "cxr")
    damage(root)
    for skip_bad in (False, True):
        with pytest.raises(DataError, match=expected):
            load(root, tmp_path, skip_bad=skip_bad)


def test_bad_files_listed_in_one_error_or_skipped(tmp_path):
    root = make_cxr(tmp_path / "cxr")
    (root / "train" / "NORMAL" / "corrupt.jpeg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "test" / "PNEUMONIA" / "notes.txt").write_text("radiologist notes")
    good = (root / "train" / "PNEUMONIA" / "train-PNEUMONIA-2.jpeg").read_bytes()
    (root / "val" / "NORMAL" / "truncated.jpeg").write_bytes(good[: len(good) // 3])
    with pytest.raises(DataError) as err:
        load(root, tmp_path)
    assert isinstance(err.value, ValueError)
    assert len(err.value.problems) == 3
    for name in ("corrupt.jpeg", "notes.txt", "truncated.jpeg"):
        assert name in str(err.value)
    data = load(root, tmp_path, skip_bad=True)
    skipped = data.info["skipped"]
    assert skipped["count"] == 3 and len(skipped["files"]) == 3
    assert data.info["counts"]["train"]["normal"] == 4 and len(data.y_test) == 6


def test_class_of_only_unreadable_files_raises_even_when_skipping(tmp_path):
    root = make_cxr(tmp_path / "cxr")
    for p in (root / "test" / "NORMAL").iterdir():
        p.write_bytes(b"garbage")
    with pytest.raises(DataError, match="every image is unreadable"):
        load(root, tmp_path, skip_bad=True)


def test_missing_root_says_where_to_get_the_data(tmp_path):
    with pytest.raises(DataError, match="Kaggle"):
        load(tmp_path / "nowhere", tmp_path)
    make_cxr(tmp_path / "archive" / "chest_xray")
    with pytest.raises(DataError, match="Did you mean .*chest_xray"):
        load(tmp_path / "archive", tmp_path)


def test_duplicates_across_splits_reported_and_dropped(tmp_path):
    root = make_cxr(tmp_path / "cxr")
    source = root / "train" / "NORMAL" / "train-NORMAL-1.jpeg"
    shutil.copy(source, root / "test" / "NORMAL" / "copy.jpeg")
    with Image.open(source) as img:  # the same radiograph, resized and re-encoded
        img.resize((48, 36), Image.BICUBIC).save(root / "val" / "PNEUMONIA" / "resaved.jpeg", quality=75)
    data = load(root, tmp_path, check_duplicates=True)
    pairs = data.info["duplicates"]["pairs"]
    assert [(p["split"], p["file"], p["distance"]) for p in pairs] == [("test", "test/NORMAL/copy.jpeg", 0)]
    assert pairs[0]["matches"] == ["train/NORMAL/train-NORMAL-1.jpeg"] and pairs[0]["n_matches"] == 1
    assert data.info["counts"]["test"]["normal"] == 4  # reported, not dropped
    # In 40x30 fixtures JPEG's 8x8 blocks are a fifth of the image, so re-encoding flips more bits than
    # in a real radiograph; unrelated fixtures stay > 80 of 256 bits apart.
    dropped = load(root, tmp_path, drop_duplicates=True, max_hash_distance=30)
    assert sorted(dropped.info["duplicates"]["dropped"]) == [
        "test/NORMAL/copy.jpeg",
        "val/PNEUMONIA/resaved.jpeg",
    ]
    assert dropped.info["counts"]["test"]["normal"] == 3 and len(dropped.y_val) == 2
    assert "test/NORMAL/copy.jpeg" not in dropped.info["ids"]["test"]


def test_difference_and_average_hash_known_answers():
    ramp = np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))[None]  # brighter to the right
    assert not difference_hash(ramp).any() and difference_hash(ramp[:, :, ::-1]).all()
    half = np.zeros((1, 32, 32), np.uint8)
    half[:, :, 16:] = 200
    bits = average_hash(half, hash_size=4).reshape(4, 4)
    assert not bits[:, :2].any() and bits[:, 2:].all()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 1, 64, 64), dtype=np.uint8)
    # brightness shift keeps the hash; an unrelated image differs in about half the bits
    assert (difference_hash(a // 2 + 60) == difference_hash(a)).mean() > 0.95
    assert 0.3 < (difference_hash(a) != difference_hash(b)).mean() < 0.7


def test_find_duplicates_known_pairs():
    q = np.array([[1, 0, 1, 0], [1, 1, 1, 1]], dtype=bool)
    r = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0]], dtype=bool)
    assert find_duplicates(q, r, 0) == [(0, 2, 0)]
    assert find_duplicates(q, r, 1) == [(0, 2, 0), (0, 0, 1), (1, 0, 1)]
    assert find_duplicates(q[:0], r, 4) == []


def test_carve_validation_sizes_and_test_untouched():
    y = np.array([0] * 30 + [1] * 70)
    parts = {
        "train": (np.zeros((100, 2, 2), np.uint8), y),
        "val": (np.ones((4, 2, 2), np.uint8), np.array([0, 0, 1, 1])),
        "test": (np.full((6, 2, 2), 7, np.uint8), np.array([0, 1, 0, 1, 0, 1])),
    }
    ids = {s: [f"{s}{i}" for i in range(len(parts[s][1]))] for s in parts}
    kept, kept_ids, note = carve_validation(parts, ids, min_val=4, val_size=0.1, seed=0)
    assert kept_ids == ids and note.startswith("official")
    for val_size, expected in ((0.1, 10), (0.5, 52), (7, 7), (2, 5)):  # 104 pooled; at least min_val=5
        out, out_ids, note = carve_validation(parts, ids, min_val=5, val_size=val_size, seed=0)
        assert len(out["val"][1]) == expected and len(out["train"][1]) == 104 - expected
        assert out["test"] is parts["test"] and out_ids["test"] == ids["test"]
        assert sorted(out_ids["train"] + out_ids["val"]) == sorted(ids["train"] + ids["val"])
        share = out["val"][1].mean()  # stratified: pooled prevalence is 72 / 104
        assert abs(share - 72 / 104) <= 1 / expected + 1e-9
