"""Preprocessing throughput: JPEG reduced-size decode + parallel decoders vs a plain decode.

Run as ``python tests/benchmarks/bench_preprocess.py [--n 1000] [--size 128]`` (not collected by pytest).
Generates ``n`` grayscale JPEGs of about 1500 x 1200 pixels in a temporary directory, with smooth
gradients, a few soft blobs and sensor-like noise so that file sizes are like real chest radiographs,
then times:

* ``plain``: ``Image.open(p).convert("L").resize((size, size))``, serial: what a naive loader does;
* ``draft, 1 thread``: :func:`downscalexr.data.cache.decode_image` serially (the effect of ``draft``);
* ``draft, N threads`` and ``draft, N processes``: :func:`preprocess_images` (the effect of parallelism).

Each configuration is run once after a warm-up pass over the files (so every run reads from the page
cache, not the disk), and the best of ``--repeats`` runs is reported, since the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from downscalexr.data.cache import decode_image, preprocess_images  # noqa: E402
from downscalexr.seeding import numpy_rng  # noqa: E402


def make_radiograph(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A uint8 image with the large-scale structure and noise of a chest radiograph (not anatomy)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy /= height
    xx /= width
    img = 60 + 90 * yy + 30 * np.sin(np.pi * xx)  # smooth gradients
    for _ in range(4):  # soft bright and dark blobs (lungs, heart, shoulders)
        cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.25)
        img += rng.uniform(-60, 60) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    img += rng.normal(0, 2.5, size=img.shape).astype(np.float32)  # sensor noise
    return np.clip(img, 0, 255).astype(np.uint8)


def generate(directory: Path, n: int, seed: int = 0) -> list[Path]:
    rng = numpy_rng(seed, "bench_preprocess")
    base = [make_radiograph(rng, 1600, 1300) for _ in range(8)]
    paths = []
    for i in range(n):
        w, h = int(rng.integers(1400, 1601)), int(rng.integers(1100, 1301))
        x0, y0 = int(rng.integers(0, 1601 - w)), int(rng.integers(0, 1301 - h))
        arr = base[i % len(base)][y0 : y0 + h, x0 : x0 + w]
        path = directory / f"IM-{i:04d}.jpeg"
        Image.fromarray(arr, mode="L").save(path, quality=int(rng.integers(85, 96)))
        paths.append(path)
    return paths


def plain(paths: list[Path], size: int) -> None:
    for p in paths:
        with Image.open(p) as img:
            np.asarray(img.convert("L").resize((size, size), Image.Resampling.BILINEAR))


def _cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) and of its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, repeats: int) -> tuple[float, float]:
    """Best wall-clock seconds of ``repeats`` runs, and the CPU seconds of that run.

    On a shared machine the wall clock depends on what else runs; the CPU time does much less, so
    ``n / cpu`` images per CPU-second, times the cores, projects the throughput on an idle machine.
    """
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), _cpu_seconds()
        fn()
        best = min(best, (time.perf_counter() - wall, _cpu_seconds() - cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of JPEGs (default 1000)")
    parser.add_argument("--size", type=int, default=128, help="output side (default 128)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration; best is kept")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as tmp:
        t0 = time.perf_counter()
        paths = generate(Path(tmp), args.n)
        mb = sum(p.stat().st_size for p in paths) / 1e6
        print(
            f"generated {args.n} JPEGs ({mb / args.n * 1000:.0f} kB each on average) in "
            f"{time.perf_counter() - t0:.1f} s; cores {os.cpu_count()}, "
            f"load average before timing {os.getloadavg()[0]:.2f}"
        )
        for p in paths:  # warm the page cache so every configuration reads from memory
            p.read_bytes()

        results = {
            "plain open+convert+resize, serial": timed(lambda: plain(paths, args.size), args.repeats),
            "draft decode, serial": timed(lambda: [decode_image(p, args.size) for p in paths], args.repeats),
        }
        for executor in ("thread", "process"):
            label = f"draft decode, {args.workers} {executor}{'es' if executor == 'process' else 's'}"
            results[label] = timed(
                lambda ex=executor: preprocess_images(
                    paths, args.size, workers=args.workers, executor=ex, quiet=True
                ),
                args.repeats,
            )
        base = results["plain open+convert+resize, serial"][0]
        print(f"\n{'configuration':36s} {'images/s':>9s} {'speed-up':>9s} {'img/CPU-s':>10s} {'CPU use':>8s}")
        for label, (wall, cpu) in results.items():
            print(
                f"{label:36s} {args.n / wall:9.0f} {base / wall:8.1f}x {args.n / cpu:10.0f} {cpu / wall:7.2f}"
            )
        print(
            "img/CPU-s: images per CPU-second (x cores = throughput when the cores are free); "
            "CPU use: cores kept busy (< 1 per worker means waiting for other jobs or for the GIL)"
        )
        print(f"load average after timing {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
