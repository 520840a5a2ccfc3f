"""Tests for downscalexr.latency: the timing protocol, the restored state, planted slowdowns, the interval."""

from __future__ import annotations

import gc
import math
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from downscalexr import schema
from downscalexr.latency import MEMORY_FORMATS, measure_latency, median_interval, summarize_latency
from downscalexr.models import create_model

SHAPE = (1, 16, 16)
RGB = (3, 8, 8)  # for Recorder: with one channel, NCHW and NHWC layouts coincide
QUICK = dict(warmup=1, repeats=3, min_seconds=0.0)


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_model() -> nn.Module:
    return create_model("lenet", downsample="maxpool", seed=0, input_size=16)


class Recorder(nn.Module):
    """Records, per forward pass, the thread count, the input's layout and a checksum of the input."""

    def __init__(self, fail_on_call: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)  # three input channels: NCHW and NHWC strides differ
        self.calls: list[dict] = []
        self.fail_on_call = fail_on_call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(
            {
                "threads": torch.get_num_threads(),
                "input_nhwc": x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(),
                "weight_nhwc": self.conv.weight.is_contiguous(memory_format=torch.channels_last)
                and not self.conv.weight.is_contiguous(),
                "training": self.training,
                "checksum": float(x.double().sum()),
                "batch": x.shape[0],
            }
        )
        if self.fail_on_call is not None and len(self.calls) >= self.fail_on_call:
            raise RuntimeError("planted failure")
        return self.conv(x)


