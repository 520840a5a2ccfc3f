"""Speed adjustment of latency medians by the reference workload, against planted machine drift."""

import numpy as np
import pandas as pd
import pytest

from analysis.simulation import simulate_study
from analysis.stats import latency

PLANTED = {"avgpool": 2.0, "maxpool": 3.0, "strided": 1.5}
SLOPES = {"avgpool": 0.6, "maxpool": 0.9, "strided": 0.75}  # unequal: the ratios depend on the speed


def _study(rep: int, drift: float = 0.15, unequal: bool = False, **kw) -> dict:
    study = simulate_study(
        seeds=10,
        fractions=(0.5, 1.0),
        latency_ms=PLANTED,
        latency_drift=drift,
        latency_slope=SLOPES,
        n_test=20,
        seed=500 + rep,
        **kw,
    )
    if unequal:  # like batch 1 in the grid, whose repeat count depends on min_seconds: 6 to 10 per run
        lat = study["latency"]
        keep = np.random.default_rng(rep).integers(6, 11, size=lat["run_id"].nunique())
        limit = lat["run_id"].map(dict(zip(lat["run_id"].unique(), keep, strict=True)))
        study["latency"] = lat[(lat["batch_size"] != 1) | (lat["repeat"] < limit)].reset_index(drop=True)
    return study


def _at_study_speed(study: dict, variant: str) -> float:
    """The planted median per image at the study's mean planted speed."""
    return PLANTED[variant] * np.exp(SLOPES[variant] * study["truth"]["latency_speed_log"])


def _halfwidth(out: pd.DataFrame, prefix: str) -> np.ndarray:
    med = out[f"{prefix}median_ms"]
    return (np.maximum(med - out[f"{prefix}median_low"], out[f"{prefix}median_high"] - med) / med).to_numpy()


@pytest.mark.parametrize("unequal", [False, True], ids=["equal-repeats", "unequal-repeats"])
def test_adjusted_interval_covers_the_median_at_the_study_speed_and_is_narrower(unequal):
    """Planted: 20 runs per variant, each timed at its own machine speed (log sd 0.15), each variant
    slowing down by speed**slope. The adjusted median estimates the time at the study's mean speed."""
    covered = total = 0
    adj_width, raw_width, slopes = [], [], {v: [] for v in PLANTED}
    for rep in range(30):
        study = _study(rep, unequal=unequal)
        if unequal:
            counts = study["latency"].query("batch_size == 1").groupby("run_id").size()
            assert counts.nunique() > 1
        out = latency.latency_ratios(study["latency"], study["runs"], n_boot=300, seed=rep)
        assert out["adjusted"].all()
        for row in out.itertuples(index=False):
            truth = _at_study_speed(study, row.variant) * row.batch_size**0.8
            covered += row.median_low <= truth <= row.median_high
            total += 1
            slopes[row.variant].append(row.slope)
        adj_width.append(_halfwidth(out, ""))
        raw_width.append(_halfwidth(out, "raw_"))
    assert 0.88 <= covered / total <= 0.995
    # drift of 15 % per run against 3 % run and 5 % repeat noise: adjusting removes most of the spread
    assert np.median(np.concatenate(adj_width)) < 0.5 * np.median(np.concatenate(raw_width))
    for v, planted in SLOPES.items():
        assert abs(np.mean(slopes[v]) - planted) < 0.05, v


def test_adjusted_ratios_cover_the_planted_ratio_at_the_study_speed():
    covered = total = 0
    for rep in range(20):
        study = _study(rep)
        out = latency.latency_ratios(study["latency"], study["runs"], n_boot=300, seed=rep)
        for row in out[out["variant"] != "avgpool"].itertuples(index=False):
            truth = _at_study_speed(study, row.variant) / _at_study_speed(study, "avgpool")
            covered += row.low <= truth <= row.high
            total += 1
            assert row.high - row.low < row.raw_high - row.raw_low
    assert 0.85 <= covered / total <= 1.0


def test_without_drift_adjustment_changes_little():
    study = _study(0, drift=0.0)
    out = latency.latency_ratios(study["latency"], study["runs"], n_boot=300)
    assert out["adjusted"].all()
    np.testing.assert_allclose(out["median_ms"], out["raw_median_ms"], rtol=0.03)


def test_runs_without_reference_timings_are_not_adjusted():
    study = _study(1)
    lat = study["latency"].copy()
    plain = latency.latency_ratios(lat, study["runs"], n_boot=200, adjust=False)
    first = lat.iloc[0]
    lost = (lat["run_id"] == first["run_id"]) & (lat["batch_size"] == first["batch_size"])
    lat.loc[lost, "reference_seconds"] = np.nan  # one run x batch size has no reference timings
    out = latency.latency_ratios(lat, study["runs"], n_boot=200)
    block = (out["batch_size"] == first["batch_size"]) & (out["memory_format"] == first["memory_format"])
    assert not out.loc[block, "adjusted"].any()
    assert out.loc[~block, "adjusted"].all()
    pd.testing.assert_series_equal(
        out.loc[block, "median_ms"], out.loc[block, "raw_median_ms"], check_names=False
    )
    # unadjusted figures, intervals included, do not depend on whether adjustment was asked for
    cols = ["median_ms", "median_low", "median_high", "ratio", "low", "high"]
    np.testing.assert_allclose(out.loc[block, cols].to_numpy(float), plain.loc[block, cols].to_numpy(float))
    assert plain["slope"].isna().all() and not plain["adjusted"].any()


def test_too_few_runs_are_not_adjusted():
    study = simulate_study(seeds=3, fractions=(1.0,), latency_drift=0.15, n_test=20)
    out = latency.latency_ratios(study["latency"], study["runs"], n_boot=200)
    assert latency.MIN_ADJUST_RUNS > 3
    assert not out["adjusted"].any()


def test_tables_written_before_reference_timings_load_and_analyse():
    study = _study(2)
    old = study["latency"].drop(columns="reference_seconds")
    out = latency.latency_ratios(old, study["runs"], n_boot=200)
    assert not out["adjusted"].any()
    assert np.isfinite(out["median_ms"]).all()


@pytest.mark.parametrize("shape", [(4,), (3, 5)])
def test_slopes_match_least_squares(shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, *shape))
    y = 0.4 * x + rng.normal(0, 0.1, size=x.shape)
    y[0].flat[0] = np.nan  # a missing run is left out of its replicate's fit
    got = latency._slopes(y, x)
    for b in range(6):
        ok = np.isfinite(y[b])
        want = np.polyfit(x[b][ok], y[b][ok], 1)[0]
        assert got[b] == pytest.approx(want)


def test_row_nanmedian_matches_numpy():
    rng = np.random.default_rng(3)
    a = rng.random((40, 23))
    a[rng.random(a.shape) < 0.4] = np.nan
    a[5] = np.nan  # an all-missing row gives NaN, as numpy does
    a[6, :] = [np.nan] * 22 + [0.25]
    a[7, :3], a[8, :2] = -np.inf, np.inf  # infinities count and sort like any value, as in numpy
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        want = np.nanmedian(a, axis=1)
    got = latency._row_nanmedian(a)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)])
    assert got[6] == 0.25
