"""Image decoding and the preprocessing cache: known pixel values, keys, reuse, rebuilds, atomic writes."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

from downscalexr.data import cache
from downscalexr.data.cache import (
    DataError,
    cache_key,
    cached_preprocess,
    decode_image,
    default_cache_dir,
    preprocess_images,
)


def gradient(w: int = 40, h: int = 30) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (40 + 150 * xx / w + 40 * yy / h).astype(np.uint8)


def entries(folder) -> list[str]:
    """Files in a cache directory apart from build locks: entries and any leftover temporary files."""
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".lock")


@pytest.fixture
def images(tmp_path):
    """Five small files: three grayscale JPEGs, one RGB JPEG, one PNG."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    paths = []
    for i in range(3):
        Image.fromarray(gradient() + 10 * i).save(folder / f"g{i}.jpeg", quality=95)
        paths.append(folder / f"g{i}.jpeg")
    Image.fromarray(np.stack([gradient()] * 3, -1)).save(folder / "rgb.jpeg", quality=95)
    Image.fromarray(gradient()).save(folder / "plain.png")
    return paths + [folder / "rgb.jpeg", folder / "plain.png"]


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("L", 77, 77),
        ("RGB", (200, 100, 50), 124),  # ITU-R 601-2 luma: 0.299 R + 0.587 G + 0.114 B
        ("RGBA", (200, 100, 50, 10), 124),  # transparency is dropped, not blended
        ("LA", (90, 255), 90),
        ("I;16", 100 * 257, 100),  # 16-bit scaled to 8 bits rather than clipped at 255
        ("1", 1, 255),
    ],
)
def test_any_mode_becomes_grayscale(tmp_path, mode, value, expected):
    path = tmp_path / "img.png"
    Image.new(mode, (40, 30), value).save(path)
    for resize in ("stretch", "center-crop"):
        out = decode_image(path, 8, resize)
        assert out.shape == (8, 8) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - expected).max() <= 1


def test_draft_decode_matches_full_decode(tmp_path):
    path = tmp_path / "big.jpeg"
    Image.fromarray(gradient(1000, 800)).save(path, quality=90)
    with Image.open(path) as img:
        img.draft("L", (64, 64))
        assert img.size == (125, 100)  # the decoder really works at 1/8 scale, still >= 64
    fast, full = decode_image(path, 64, draft=True), decode_image(path, 64, draft=False)
    assert np.abs(fast.astype(int) - full.astype(int)).max() <= 3


def test_other_formats_and_garbage_are_rejected(tmp_path):
    Image.new("L", (10, 10)).save(tmp_path / "x.gif")
    with pytest.raises(ValueError, match="not JPEG or PNG"):
        decode_image(tmp_path / "x.gif", 8)
    (tmp_path / "x.jpeg").write_bytes(b"garbage")
    with pytest.raises(OSError):
        decode_image(tmp_path / "x.jpeg", 8)
    with pytest.raises(ValueError, match="choose from stretch, center-crop"):
        decode_image(tmp_path / "x.gif", 8, "squash")


@pytest.mark.parametrize(("workers", "executor"), [(2, "thread"), (2, "process")])
def test_parallel_equals_serial_and_keeps_order(images, workers, executor):
    bad = images[0].parent / "bad.jpeg"
    bad.write_bytes(b"\xff\xd8 truncated")
    paths = [*images[:2], bad, *images[2:]]
    serial = preprocess_images(paths, 12, workers=1, quiet=True)
    parallel = preprocess_images(paths, 12, workers=workers, executor=executor, quiet=True)
    assert np.array_equal(serial.images, parallel.images) and serial.ok.tolist() == parallel.ok.tolist()
    assert serial.ok.tolist() == [True, True, False, True, True, True]
    assert list(serial.bad) == [str(bad)] and not serial.images[2].any()
    for i, p in enumerate(paths):
        if p != bad:
            assert np.array_equal(serial.images[i], decode_image(p, 12))


def test_progress_bar_silent_when_not_a_terminal(images, capsys):
    preprocess_images(images, 8, workers=1, quiet=False)
    assert capsys.readouterr().err == ""


