"""Latency ratios between variants: ratio of medians with a two-level bootstrap interval.

Latency is compared on a log scale: a ratio of medians (variant / reference) of the per-call time. The
bootstrap resamples seeds (jointly for every variant, keeping the pairing of the design) and then the
timing repeats within each run, so both run-to-run and repeat-to-repeat variation enter the interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.bootstrap import ok_runs
from downscalexr.seeding import numpy_rng

CHUNK = 500  # bootstrap replicates evaluated at once (bounds memory, not a loop over single resamples)


def _cube(frame: pd.DataFrame, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Milliseconds as (seeds, runs per seed, repeats), NaN-padded, and the repeat count of each run."""
    runs = frame.groupby(["seed", "run_id"], sort=True)["ms"].apply(lambda s: s.to_numpy())
    per_seed = {s: [] for s in seeds}
    for (s, _), values in runs.items():
        per_seed[s].append(values)
    n_runs = max(1, max(len(v) for v in per_seed.values()))
    n_rep = max(len(x) for v in per_seed.values() for x in v)
    cube = np.full((seeds.size, n_runs, n_rep), np.nan)
    counts = np.zeros((seeds.size, n_runs), dtype=int)
    for i, s in enumerate(seeds):
        for j, values in enumerate(per_seed[s]):
            cube[i, j, : values.size] = values
            counts[i, j] = values.size
    return cube, counts


def _boot_medians(
    cube: np.ndarray, counts: np.ndarray, seed_idx: np.ndarray, uniform: np.ndarray
) -> np.ndarray:
    """Median of each replicate: seeds ``seed_idx`` (B, S), repeats drawn by ``uniform`` (B, S, J, K)."""
    n = counts[seed_idx]  # (B, S, J)
    rep = np.floor(uniform * n[..., None]).astype(int)  # (B, S, J, K), in [0, n)
    values = cube[seed_idx[..., None, None], np.arange(cube.shape[1])[None, None, :, None], rep]
    valid = np.arange(cube.shape[2])[None, None, None, :] < n[..., None]
    if valid.all():  # equal repeats everywhere: the plain median is several times faster
        return np.median(values.reshape(len(seed_idx), -1), axis=1)
    return np.nanmedian(np.where(valid, values, np.nan).reshape(len(seed_idx), -1), axis=1)


def latency_ratios(
    latency: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    reference: str = "avgpool",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Median latency per call and its ratio to the reference, per batch size and memory format.

    Returns
    -------
    DataFrame
        Columns ``variant, reference, batch_size, memory_format, median_ms, median_low, median_high,
        ratio, low, high, n_seeds``; the reference's own row has ratio 1. A ratio below 1 means faster
        than the reference. ``median_low``/``median_high`` bound the variant's own median latency, from
        the same two-level bootstrap (the precision of the latency estimate itself).

    Raises
    ------
    ValueError
        If there are no latency rows of ok runs or the reference has none.
    """
    ok = ok_runs(runs)[["run_id", "variant", "seed"]]
    data = latency.merge(ok, on="run_id", how="inner")
    if data.empty:
        raise ValueError("no latency rows belong to ok runs; was the latency benchmark run?")
    found = sorted(data["variant"].unique())
    if reference not in found:
        raise ValueError(f"reference {reference!r} has no latency rows; choose from {found}")
    data = data.assign(ms=data["seconds"].to_numpy(dtype=float) * 1000.0)
    seeds = np.sort(data["seed"].unique())
    rows = []
    for (batch, fmt), group in data.groupby(["batch_size", "memory_format"], sort=True):
        rng = numpy_rng(seed, "latency_ratios", int(batch), str(fmt))
        cubes = {v: _cube(g, seeds) for v, g in group.groupby("variant", sort=True)}
        if reference not in cubes:
            continue
        boot = {v: np.empty(n_boot) for v in cubes}
        for start in range(0, n_boot, CHUNK):
            size = min(CHUNK, n_boot - start)
            seed_idx = rng.integers(0, seeds.size, size=(size, seeds.size))  # shared by every variant
            for v, (cube, counts) in cubes.items():
                uniform = rng.random((size, *cube.shape))
                boot[v][start : start + size] = _boot_medians(cube, counts, seed_idx, uniform)
        ref_median = float(group.loc[group["variant"] == reference, "ms"].median())
        for v in cubes:
            median = float(group.loc[group["variant"] == v, "ms"].median())
            median_low, median_high = np.nanquantile(boot[v], [alpha / 2, 1 - alpha / 2])
            log_ratio = np.log(boot[v]) - np.log(boot[reference])
            low, high = np.exp(np.nanquantile(log_ratio, [alpha / 2, 1 - alpha / 2]))
            if v == reference:
                low = high = 1.0
            n_seeds = int(group.loc[group["variant"] == v, "seed"].nunique())
            rows.append({"variant": v, "reference": reference, "batch_size": int(batch), "memory_format": fmt,
                         "median_ms": median, "median_low": float(median_low),
                         "median_high": float(median_high), "ratio": median / ref_median, "low": float(low),
                         "high": float(high), "n_seeds": n_seeds})  # fmt: skip
    columns = [
        "variant",
        "reference",
        "batch_size",
        "memory_format",
        "median_ms",
        "median_low",
        "median_high",
        "ratio",
        "low",
        "high",
        "n_seeds",
    ]
    return pd.DataFrame(rows, columns=columns)
