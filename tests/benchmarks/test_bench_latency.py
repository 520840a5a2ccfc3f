"""Forward-pass latency of every registered downsampling operator, for regression gates.

Cases: model size {default study LeNet 1x64x64, published LeNet 1x320x320} x every operator in
``downscalexr.layers.list_downsample()`` (new operators are covered automatically) x memory format
{contiguous, channels_last} x batch size {1, 32}, at one thread. Each input size is its own benchmark
group, so ``make bench-compare`` prints one readable table per size.

This file measures with pytest-benchmark (for saved baselines and ``--benchmark-compare-fail``); the
grid's per-run latency table, with intervals, comes from :func:`downscalexr.latency.measure_latency`.
"""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from downscalexr.latency import MEMORY_FORMATS
from downscalexr.layers import list_downsample
from downscalexr.models import count_params, create_model, forward_flops
from downscalexr.seeding import torch_generator

# model family -> input side; the group names say which study each size belongs to.
SIZES = {"lenet": 64, "downscalexr_lenet": 320}
GROUPS = {
    "lenet": "lenet 1x64x64 (default study)",
    "downscalexr_lenet": "downscalexr_lenet 1x320x320 (published)",
}
BATCH_SIZES = (1, 32)
# Quick mode (CI, plain `pytest`) only checks that every case runs: there the 320x320 batch-32 cases run
# at batch 4 (same shapes per image and code paths, an eighth of the ~15 s they would add to `make test`).
QUICK_BATCH_CAP = {"downscalexr_lenet": 4}
_TORCH_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}

# Ordered so that consecutive cases share a model (built once, see _model).
CASES = [
    pytest.param(family, op, fmt, b, id=f"{SIZES[family]}-{op}-{fmt}-b{b}")
    for family in SIZES
    for op in list_downsample()
    for fmt in MEMORY_FORMATS
    for b in BATCH_SIZES
]


@functools.lru_cache(maxsize=1)
def _model(family: str, op: str) -> tuple[nn.Module, float, int]:
    """The model in eval mode with its forward FLOPs per image and parameter count."""
    model = create_model(family, downsample=op, seed=0).eval()
    side = SIZES[family]
    return model, forward_flops(model, (1, side, side)), count_params(model)


# Full mode: warm up once (first-call allocation and kernel selection), keep the collector out of the
# timed rounds, and take at least 7 rounds so that a median exists even for the 320x320 batch-32 cases
# (0.1-1 s per pass); faster cases fill 0.5 s.
@pytest.mark.benchmark(disable_gc=True, warmup=True, warmup_iterations=1, min_rounds=7, max_time=0.5)
@pytest.mark.parametrize(("family", "op", "memory_format", "batch_size"), CASES)
def test_forward_latency(
    benchmark, run_benchmark, bench_quick, one_thread, family, op, memory_format, batch_size
):
    model, flops, params = _model(family, op)
    side = SIZES[family]
    if bench_quick:
        batch_size = min(batch_size, QUICK_BATCH_CAP.get(family, batch_size))
    torch_format = _TORCH_FORMATS[memory_format]
    x = torch.randn((batch_size, 1, side, side), generator=torch_generator(0, "bench-input", batch_size))
    x = x.contiguous(memory_format=torch_format)  # (B, 1, H, W), created outside the timer
    benchmark.group = GROUPS[family]
    benchmark.extra_info.update(
        variant=op,
        model=family,
        input=f"1x{side}x{side}",
        batch_size=batch_size,
        quick_mode=bench_quick,
        memory_format=memory_format,
        threads=one_thread,
        flops_per_image=flops,
        params=params,
        torch=torch.__version__,
    )
    with torch.no_grad():
        model.to(memory_format=torch_format)
    try:
        with torch.inference_mode():
            out = run_benchmark(model, x)
    finally:
        with torch.no_grad():
            model.to(memory_format=torch.contiguous_format)
    assert out.shape[0] == batch_size and torch.isfinite(out).all()
