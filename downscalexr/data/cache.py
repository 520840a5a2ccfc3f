"""Decode image files once into a fixed-size grayscale stack, and keep the result in an on-disk cache.

Decoding thousands of large chest X-ray JPEGs would dominate every cell of a grid, so the folder loader
calls :func:`cached_preprocess`: the first call decodes every file (in parallel, with JPEG reduced-size
decoding) and writes one ``.npz`` file; every later call, from any worker process, reads it back.
The cache key is a hash of the sorted file list, each file's size and modification time, and the
preprocessing options, so touching, adding or removing a file, or changing the size, builds a new entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

RESIZE_MODES = ("stretch", "center-crop")
EXECUTORS = ("thread", "process")
CACHE_ENV = "DOWNSCALEXR_CACHE"
# Bump when the decoding or the file format changes, so old entries are never reused.
CACHE_VERSION = 1
_RESAMPLE = Image.Resampling.BILINEAR  # antialiased when downscaling, like every Pillow filter but NEAREST


class DataError(ValueError):
    """Input data is missing, malformed or unreadable.

    ``problems`` lists every problem found (one string each, naming the file), so a user can fix all
    of them in one go rather than one per run.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()):
        self.problems = list(problems)
        if self.problems:
            shown = self.problems[:50]
            more = len(self.problems) - len(shown)
            message = "\n  ".join([message, *shown]) + (f"\n  ... and {more} more" if more > 0 else "")
        super().__init__(message)


@dataclass(frozen=True)
class Preprocessed:
    """Decoded images and the files that could not be decoded.

    ``images`` is uint8 ``N x size x size`` with one row per input path, in input order; rows of bad
    files are zero and ``ok`` is False for them. ``bad`` maps each bad path (as given) to the reason.
    """

    images: np.ndarray
    ok: np.ndarray
    bad: dict[str, str] = field(default_factory=dict)
    cache_file: str | None = None
    from_cache: bool = False


def default_cache_dir() -> Path:
    """``$DOWNSCALEXR_CACHE`` if set, else ``~/.cache/downscalexr``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "downscalexr"


def _check_options(size: int, resize: str) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer (pixels per side), got {size!r}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"unknown resize mode {resize!r}; choose from {', '.join(RESIZE_MODES)}")


def _to_gray(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit grayscale ``L``; 16-bit and float images are rescaled, not clipped."""
    if img.mode == "L":
        return img
    if img.mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    if img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(np.rint(scaled).astype(np.uint8))
    return img.convert("L")


def decode_image(
    path: str | os.PathLike, size: int, resize: str = "stretch", draft: bool = True
) -> np.ndarray:
    """Read one JPEG/PNG file as a uint8 ``size x size`` grayscale array.

    Parameters
    ----------
    path : path-like
        The image file.
    size : int
        Output side length in pixels.
    resize : {"stretch", "center-crop"}
        ``stretch`` resizes the whole image, changing its aspect ratio; ``center-crop`` first crops the
        largest centred square, keeping the aspect ratio (as MedMNIST does).
    draft : bool
        Let the JPEG decoder decode directly at a reduced scale (1/2, 1/4 or 1/8) that still covers
        ``size``; much faster for large files, and a no-op for PNG.

    Returns
    -------
    numpy.ndarray
        uint8, ``size x size``.

    Raises
    ------
    OSError, ValueError
        When the file is not a decodable image (Pillow's exceptions, passed through).
    """
    _check_options(size, resize)
    with Image.open(path) as img:
        if img.format not in ("JPEG", "PNG", "MPO"):
            raise ValueError(f"format {img.format} is not JPEG or PNG")
        if draft and img.format in ("JPEG", "MPO"):
            img.draft("L", (size, size))
        # One read and one decoder call per file: the decoder releases the GIL per call, so fewer,
        # larger calls mean fewer GIL hand-offs between decoding threads (about 15 % faster serially).
        img.decodermaxblock = max(img.decodermaxblock, os.fstat(img.fp.fileno()).st_size + 1)
        img.load()
        gray = _to_gray(img)
        if resize == "center-crop":  # crop first: a resize box would let the filter read past the crop
            w, h = gray.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            gray = gray.crop((left, top, left + side, top + side))
        out = gray.resize((size, size), _RESAMPLE)
        return np.asarray(out, dtype=np.uint8)


def _decode_safely(args: tuple[str, int, str, bool]) -> tuple[np.ndarray | None, str | None]:
    path, size, resize, draft = args
    try:
        return decode_image(path, size, resize, draft), None
    except Exception as err:  # any failure marks the file bad; the reason is reported
        return None, f"{type(err).__name__}: {err}"


