"""CPU inference latency of a model, measured so that the figures can carry intervals.

What the published single-run studies did wrong (one timing per epoch, data loading inside the timer,
no warm-up, no thread control) is fixed here by construction:

- the model runs in ``eval()`` mode under ``torch.inference_mode()``;
- the synthetic input is drawn once per batch size from a seeded generator, outside the timer;
- the thread count is set for the call and restored afterwards, also when the model raises;
- warm-up passes (first-call allocation, kernel selection) are run and discarded;
- every timed repeat is one forward pass timed with ``time.perf_counter_ns`` (or, on a shared
  machine, the calling thread's CPU time: ``clock="thread_cpu"``), with the garbage
  collector paused so that a collection does not land inside a repeat;
- repeats continue until both a count and a minimum total timed duration are reached;
- the model's training mode, parameters and memory format are restored afterwards;
- before every timed pass a fixed reference workload (:func:`reference_workload`, six small
  matrix products, ~0.35 ms) is timed too, followed by an untimed pass when passes are short enough
  for the probe to have evicted the model's data (:data:`REWARM_BELOW_SECONDS`). On a shared or
  virtualised CPU the machine's speed drifts by 20-40 % over seconds, so a run's repeats sample one
  moment of it; the reference's timings say how fast the machine was, and the analysis
  (:mod:`analysis.stats.latency`) uses them as a control variate to put runs measured at different moments
  on one scale.

The median's 95 % interval is the distribution-free order-statistic interval: with ``n`` sorted
timings ``t(1) <= ... <= t(n)``, the number of timings below the true median is Binomial(n, 1/2), so
``[t(k), t(n-k+1)]`` covers the median with probability ``1 - 2 P(B <= k-1)``; ``k`` is the largest
rank keeping that coverage at or above the requested level. It needs no assumption about the shape of
the timing distribution (which is skewed, and sometimes bimodal), and its exact coverage is reported.
Below 6 repeats no such interval reaches 95 %, and the bounds are NaN.
"""

from __future__ import annotations

import functools
import gc
import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from downscalexr.schema import LATENCY
from downscalexr.seeding import torch_generator

MEMORY_FORMATS = ("contiguous", "channels_last")
# "wall": time.perf_counter_ns, what a user waits (the default). "thread_cpu": time.thread_time_ns, the
# CPU time of the calling thread only; at one intra-op thread all the work runs on that thread, so this
# clock leaves out time the scheduler gave to other processes (not their cache or memory-bandwidth
# interference). Use it to compare operators on a shared machine; it is meaningless above one thread.
CLOCKS = {"wall": time.perf_counter_ns, "thread_cpu": time.thread_time_ns}
_TORCH_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
ROW_COLUMNS = {name: dtype for name, dtype in LATENCY.items() if name != "run_id"}

# Defaults sized for the default study model (LeNet 32/64 channels, 1x64x64 input, one core): a call for
# batch sizes 1 and 32 in both memory formats costs about 0.3 s (strided), 0.8 s (avgpool), 0.9 s (maxpool)
# and up to 1.7 s (maxblurpool, softpool) of CPU; batch 32 in NCHW dominates. Nine repeats give the
# interval [t(2), t(8)] (96.1 % coverage), which also discards one straggler on either side.
# Batch 1 (~1-2 ms per pass) reaches 25-50 repeats through ``min_seconds``. Figures: docs/benchmarks.md.
DEFAULT_WARMUP = 1
DEFAULT_REPEATS = 9
DEFAULT_MIN_SECONDS = 0.05
# Reference workload: REFERENCE_REPEATS products of two REFERENCE_SIZE x REFERENCE_SIZE float32 matrices into
# a preallocated output, about 0.35 ms and 300 kB on the development machine. It allocates nothing: a
# probe that allocated (a convolution plus pooling) ran 10-13 % slower after the pooling models' batch-32
# passes than after strided's, a model-dependent offset that would bias the adjustment
# (docs/benchmarks.md). The untimed call before each timed one brings its matrices back into cache.
REFERENCE_SIZE = 160
REFERENCE_REPEATS = 6
# The probe evicts part of a small model's working set: timed right after it, batch-1 passes of the
# default LeNets ran 1.5-4.6 % slower than after another pass (batch 32: 0-0.6 %, within noise). So when
# a pass is short enough for its data to stay in cache between passes, an untimed pass follows the probe
# and restores that state; long passes skip it, where it would double the cost for nothing.
REWARM_BELOW_SECONDS = 0.005


