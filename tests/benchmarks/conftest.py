"""Fixtures for the pytest-benchmark suite: quick vs full mode, one thread, timed-call helper.

Full mode (``make bench``, ``make bench-compare``: ``--benchmark-only`` outside CI) uses pytest-benchmark's
own calibration, with the settings of each test's ``benchmark`` marker. Quick mode (``CI=true``, or any run
without ``--benchmark-only``, such as the plain ``pytest`` of ``make test``) calls each benchmarked function
once through a disabled fixture, as ``--benchmark-disable`` would: every case is exercised (shapes, memory
formats, every registered operator) in seconds, nothing is gated on time, and no one-round timing table
clutters the test output.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch


def quick_mode(config: pytest.Config) -> bool:
    """True in CI (``CI=true``) and whenever ``--benchmark-only`` was not given."""
    in_ci = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")
    return in_ci or not config.getoption("benchmark_only", default=False)


@pytest.fixture
def bench_quick(request: pytest.FixtureRequest) -> bool:
    return quick_mode(request.config)


@pytest.fixture
def one_thread():
    # Latency is compared at one intra-op thread, as in the grid; the caller's setting comes back after.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield 1
    torch.set_num_threads(before)


@pytest.fixture
def run_benchmark(benchmark, bench_quick) -> Callable[..., object]:
    """``run_benchmark(fn, *args)``: time ``fn(*args)`` fully, or call it once in quick mode."""

    def run(fn: Callable[..., object], *args: object) -> object:
        if bench_quick:
            benchmark.disabled = True  # pytest-benchmark then calls the target once, untimed
            return benchmark.pedantic(fn, args=args, rounds=1, iterations=1, warmup_rounds=0)
        return benchmark(fn, *args)

    return run