class Sleeper(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


class Work(nn.Module):
    """``times`` identical matrix products: twice the times is twice the work."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times
        self.weight = nn.Parameter(torch.randn(512, 512, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)  # (B, 512)
        for _ in range(self.times):
            h = torch.tanh(h @ self.weight)
        return h


def test_rows_have_the_schema_columns_and_one_block_per_batch_and_format(small_model):
    res = measure_latency(small_model, SHAPE, batch_sizes=(1, 4), **QUICK)
    expected = [c for c in schema.LATENCY if c != "run_id"]
    assert res.rows.columns.tolist() == expected
    assert {c: str(t) for c, t in res.rows.dtypes.items()} == {c: schema.LATENCY[c] for c in expected}
    blocks = res.rows.groupby(["batch_size", "memory_format"]).size()
    assert set(blocks.index) == {(b, f) for b in (1, 4) for f in MEMORY_FORMATS}
    for _key, group in res.rows.groupby(["batch_size", "memory_format"]):
        assert group["repeat"].tolist() == list(range(len(group)))
    assert (res.rows["threads"] == 1).all() and (res.rows["seconds"] > 0).all()
    # with a run_id the rows are a valid latency table
    schema.conform("latency", res.rows.assign(run_id="cell-0"))


def test_repeats_stop_once_both_the_count_and_the_minimum_time_are_reached():
    kw = dict(batch_sizes=(1,), memory_format="contiguous", warmup=0)
    # time-bound: 2 repeats of >= 4 ms cannot fill 30 ms, so timing goes on, and stops at the first
    # repeat that reaches it
    seconds = measure_latency(Sleeper(0.004), SHAPE, repeats=2, min_seconds=0.03, **kw).rows["seconds"]
    assert len(seconds) > 2 and seconds.sum() >= 0.03 and seconds.iloc[:-1].sum() < 0.03
    # min_seconds is wall time even on the CPU clock, so a model that waits cannot stall the loop
    cpu = measure_latency(Sleeper(0.004), SHAPE, repeats=2, min_seconds=0.03, clock="thread_cpu", **kw)
    assert 2 < len(cpu.rows) <= 8 and cpu.rows["seconds"].sum() < 0.03
    # count-bound: 25 repeats, whatever their total
    res = measure_latency(Sleeper(0.0), SHAPE, repeats=25, min_seconds=0.0, **kw)
    assert len(res.rows) == 25 and res.summary.loc[0, "n_repeats"] == 25


def test_warmup_passes_run_but_are_not_returned():
    model = Recorder()
    res = measure_latency(
        model, RGB, batch_sizes=(2,), memory_format="contiguous", warmup=4, repeats=5, min_seconds=0.0,
        reference=False,  # with it, short passes get an untimed re-warm pass each (tested below)
    )  # fmt: skip
    assert len(model.calls) == 9 and len(res.rows) == 5


def test_threads_are_set_during_and_restored_after():
    torch.set_num_threads(2)
    model = Recorder()
    measure_latency(model, RGB, batch_sizes=(2,), threads=1, **QUICK)
    assert {c["threads"] for c in model.calls} == {1}
    assert torch.get_num_threads() == 2


def test_state_is_restored_after_an_exception_inside_the_model():
    torch.set_num_threads(2)
    model = Recorder(fail_on_call=3)
    model.train()
    weight = model.conv.weight
    ptr = weight.data_ptr()
    with pytest.raises(RuntimeError, match="planted failure"):
        measure_latency(model, RGB, batch_sizes=(2,), memory_format="channels_last", threads=1, **QUICK)
    assert torch.get_num_threads() == 2
    assert model.training
    assert gc.isenabled()
    assert model.conv.weight is weight and weight.data_ptr() == ptr and weight.is_contiguous()


def test_training_mode_is_restored_and_eval_used_while_timing(small_model):
    model = Recorder()
    model.train()
    measure_latency(model, RGB, batch_sizes=(1,), **QUICK)
    assert model.training and not any(c["training"] for c in model.calls)
    small_model.eval()
    measure_latency(small_model, SHAPE, batch_sizes=(1,), **QUICK)
    assert not small_model.training


def test_channels_last_is_used_for_input_and_weights_and_undone_afterwards():
    model = Recorder()
    before = model.conv.weight.detach().clone()
    measure_latency(model, RGB, batch_sizes=(3,), memory_format=("channels_last", "contiguous"), **QUICK)
    # the formats are timed one after the other; how many calls each gets depends on the machine's
    # speed (re-warm passes), so find where the first contiguous call is rather than halving
    first_nchw = next(i for i, c in enumerate(model.calls) if not c["input_nhwc"])
    nhwc, nchw = model.calls[:first_nchw], model.calls[first_nchw:]
    assert nhwc and all(c["input_nhwc"] and c["weight_nhwc"] for c in nhwc)
    assert not any(c["input_nhwc"] or c["weight_nhwc"] for c in nchw)
    assert model.conv.weight.is_contiguous() and torch.equal(model.conv.weight, before)


def test_a_channels_last_model_keeps_its_format(small_model):
    small_model.to(memory_format=torch.channels_last)
    weight = small_model.conv2.weight  # (64, 32, 5, 5): layouts differ
    measure_latency(small_model, SHAPE, batch_sizes=(1,), memory_format="contiguous", **QUICK)
    assert small_model.conv2.weight is weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def test_inputs_are_seeded_and_global_rng_is_untouched():
    models = [Recorder() for _ in range(3)]  # module construction itself draws from global RNG
    state = torch.random.get_rng_state()
    sums = []
    for seed, model in zip((0, 0, 1), models, strict=True):
        measure_latency(model, RGB, batch_sizes=(2,), memory_format="contiguous", seed=seed, **QUICK)
        sums.append({c["checksum"] for c in model.calls})
    assert torch.equal(torch.random.get_rng_state(), state)
    assert len(sums[0]) == 1 and sums[0] == sums[1] and sums[0] != sums[2]


def test_a_planted_sleep_is_measured():
    res = measure_latency(Sleeper(0.002), SHAPE, batch_sizes=(1, 4), repeats=6, warmup=0, min_seconds=0)
    assert (res.rows["seconds"] >= 0.002).all()
    assert (res.summary["median_s"] >= 0.002).all()
    assert (res.summary["median_lo_s"] >= 0.002).all()


def test_thread_cpu_clock_leaves_out_time_spent_off_cpu():
    kw = dict(batch_sizes=(1,), memory_format="contiguous", repeats=6, warmup=0, min_seconds=0)
    wall = measure_latency(Sleeper(0.005), SHAPE, **kw)
    cpu = measure_latency(Sleeper(0.005), SHAPE, clock="thread_cpu", **kw)
    assert wall.summary.loc[0, "median_s"] >= 0.005
    assert cpu.summary.loc[0, "median_s"] < 0.0025  # sleeping burns no CPU
    assert cpu.environment["clock"] == "thread_cpu"


@pytest.mark.parametrize("clock", ["wall", "thread_cpu"])
def test_twice_the_work_is_slower(clock):
    kw = dict(clock=clock, batch_sizes=(128,), memory_format="contiguous", warmup=1, repeats=9, min_seconds=0)
    shape = (1, 512, 1)  # one image flattens to a 512-vector
    # Alternate the two models over five rounds and keep each one's fastest median, so that a burst of
    # load from other processes during one measurement cannot reverse the order.
    once, twice = math.inf, math.inf
    for _ in range(5):
        once = min(once, measure_latency(Work(4), shape, **kw).summary.loc[0, "median_s"])
        twice = min(twice, measure_latency(Work(8), shape, **kw).summary.loc[0, "median_s"])
    assert twice > once


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(batch_sizes=(1, 0)), "batch sizes must be positive integers, got 0"),
        (dict(batch_sizes=()), "batch_sizes is empty"),
        (dict(batch_sizes=(2.5,)), "batch sizes must be positive integers"),
        (dict(memory_format="nhwc"), "unknown memory format 'nhwc'; choose from contiguous, channels_last"),
        (dict(memory_format=("contiguous", "NCHW")), "unknown memory format 'NCHW'"),
        (dict(threads=0), "threads must be a positive integer"),
        (dict(repeats=0), "repeats must be a positive integer"),
        (dict(warmup=-1), "warmup must be a non-negative integer"),
        (dict(min_seconds=-1.0), "min_seconds must be a finite number"),
        (dict(clock="cpu"), "unknown clock 'cpu'; choose from wall, thread_cpu"),
        (dict(clock="thread_cpu", threads=2), "needs threads=1"),
        (dict(input_shape=(16, 16)), r"input_shape must be the shape of one image \(C, H, W\)"),
        (dict(input_shape=(1, 0, 16)), "input_shape must be"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(kwargs, message):
    model = Recorder()
    shape = kwargs.pop("input_shape", RGB)
    with pytest.raises(ValueError, match=message):
        measure_latency(model, shape, **kwargs)
    assert model.calls == []


def test_environment_records_what_changes_timings(small_model, monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    env = measure_latency(small_model, SHAPE, batch_sizes=(1,), threads=1, **QUICK).environment
    assert env["torch_version"] == torch.__version__
    assert env["threads"] == 1 and env["memory_formats"] == list(MEMORY_FORMATS)
    assert env["allocator_env"]["MALLOC_ARENA_MAX"] == "2"
    assert isinstance(env["cpu"], str) and env["cpu"]
    assert len(env["load_average_before"]) == 3 and len(env["load_average_after"]) == 3


def test_median_interval_order_statistics_known_answers():
    # n = 9: P(B <= 1) = 10/512 <= 0.025 < P(B <= 2), so ranks 2 and 8
    lo, hi, cov = median_interval([9, 1, 8, 2, 7, 3, 6, 4, 5])
    assert (lo, hi) == (2.0, 8.0) and cov == pytest.approx(1 - 2 * 10 / 512)
    # n = 6: only (min, max) reaches 95 %: coverage 1 - 2/64
    lo, hi, cov = median_interval(np.arange(6.0))
    assert (lo, hi) == (0.0, 5.0) and cov == pytest.approx(1 - 2 / 64)
    # n = 5: even (min, max) covers only 1 - 2/32 = 93.75 %
    assert all(math.isnan(v) for v in median_interval(np.arange(5.0)))
    with pytest.raises(ValueError, match="confidence"):
        median_interval([1.0, 2.0], confidence=1.5)


def test_median_interval_covers_the_true_median_at_its_stated_rate():
    rng = np.random.default_rng(20240)
    n, trials = 11, 4000
    draws = rng.lognormal(mean=0.0, sigma=0.5, size=(trials, n))  # true median exp(0) = 1
    hits = []
    for row in draws:
        lo, hi, cov = median_interval(row)
        hits.append(lo <= 1.0 <= hi)
    se = math.sqrt(cov * (1 - cov) / trials)
    assert abs(np.mean(hits) - cov) < 4 * se
    assert cov >= 0.95


def test_summary_on_hand_made_rows():
    rows = pd.DataFrame(
        {
            "batch_size": [8] * 9,
            "threads": [1] * 9,
            "memory_format": ["contiguous"] * 9,
            "repeat": range(9),
            "seconds": [0.5, 0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6],
        }
    )
    s = summarize_latency(rows).iloc[0]
    assert s["median_s"] == pytest.approx(0.5)
    assert s["iqr_s"] == pytest.approx(0.7 - 0.3)
    assert (s["median_lo_s"], s["median_hi_s"]) == pytest.approx((0.2, 0.8))
    assert s["ci_halfwidth_rel"] == pytest.approx(0.6)
    assert s["images_per_s"] == pytest.approx(8 / 0.5)
    assert s["n_repeats"] == 9 and s["total_seconds"] == pytest.approx(4.5)


def test_the_reference_workload_is_timed_before_every_pass_and_kept_apart(monkeypatch):
    import downscalexr.latency as lat

    order = []

    class Logged(Sleeper):
        def forward(self, x):
            order.append("model")
            return super().forward(x)

    # The probe sleeps far longer than an empty model pass takes even on a loaded machine, so the
    # check that its time stays out of the model's time cannot fail from load alone.
    probe_s = 0.05

    def slow_probe(seed=0):
        def run():
            order.append("probe")
            time.sleep(probe_s)

        return run

    monkeypatch.setattr(lat, "reference_workload", slow_probe)
    kw = dict(batch_sizes=(1,), memory_format="contiguous", warmup=0, repeats=6, min_seconds=0.0)
    res = lat.measure_latency(Logged(0.0), SHAPE, **kw)
    # each timed pass of a short model: an untimed probe (cache refill), the timed probe, an untimed
    # pass (puts the model's data back), then the timed pass
    assert order == ["probe", "probe", "model", "model"] * 6
    assert (res.rows["reference_seconds"] >= probe_s).all()
    assert (res.rows["seconds"] < probe_s).all()  # the probe's sleep is not in the model's time
    assert (res.summary["reference_median_s"] >= probe_s).all()
    # a long pass (above REWARM_BELOW_SECONDS) is timed right after the probe, without an extra pass
    order.clear()
    slow = lat.REWARM_BELOW_SECONDS * 1.5
    lat.measure_latency(Logged(slow), SHAPE, **{**kw, "warmup": 1, "repeats": 3})
    assert order == ["model", "probe"] + ["probe", "probe", "model"] * 3
    order.clear()
    off = lat.measure_latency(Logged(0.0), SHAPE, reference=False, **kw)
    assert order == ["model"] * 6
    assert off.rows["reference_seconds"].isna().all() and off.environment["reference_workload"] is None


def test_the_real_reference_workload_runs_and_is_recorded(small_model):
    res = measure_latency(small_model, (1, 16, 16), batch_sizes=(2,), repeats=6, min_seconds=0.0)
    ref = res.rows["reference_seconds"]
    assert ref.notna().all() and (ref > 0).all()
    assert "torch.mm" in res.environment["reference_workload"]
    schema.conform("latency", res.rows.assign(run_id="r"))