@dataclass(frozen=True)
class LatencyResult:
    """Timings of one :func:`measure_latency` call.

    Attributes
    ----------
    rows : pandas.DataFrame
        One row per batch size x memory format x repeat, with the columns of the ``latency`` table less
        ``run_id``: batch_size, threads, memory_format, repeat, seconds (one forward pass of the batch).
    summary : pandas.DataFrame
        One row per batch size x memory format: n_repeats, total_seconds, median_s, q25_s, q75_s,
        iqr_s, median_lo_s and median_hi_s (interval of the median), ci_coverage (its exact coverage),
        ci_halfwidth_rel (the larger distance from the median to a bound, as a fraction of the median),
        images_per_s (batch size / median).
    environment : dict
        What changes timings: torch version, threads, memory formats, allocator variables, CPU model,
        load average before and after, the measurement settings.
    """

    rows: pd.DataFrame
    summary: pd.DataFrame
    environment: dict = field(default_factory=dict)


def median_interval(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Distribution-free interval of the median from order statistics.

    Parameters
    ----------
    samples : sequence of float
        Independent draws (here: timings of repeats), any order.
    confidence : float
        Minimum coverage, in (0, 1).

    Returns
    -------
    (lower, upper, coverage) : tuple of float
        ``lower = t(k)`` and ``upper = t(n-k+1)`` of the sorted samples, and the exact coverage
        ``1 - 2 P(B <= k-1)``, ``B ~ Binomial(n, 1/2)``. All NaN when ``n`` is too small for any
        interval to reach ``confidence``.

    Examples
    --------
    >>> lo, hi, cov = median_interval(range(1, 10))  # n = 9: ranks 2 and 8
    >>> (lo, hi, round(cov, 4))
    (2.0, 8.0, 0.9609)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    x = np.sort(np.asarray(samples, dtype=float))
    n = x.size
    k, coverage = _median_ranks(n, confidence)
    if k < 1:
        return math.nan, math.nan, math.nan
    return float(x[k - 1]), float(x[n - k]), coverage


@functools.lru_cache(maxsize=1024)
def _median_ranks(n: int, confidence: float) -> tuple[int, float]:
    """Largest rank k with P(B <= k-1) <= (1-confidence)/2, B ~ Binomial(n, 1/2), and the coverage.

    k = 0 means no interval reaches ``confidence``.
    """
    from scipy import stats  # here: scipy.stats takes ~0.6 s to import, paid by every grid worker

    alpha_half = (1 - confidence) / 2
    ranks = np.arange(0, n // 2 + 2)
    ok = stats.binom.cdf(ranks - 1, n, 0.5) <= alpha_half
    k = int(ranks[ok].max()) if n else 0
    coverage = 1 - 2 * float(stats.binom.cdf(k - 1, n, 0.5)) if k else math.nan
    return k, coverage


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    batch_sizes: int | Iterable[int] = (1, 32),
    threads: int = 1,
    memory_format: str | Iterable[str] = MEMORY_FORMATS,
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    seed: int = 0,
    clock: str = "wall",
    reference: bool = True,
) -> LatencyResult:
    """Time forward passes of ``model`` on CPU, per batch size and memory format.

    Parameters
    ----------
    model : torch.nn.Module
        Any module taking a ``(B, C, H, W)`` float tensor. Its training mode, parameters and memory
        format are the same after the call as before.
    input_shape : (C, H, W)
        Shape of one image, without the batch dimension.
    batch_sizes : int or iterable of int
        Positive batch sizes, timed in the order given.
    threads : int
        ``torch.set_num_threads`` for the call; the previous value is restored afterwards.
    memory_format : {"contiguous", "channels_last"} or an iterable of them
        ``channels_last`` converts both model and input to NHWC. Default: both, contiguous first.
    warmup : int
        Untimed forward passes per batch size and memory format before timing.
    repeats : int
        Minimum number of timed forward passes per batch size and memory format.
    min_seconds : float
        Minimum total wall-clock duration of the timed passes per batch size and memory format;
        repeats continue until both ``repeats`` and ``min_seconds`` are reached.
    seed : int
        Seed of the synthetic input (drawn from a dedicated generator; global RNG state is untouched).
    clock : {"wall", "thread_cpu"}
        ``wall`` (``time.perf_counter_ns``) or ``thread_cpu`` (``time.thread_time_ns``, CPU time of the
        calling thread; needs ``threads=1``): see :data:`CLOCKS`. ``min_seconds`` is always wall time
        (a CPU clock could stall it for a model that waits instead of computing).
    reference : bool
        Time :func:`reference_workload` on the same clock right before every timed pass (column
        ``reference_seconds``; NaN when False). It is not counted in ``min_seconds``.

    Returns
    -------
    LatencyResult

    Raises
    ------
    ValueError
        For a non-positive batch size, an unknown memory format, a malformed ``input_shape`` or
        non-positive ``threads``/``repeats``, an unknown clock, or ``thread_cpu`` with ``threads > 1``.

    Examples
    --------
    >>> from downscalexr.models import create_model
    >>> model = create_model("lenet_gap", downsample="maxpool", seed=0)
    >>> res = measure_latency(model, (1, 64, 64), batch_sizes=(2,), repeats=3, min_seconds=0)
    >>> res.rows.columns.tolist()
    ['batch_size', 'threads', 'memory_format', 'repeat', 'seconds', 'reference_seconds']
    >>> len(res.summary)  # one batch size x two memory formats
    2
    """
    shape = _check_input_shape(input_shape)
    sizes = _check_batch_sizes(batch_sizes)
    formats = _check_memory_formats(memory_format)
    _check_positive_int("threads", threads)
    _check_positive_int("repeats", repeats)
    if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    if not (isinstance(min_seconds, (int, float)) and math.isfinite(min_seconds) and min_seconds >= 0):
        raise ValueError(f"min_seconds must be a finite number >= 0, got {min_seconds!r}")

    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}; choose from {', '.join(CLOCKS)}")
    if clock == "thread_cpu" and threads != 1:
        raise ValueError(
            f"clock='thread_cpu' counts only the calling thread's CPU time, so it needs threads=1 "
            f"(got threads={threads}); use clock='wall' for several threads"
        )

    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    environment = _environment(threads, formats, warmup, repeats, min_seconds)
    environment["clock"] = clock
    environment["reference_workload"] = reference_description() if reference else None
    records: list[tuple[int, int, str, int, float, float]] = []

    was_training = model.training
    saved = _snapshot(model)
    old_threads = torch.get_num_threads()
    gc_was_enabled = gc.isenabled()
    try:
        torch.set_num_threads(threads)
        model.eval()
        # Keep the collector off while timing: a collection inside a repeat would be timed as model
        # latency. (No gc.collect() first: in a process holding torch and pandas it costs ~0.3 s.)
        gc.disable()
        # Inputs are built before any timing, from a stream named by batch size, so every format
        # sees the same values.
        probe = reference_workload(seed) if reference else None
        inputs = {}
        for b in sizes:
            generator = torch_generator(seed, "latency-input", b)
            inputs[b] = torch.randn((b, *shape), generator=generator, dtype=dtype)
        for fmt in formats:
            torch_format = _TORCH_FORMATS[fmt]
            with torch.no_grad():
                model.to(memory_format=torch_format)
            for b in sizes:
                x = inputs[b].contiguous(memory_format=torch_format)
                timings = _time_forward(model, x, warmup, repeats, min_seconds, CLOCKS[clock], probe)
                for rep, (seconds, ref_seconds) in enumerate(timings):
                    records.append((b, threads, fmt, rep, seconds, ref_seconds))
    finally:
        if gc_was_enabled:
            gc.enable()
        _restore(model, saved)
        model.train(was_training)
        torch.set_num_threads(old_threads)
    environment["load_average_after"] = _load_average()

    rows = pd.DataFrame.from_records(records, columns=list(ROW_COLUMNS)).astype(ROW_COLUMNS)
    return LatencyResult(rows=rows, summary=summarize_latency(rows), environment=environment)


