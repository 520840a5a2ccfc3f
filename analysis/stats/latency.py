"""Latency ratios between variants: ratio of medians with a two-level bootstrap interval.

Latency is compared on a log scale: a ratio of medians (variant / reference) of the per-call time. The
bootstrap resamples seeds (jointly for every variant, keeping the pairing of the design) and then the
timing repeats within each run, so both run-to-run and repeat-to-repeat variation enter the interval.
Seeds, runs and repeats are sorted before resampling, so the rows' order in the tables never matters.

**Speed adjustment (control variate).** On a shared or virtualised CPU the machine's speed drifts by
20-40 % over seconds, and a run's repeats (a fraction of a second) sample one moment of it, so run
medians of one architecture scatter by 10-20 % and often in two modes. Every timed pass is preceded by
a fixed reference workload (``reference_seconds``, see :func:`downscalexr.latency.reference_workload`)
that slows down with the machine. Per variant, batch size and memory format, each repeat's time ``t``
with reference time ``r`` before it is rescaled as

    log t_adj = log t - beta (log r - x_bar),

where ``beta`` is the OLS slope of the runs' log median times on their log median reference times
(about 0.6-0.9: the models are partly memory-bound and slow down less than the reference), and
``x_bar`` is the mean log median reference time over every run of the study (all variants, batch
sizes and formats), so every variant is put on one speed: the study's typical one. The estimate is the
median of the adjusted repeats. ``x_bar`` is held fixed in the bootstrap: the interval is for the
latency at this study's mean speed (it matters for ratios only where the variants' slopes differ).
Rescaling each repeat by its own reference (rather than the run by its median) also follows drift
within a run. The bootstrap re-fits ``beta`` in every resample, so its
uncertainty is in the interval. The raw (unadjusted) medians and intervals are reported beside the
adjusted ones. A batch size x memory format block is adjusted only when every repeat in it has its
reference timing and each variant has at least :data:`MIN_ADJUST_RUNS` runs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.intervals import percentile_interval
from downscalexr.seeding import numpy_rng

CHUNK = 500  # bootstrap replicates evaluated at once (bounds memory, not a loop over single resamples)
MIN_ADJUST_RUNS = 8  # fewer runs than this give too noisy a slope to adjust by
LATENCY_COLUMNS = [
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
    "adjusted",
    "slope",
    "speed_ms",
    "raw_median_ms",
    "raw_median_low",
    "raw_median_high",
    "raw_ratio",
    "raw_low",
    "raw_high",
]


def _cube(frame: pd.DataFrame, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Milliseconds as (seeds, runs per seed, repeats), NaN-padded; the repeat count of each run; and
    the log reference time timed before each repeat, same shape, NaN where absent."""
    per_seed: dict = {s: [] for s in seeds}
    # repeats in their measured order, whatever the table's row order (the bootstrap draws positions)
    frame = frame.sort_values(["seed", "run_id", "repeat"], kind="stable")
    for (s, _), g in frame.groupby(["seed", "run_id"], sort=True):
        per_seed[s].append((g["ms"].to_numpy(dtype=float), np.log(g["reference_ms"].to_numpy(dtype=float))))
    n_runs = max(1, max(len(v) for v in per_seed.values()))
    n_rep = max(x.size for v in per_seed.values() for x, _ in v)
    cube = np.full((seeds.size, n_runs, n_rep), np.nan)
    probe = np.full_like(cube, np.nan)
    counts = np.zeros((seeds.size, n_runs), dtype=int)
    for i, s in enumerate(seeds):
        for j, (values, log_ref) in enumerate(per_seed[s]):
            cube[i, j, : values.size] = values
            probe[i, j, : values.size] = log_ref
            counts[i, j] = values.size
    return cube, counts, probe