def test_key_tracks_files_sizes_mtimes_and_options(images, tmp_path):
    opts = {"size": 8}
    key = cache_key(images, opts)
    assert cache_key(list(reversed(images)), opts) == key  # a set of files, not a sequence
    assert cache_key(images, {"size": 16}) != key
    assert cache_key(images[:-1], opts) != key
    st = os.stat(images[0])
    os.utime(images[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touch
    touched = cache_key(images, opts)
    assert touched != key
    with open(images[1], "ab") as fh:  # same mtime, new size
        mtime = os.stat(images[1]).st_mtime_ns
        fh.write(b"\0")
    os.utime(images[1], ns=(mtime, mtime))
    assert cache_key(images, opts) != touched
    # relative to a root, a copy of the tree with the same mtimes has the same key
    copy = tmp_path / "copy"
    shutil.copytree(images[0].parent, copy)
    moved = [copy / p.name for p in images]
    assert cache_key(moved, opts, root=copy) == cache_key(images, opts, root=images[0].parent)


def test_cache_reused_and_rebuilt_when_inputs_change(images, tmp_path):
    store = tmp_path / "cache"
    first = cached_preprocess(images, 8, cache_dir=store, quiet=True, workers=1)
    again = cached_preprocess(images, 8, cache_dir=store, quiet=True, workers=1)
    assert not first.from_cache and again.from_cache and again.cache_file == first.cache_file
    assert np.array_equal(first.images, again.images)
    Image.fromarray(255 - gradient()).save(images[4])  # modify the PNG
    rebuilt = cached_preprocess(images, 8, cache_dir=store, quiet=True, workers=1)
    assert not rebuilt.from_cache and rebuilt.cache_file != first.cache_file
    assert np.array_equal(rebuilt.images[4], decode_image(images[4], 8))
    assert not np.array_equal(rebuilt.images[4], first.images[4])
    crop = cached_preprocess(images, 8, "center-crop", cache_dir=store, quiet=True, workers=1)
    assert not crop.from_cache
    assert entries(store) == sorted(os.path.basename(r.cache_file) for r in (first, rebuilt, crop))


def test_bad_files_remembered_by_the_cache(images, tmp_path):
    bad = images[0].parent / "bad.png"
    bad.write_text("not a png")
    paths = [*images, bad]
    cached_preprocess(paths, 8, cache_dir=tmp_path / "c", quiet=True, workers=1)
    hit = cached_preprocess(paths, 8, cache_dir=tmp_path / "c", quiet=True, workers=1)
    assert hit.from_cache and list(hit.bad) == [str(bad)] and "UnidentifiedImageError" in hit.bad[str(bad)]


def test_damaged_cache_entry_is_rebuilt(images, tmp_path):
    first = cached_preprocess(images, 8, cache_dir=tmp_path / "c", quiet=True, workers=1)
    with open(first.cache_file, "r+b") as fh:
        fh.truncate(100)
    again = cached_preprocess(images, 8, cache_dir=tmp_path / "c", quiet=True, workers=1)
    assert not again.from_cache and np.array_equal(again.images, first.images)


def test_failed_write_leaves_no_entry_and_no_temp_file(images, tmp_path, monkeypatch):
    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cache.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        cached_preprocess(images, 8, cache_dir=tmp_path / "c", quiet=True, workers=1)
    assert entries(tmp_path / "c") == []


def test_concurrent_builders_leave_one_complete_entry(images, tmp_path):
    results, errors = [], []

    def build():
        try:
            results.append(cached_preprocess(images, 8, cache_dir=tmp_path / "c", quiet=True, workers=1))
        except Exception as err:  # surfaced by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 4
    assert entries(tmp_path / "c") == [os.path.basename(results[0].cache_file)]
    if cache.fcntl is not None:  # the build lock makes the other three wait and reuse the entry
        assert sum(r.from_cache for r in results) == 3
    final = cached_preprocess(images, 8, cache_dir=tmp_path / "c", quiet=True, workers=1)
    assert final.from_cache and all(np.array_equal(r.images, final.images) for r in results)


def test_cache_dir_from_environment_and_opt_out(images, tmp_path, monkeypatch):
    monkeypatch.setenv("DOWNSCALEXR_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    out = cached_preprocess(images, 8, quiet=True, workers=1)
    assert os.path.dirname(out.cache_file) == str(tmp_path / "env-cache")
    none = cached_preprocess(images, 8, quiet=True, workers=1, use_cache=False, cache_dir=tmp_path / "x")
    assert none.cache_file is None and not (tmp_path / "x").exists()
    monkeypatch.delenv("DOWNSCALEXR_CACHE")
    assert default_cache_dir() == default_cache_dir().home() / ".cache" / "downscalexr"


def test_data_error_lists_problems_and_truncates():
    err = DataError("3 problems:", ["a.jpeg: bad", "b.png: bad", "c.txt: bad"])
    assert isinstance(err, ValueError) and err.problems == ["a.jpeg: bad", "b.png: bad", "c.txt: bad"]
    assert str(err) == "3 problems:\n  a.jpeg: bad\n  b.png: bad\n  c.txt: bad"
    many = DataError("many:", [f"f{i}" for i in range(60)])
    assert "f49" in str(many) and "f50" not in str(many) and "... and 10 more" in str(many)