def summarize_latency(rows: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per batch size x memory format (x threads): median, IQR, interval of the median, images/s.

    ``rows`` has the columns of :attr:`LatencyResult.rows` (a ``latency`` table with ``run_id`` works
    too, pooled over runs). See :class:`LatencyResult` for the output columns.
    """
    keys = ["batch_size", "memory_format", "threads"]
    out = []
    for (b, fmt, thr), group in rows.groupby(keys, sort=False, observed=True):
        s = group["seconds"].to_numpy(dtype=float)
        q25, med, q75 = np.quantile(s, [0.25, 0.5, 0.75])
        lo, hi, coverage = median_interval(s, confidence)
        out.append(
            {
                "batch_size": int(b),
                "memory_format": str(fmt),
                "threads": int(thr),
                "n_repeats": int(s.size),
                "total_seconds": float(s.sum()),
                "median_s": float(med),
                "q25_s": float(q25),
                "q75_s": float(q75),
                "iqr_s": float(q75 - q25),
                "median_lo_s": lo,
                "median_hi_s": hi,
                "ci_coverage": coverage,
                "ci_halfwidth_rel": float(max(hi - med, med - lo) / med) if med > 0 else math.nan,
                "images_per_s": float(b / med) if med > 0 else math.inf,
                "reference_median_s": _nan_median(group["reference_seconds"])
                if "reference_seconds" in group
                else math.nan,
            }
        )
    return pd.DataFrame(out)


def reference_workload(seed: int = 0) -> Callable[[], None]:
    """A fixed small workload whose run time tracks the machine's current speed.

    Returns a callable doing :data:`REFERENCE_REPEATS` products of two fixed
    :data:`REFERENCE_SIZE`-square float32 matrices into a preallocated output (on the thread count set by
    the caller). Every call does identical work and allocates nothing, so only the machine's speed, not
    the state the timed model left behind, changes its time.
    """
    generator = torch_generator(seed, "latency-reference")
    a = torch.randn((REFERENCE_SIZE, REFERENCE_SIZE), generator=generator)
    b = torch.randn((REFERENCE_SIZE, REFERENCE_SIZE), generator=generator)
    out = torch.empty((REFERENCE_SIZE, REFERENCE_SIZE))

    def run() -> None:
        with torch.inference_mode():
            for _ in range(REFERENCE_REPEATS):
                torch.mm(a, b, out=out)

    return run


def reference_description() -> str:
    """What :func:`reference_workload` computes, for the environment record."""
    n = REFERENCE_SIZE
    return f"{REFERENCE_REPEATS} x torch.mm of two {n}x{n} float32 matrices into a preallocated output"


def _time_forward(
    model: nn.Module,
    x: torch.Tensor,
    warmup: int,
    repeats: int,
    min_seconds: float,
    now: Callable[[], int],
    probe: Callable[[], None] | None = None,
) -> list[tuple[float, float]]:
    """(seconds, reference seconds) of each timed forward pass on clock ``now``.

    Warm-up passes run first and are not returned. ``probe`` (the reference workload) is timed before
    each timed pass; when the previous pass took under :data:`REWARM_BELOW_SECONDS`, an untimed pass
    follows the probe. Without a probe the reference seconds are NaN. Stops once there are ``repeats``
    passes and the timed passes (not the probes) took ``min_seconds`` of wall time.
    """
    min_ns = int(min_seconds * 1e9)
    times: list[tuple[float, float]] = []
    wall_ns = 0
    last_pass_ns = None  # wall time of the latest pass, to decide whether to re-warm after the probe
    with torch.inference_mode():
        for _ in range(warmup):
            start = time.perf_counter_ns()
            model(x)
            last_pass_ns = time.perf_counter_ns() - start
            if probe is not None:
                probe()
        wall = now is time.perf_counter_ns
        while len(times) < repeats or wall_ns < min_ns:
            ref_seconds = math.nan
            if probe is not None:
                probe()  # untimed: brings the probe's data back into cache after the last model pass
                start = now()
                probe()
                ref_seconds = (now() - start) / 1e9
                if last_pass_ns is None or last_pass_ns < REWARM_BELOW_SECONDS * 1e9:
                    model(x)  # untimed: puts a small model's data back into cache after the probe
            wall_start = time.perf_counter_ns()
            start = now()
            model(x)
            elapsed = now() - start
            last_pass_ns = time.perf_counter_ns() - wall_start
            # On the wall clock the budget is the timed passes themselves, so the recorded seconds
            # always add up to min_seconds; on the CPU clock it is the wall time around them.
            wall_ns += elapsed if wall else last_pass_ns
            times.append((elapsed / 1e9, ref_seconds))
    return times


def _nan_median(values: pd.Series) -> float:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def _snapshot(model: nn.Module) -> list[tuple[nn.Module, str, str, torch.Tensor, torch.Tensor]]:
    # ``Module.to(memory_format=...)`` swaps in new tensors; keeping the originals lets us put back
    # exactly what was there (storage, strides, values), whatever the model's format was before.
    saved = []
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None:
                saved.append((module, "param", name, p, p.data))
        for name, buf in module._buffers.items():
            if buf is not None:
                saved.append((module, "buffer", name, buf, buf))
    return saved


def _restore(model: nn.Module, saved: list[tuple[nn.Module, str, str, torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for module, kind, name, obj, data in saved:
            if kind == "param":
                obj.data = data  # also covers torch's option to replace Parameter objects on conversion
                module._parameters[name] = obj
            else:
                module._buffers[name] = obj


def _environment(threads: int, formats: tuple[str, ...], warmup: int, repeats: int, min_seconds: float):
    allocator = {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")}
    for key in ("LD_PRELOAD", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if key in os.environ:
            allocator[key] = os.environ[key]
    return {
        "torch_version": torch.__version__,
        "threads": threads,
        "interop_threads": torch.get_num_interop_threads(),
        "memory_formats": list(formats),
        "allocator_env": allocator,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "warmup": warmup,
        "repeats": repeats,
        "min_seconds": min_seconds,
        "load_average_before": _load_average(),
    }


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (Linux), else :func:`platform.processor`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(input_shape) if isinstance(input_shape, Iterable) else (input_shape,)
    ok = len(shape) == 3 and all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in shape
    )
    if not ok:
        raise ValueError(
            f"input_shape must be the shape of one image (C, H, W) without the batch dimension, "
            f"three positive integers; got {input_shape!r}"
        )
    return tuple(int(d) for d in shape)


def _check_batch_sizes(batch_sizes: int | Iterable[int]) -> tuple[int, ...]:
    sizes = (batch_sizes,) if isinstance(batch_sizes, (int, np.integer)) else tuple(batch_sizes)
    if not sizes:
        raise ValueError("batch_sizes is empty; give at least one positive batch size, e.g. (1, 32)")
    for b in sizes:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"batch sizes must be positive integers, got {b!r} in {sizes}")
    return tuple(dict.fromkeys(int(b) for b in sizes))


def _check_memory_formats(memory_format: str | Iterable[str]) -> tuple[str, ...]:
    formats = (memory_format,) if isinstance(memory_format, str) else tuple(memory_format)
    if not formats:
        raise ValueError(f"memory_format is empty; choose from {', '.join(MEMORY_FORMATS)}")
    for fmt in formats:
        if fmt not in MEMORY_FORMATS:
            raise ValueError(f"unknown memory format {fmt!r}; choose from {', '.join(MEMORY_FORMATS)}")
    return tuple(dict.fromkeys(formats))