def preprocess_images(
    paths: Sequence[str | os.PathLike],
    size: int,
    resize: str = "stretch",
    *,
    draft: bool = True,
    workers: int | None = None,
    executor: str = "thread",
    quiet: bool = False,
) -> Preprocessed:
    """Decode many image files in parallel into one uint8 stack (no cache).

    Parameters
    ----------
    paths : sequence of path-like
        Image files; the output keeps their order.
    size, resize, draft
        As in :func:`decode_image`.
    workers : int, optional
        Parallel decoders; default ``os.cpu_count()``. ``1`` decodes serially in this process.
    executor : {"thread", "process"}
        Pillow releases the GIL while decoding and resizing, so threads scale without the cost of
        starting processes; ``process`` is there for comparison.
    quiet : bool
        Hide the progress bar (it is also hidden when stderr is not a terminal).

    Returns
    -------
    Preprocessed
        Every file that fails to decode is recorded in ``bad`` rather than raised.
    """
    _check_options(size, resize)
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    names = [str(p) for p in paths]
    jobs = [(p, size, resize, draft) for p in names]
    show = not quiet and sys.stderr.isatty()
    bar = tqdm(total=len(jobs), desc=f"decoding to {size}x{size}", unit="img", disable=not show)
    images = np.zeros((len(jobs), size, size), dtype=np.uint8)
    ok = np.zeros(len(jobs), dtype=bool)
    bad: dict[str, str] = {}

    def collect(results) -> None:
        for i, (arr, reason) in enumerate(results):
            if arr is None:
                bad[names[i]] = reason
            else:
                images[i], ok[i] = arr, True
            bar.update(1)

    try:
        if workers == 1 or len(jobs) < 2:
            collect(map(_decode_safely, jobs))
        else:
            pool_cls = ThreadPoolExecutor if executor == "thread" else ProcessPoolExecutor
            chunks = 1 if executor == "thread" else max(1, len(jobs) // (workers * 8))
            with pool_cls(max_workers=workers) as pool:
                collect(pool.map(_decode_safely, jobs, chunksize=chunks))
    finally:
        bar.close()
    return Preprocessed(images=images, ok=ok, bad=bad)


def cache_key(
    paths: Sequence[str | os.PathLike], options: dict, root: str | os.PathLike | None = None
) -> str:
    """A hex digest of the sorted file list, each file's size and mtime, and the options.

    Paths are taken relative to ``root`` when given, so a data set keeps its key when its parent
    directory is renamed; with no ``root`` they are made absolute.
    """
    entries = []
    for p in paths:
        st = os.stat(p)
        name = os.path.relpath(p, root) if root is not None else os.path.abspath(p)
        entries.append((Path(name).as_posix(), st.st_size, st.st_mtime_ns))
    payload = {"version": CACHE_VERSION, "files": sorted(entries), "options": options}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _write_atomic(target: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an ``.npz`` to a private temporary file in the same directory, then rename it into place.

    ``os.replace`` is atomic on one file system, so a reader sees either no file or a complete one,
    and concurrent builders of the same key just replace one complete file with an identical one.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _build_lock(target: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``<target>.lock`` where available (POSIX), else no lock.

    Only an optimisation: correctness comes from the atomic rename, so a file system without
    ``flock`` (or a lock held by a crashed process, which the kernel releases) costs time, not data.
    """
    if fcntl is None:
        yield
        return
    with open(target.with_suffix(".lock"), "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read(target: Path, paths: Sequence[str], key: str) -> Preprocessed | None:
    """The cache entry at ``target``, or None when it is missing, unreadable or for other inputs."""
    try:
        with np.load(target, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            images, ok = npz["images"], npz["ok"].astype(bool)
        if meta.get("key") != key or len(images) != len(paths) or len(ok) != len(paths):
            return None
        bad = {paths[i]: meta["bad"][str(i)] for i in np.flatnonzero(~ok)}
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile):
        return None
    return Preprocessed(images=images, ok=ok, bad=bad, cache_file=str(target), from_cache=True)


def cached_preprocess(
    paths: Sequence[str | os.PathLike],
    size: int,
    resize: str = "stretch",
    *,
    cache_dir: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    draft: bool = True,
    workers: int | None = None,
    executor: str = "thread",
    quiet: bool = False,
    use_cache: bool = True,
) -> Preprocessed:
    """:func:`preprocess_images`, through an on-disk cache shared by every process on the machine.

    Parameters
    ----------
    paths, size, resize, draft, workers, executor, quiet
        As in :func:`preprocess_images`.
    cache_dir : path-like, optional
        Where entries live; default :func:`default_cache_dir`. Created when missing.
    root : path-like, optional
        Directory the paths are keyed relative to (see :func:`cache_key`).
    use_cache : bool
        False decodes without reading or writing the cache.

    Returns
    -------
    Preprocessed
        ``from_cache`` says whether the entry was reused; ``cache_file`` is its path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("L", (40, 30), 128).save(d / "a.png")
    >>> first = cached_preprocess([d / "a.png"], 8, cache_dir=d / "cache", quiet=True)
    >>> again = cached_preprocess([d / "a.png"], 8, cache_dir=d / "cache", quiet=True)
    >>> first.from_cache, again.from_cache, int(again.images[0, 0, 0])
    (False, True, 128)
    """
    _check_options(size, resize)
    names = [str(p) for p in paths]
    if not use_cache:
        return preprocess_images(
            names, size, resize, draft=draft, workers=workers, executor=executor, quiet=quiet
        )
    options = {"size": int(size), "resize": resize, "draft": bool(draft), "resample": _RESAMPLE.name}
    key = cache_key(names, options, root)
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"images-{size}-{resize}-{key[:32]}.npz"
    hit = _read(target, names, key)
    if hit is not None:
        return hit
    with _build_lock(target):  # workers starting together wait for one builder instead of all decoding
        hit = _read(target, names, key)
        if hit is not None:
            return hit
        built = preprocess_images(
            names, size, resize, draft=draft, workers=workers, executor=executor, quiet=quiet
        )
        reasons = {str(i): built.bad[names[i]] for i in np.flatnonzero(~built.ok)}
        meta = {"key": key, "options": options, "n": len(names), "bad": reasons}
        arrays = {"images": built.images, "ok": built.ok, "meta": np.array(json.dumps(meta))}
        _write_atomic(target, arrays)
    return Preprocessed(images=built.images, ok=built.ok, bad=built.bad, cache_file=str(target))