def _slopes(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """OLS slope of ``y`` on ``x`` along the last axes (leading axis: replicates), ignoring NaN pairs."""
    ok = np.isfinite(y) & np.isfinite(x)
    n = ok.reshape(len(y), -1).sum(axis=1)
    axes = tuple(range(1, y.ndim))
    xm = np.where(ok, x, 0.0).sum(axis=axes) / np.maximum(n, 1)
    ym = np.where(ok, y, 0.0).sum(axis=axes) / np.maximum(n, 1)
    expand = (slice(None),) + (None,) * (y.ndim - 1)
    dx = np.where(ok, x - xm[expand], 0.0)
    dy = np.where(ok, y - ym[expand], 0.0)
    sxx = (dx * dx).sum(axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sxx > 0, (dx * dy).sum(axis=axes) / sxx, 0.0)


def _run_log_medians(cube: np.ndarray) -> np.ndarray:
    """Log of each run's median along the last axis (seeds, runs), NaN for padding."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN padding rows
        return np.log(np.nanmedian(cube, axis=2))


def _boot_medians(
    cube: np.ndarray,
    counts: np.ndarray,
    seed_idx: np.ndarray,
    uniform: np.ndarray,
    probe: np.ndarray | None = None,
    center: float = 0.0,
    run_medians: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Median of each replicate: seeds ``seed_idx`` (B, S), repeats drawn by ``uniform`` (B, S, J, K).

    Returns the raw medians and, with ``probe`` (log reference time before each repeat, shaped like
    ``cube``), the speed-adjusted ones (else None): every replicate re-fits the slope of run medians on
    run reference medians over its resampled runs, and rescales each drawn repeat by its own reference
    time to the speed ``center`` before taking the median. ``run_medians`` (:func:`_run_summaries`
    of the cube and probe) must come with ``probe``.
    """
    n_seeds, n_runs, n_rep = cube.shape
    n = counts[seed_idx]  # (B, S, J)
    rep = np.floor(uniform * n[..., None]).astype(np.intp)  # (B, S, J, K), in [0, n)
    # one flat index into the cube: much faster than three broadcast fancy indices
    flat = (seed_idx[..., None] * n_runs + np.arange(n_runs))[..., None] * n_rep + rep
    values = cube.ravel()[flat]
    valid = np.arange(n_rep)[None, None, None, :] < n[..., None]
    equal = bool(valid.all())  # equal repeats everywhere: the plain median is several times faster

    def median(v: np.ndarray) -> np.ndarray:
        if equal:
            return np.median(v.reshape(len(seed_idx), -1), axis=1)
        return _row_nanmedian(np.where(valid, v, np.nan).reshape(len(seed_idx), -1))

    if probe is None:
        return median(values), None
    run_y, run_x = run_medians
    beta = _slopes(run_y[seed_idx], run_x[seed_idx])
    adjusted = values * np.exp(-beta[:, None, None, None] * (probe.ravel()[flat] - center))
    return median(values), median(adjusted)


def _row_nanmedian(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=1)`` of a 2-D array, by one vectorised sort (NaN sorts last).

    numpy's own nanmedian loops over rows in Python here, which made it most of the bootstrap's time.
    """
    ordered = np.sort(a, axis=1)
    n = (~np.isnan(a)).sum(axis=1)  # +-inf count and sort like any value, as in numpy
    rows = np.arange(a.shape[0])
    low = ordered[rows, np.maximum(n - 1, 0) // 2]
    high = ordered[rows, n // 2]
    return np.where(n > 0, (low + high) / 2, np.nan)


def _run_medians_of_logs(log_values: np.ndarray) -> np.ndarray:
    """Each run's median of values already on the log scale (seeds, runs), NaN for padding."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(log_values, axis=2)


def _run_summaries(cube: np.ndarray, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each run's log median time and median log reference time (seeds, runs): what the slope is fitted on."""
    return _run_log_medians(cube), _run_medians_of_logs(probe)


def _adjusted_point(
    cube: np.ndarray, probe: np.ndarray, center: float, run_medians: tuple[np.ndarray, np.ndarray]
) -> tuple[float, float]:
    """Median of every repeat rescaled to the speed ``center``, and the slope used."""
    run_y, run_x = run_medians
    slope = float(_slopes(run_y[None], run_x[None])[0])
    return float(np.nanmedian(cube * np.exp(-slope * (probe - center)))), slope


def latency_ratios(
    latency: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    reference: str = "avgpool",
    n_boot: int = 10000,
    alpha: float = 0.05,
    seed: int = 0,
    adjust: bool = True,
) -> pd.DataFrame:
    """Median latency per call and its ratio to the reference, per batch size and memory format.

    Parameters
    ----------
    adjust : bool
        Put runs on one machine speed with the reference workload's timings (see the module
        docstring). Blocks without reference timings, or with too few runs, are not adjusted either way.

    Returns
    -------
    DataFrame
        Columns ``variant, reference, batch_size, memory_format, median_ms, median_low, median_high,
        ratio, low, high, n_seeds, adjusted, slope, speed_ms, raw_median_ms, raw_median_low,
        raw_median_high, raw_ratio, raw_low, raw_high``. The reference's own row has ratio 1; a ratio
        below 1 means faster than the reference. ``median_low``/``median_high`` bound the variant's own
        median latency, from the same two-level bootstrap (the precision of the latency estimate
        itself). When ``adjusted`` is True the unprefixed columns are speed-adjusted (to the reference
        workload's typical time ``speed_ms``, with the fitted ``slope``) and ``raw_*`` are not;
        otherwise both are the raw figures.

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
    ref_seconds = data["reference_seconds"] if "reference_seconds" in data else np.nan
    data = data.assign(
        ms=data["seconds"].to_numpy(dtype=float) * 1000.0,
        reference_ms=np.asarray(ref_seconds, dtype=float) * 1000.0,
    )
    center = _speed_center(data)
    seeds = np.sort(data["seed"].unique())
    rows = []
    for (batch, fmt), group in data.groupby(["batch_size", "memory_format"], sort=True):
        rng = numpy_rng(seed, "latency_ratios", int(batch), str(fmt))
        cubes = {v: _cube(g, seeds) for v, g in group.groupby("variant", sort=True)}
        if reference not in cubes:
            continue
        adjusted = adjust and np.isfinite(center) and _adjustable(cubes)
        run_medians = {v: _run_summaries(c, p) for v, (c, _, p) in cubes.items()} if adjusted else {}
        boot = _block_replicates(cubes, seeds.size, rng, n_boot, center, run_medians)
        point = _block_points(cubes, center, run_medians)
        main = "adj" if adjusted else "raw"
        for v in cubes:
            row = {"variant": v, "reference": reference, "batch_size": int(batch), "memory_format": fmt}
            # point[v] is (raw median, adjusted median, slope): column 1 is the raw median unless adjusted
            for prefix, kind, k in (("", main, 1), ("raw_", "raw", 0)):
                medians = (point[v][k], point[reference][k])
                row.update(_ratio_columns(prefix, boot[kind, v], boot[kind, reference], *medians, alpha))
            if v == reference:
                row.update({"low": 1.0, "high": 1.0, "raw_low": 1.0, "raw_high": 1.0})
            row["n_seeds"] = int(group.loc[group["variant"] == v, "seed"].nunique())
            row["adjusted"] = bool(adjusted)
            row["slope"] = point[v][2]
            row["speed_ms"] = float(np.exp(center)) if adjusted else np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=LATENCY_COLUMNS)


def _block_replicates(
    cubes: dict, n_seeds: int, rng: np.random.Generator, n_boot: int, center: float, run_medians: dict
) -> dict:
    """Bootstrap medians of every variant of one batch size x format block, ``{(kind, variant): (B,)}``.

    ``kind`` is ``"raw"``, and also ``"adj"`` (speed-adjusted) when ``run_medians`` is given. Seeds are
    drawn once per replicate for every variant (the pairing of the design).
    """
    adjusted = bool(run_medians)
    kinds = ("raw", "adj") if adjusted else ("raw",)
    boot = {(k, v): np.empty(n_boot) for k in kinds for v in cubes}
    for start in range(0, n_boot, CHUNK):
        size = min(CHUNK, n_boot - start)
        seed_idx = rng.integers(0, n_seeds, size=(size, n_seeds))  # shared by every variant
        for v, (cube, counts, probe) in cubes.items():
            uniform = rng.random((size, *cube.shape))  # the same repeat draws for raw and adjusted
            raw, adj = _boot_medians(
                cube, counts, seed_idx, uniform, probe if adjusted else None, center, run_medians.get(v)
            )
            boot["raw", v][start : start + size] = raw
            if adjusted:
                boot["adj", v][start : start + size] = adj
    return boot


def _block_points(cubes: dict, center: float, run_medians: dict) -> dict:
    """Per variant ``(raw median, adjusted median, slope)``; unadjusted blocks repeat the raw median."""
    point = {}
    for v, (cube, _, probe) in cubes.items():
        raw = float(np.nanmedian(cube))
        if run_medians:
            point[v] = (raw, *_adjusted_point(cube, probe, center, run_medians[v]))
        else:
            point[v] = (raw, raw, np.nan)
    return point


def _ratio_columns(
    prefix: str, boot: np.ndarray, boot_ref: np.ndarray, median: float, ref_median: float, alpha: float
) -> dict:
    """A variant's median with its interval and its ratio to the reference with the ratio's interval."""
    low_m, high_m = percentile_interval(boot, alpha)
    low, high = np.exp(percentile_interval(np.log(boot) - np.log(boot_ref), alpha))
    return {
        f"{prefix}median_ms": median,
        f"{prefix}median_low": float(low_m),
        f"{prefix}median_high": float(high_m),
        f"{prefix}ratio": median / ref_median,
        f"{prefix}low": float(low),
        f"{prefix}high": float(high),
    }


def _speed_center(data: pd.DataFrame) -> float:
    """Mean over every run x batch size x format of the median log reference time (NaN if none).

    The same per-run summary (median of the logs) as the slopes are fitted on.
    """
    logs = np.log(data["reference_ms"].to_numpy(dtype=float))
    keys = [data["run_id"], data["batch_size"], data["memory_format"]]
    per_run = pd.Series(logs, index=data.index).groupby(keys, sort=False).median().to_numpy()
    per_run = per_run[np.isfinite(per_run)]
    return float(per_run.mean()) if per_run.size else np.nan


def _adjustable(cubes: dict) -> bool:
    """Every repeat has its reference timing and every variant has enough runs to fit a slope."""
    for cube, counts, probe in cubes.values():
        present = np.arange(cube.shape[2]) < counts[..., None]
        if (counts > 0).sum() < MIN_ADJUST_RUNS or not np.isfinite(probe[present]).all():
            return False
    return True
