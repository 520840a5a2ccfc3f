"""Known answers and planted effects for latency, learning curves, power and the claims' verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.simulation import simulate_study
from analysis.stats import curves, latency, power
from analysis.verdicts import claims, rules


def test_latency_ratio_recovers_planted_twofold():
    study = simulate_study(seeds=6, fractions=(0.5, 1.0), latency_ms={"avgpool": 2.0, "maxpool": 4.0}, seed=8)
    out = latency.latency_ratios(study["latency"], study["runs"], n_boot=1000)
    assert set(out["batch_size"]) == {1, 32}
    rows = out.set_index(["variant", "batch_size"])
    for batch in (1, 32):
        assert rows.loc[("maxpool", batch), "low"] <= 2.0 <= rows.loc[("maxpool", batch), "high"]
        assert rows.loc[("avgpool", batch), "ratio"] == 1.0
    assert (out["low"] <= out["ratio"]).all() and (out["ratio"] <= out["high"]).all()
    with pytest.raises(ValueError, match="choose from"):
        latency.latency_ratios(study["latency"], study["runs"], reference="avg", n_boot=200)


def test_fit_power_law_recovers_noise_free_curves():
    n = np.array([100.0, 250, 500, 1000, 2000, 4000])
    truth = [(2.0, 0.5, 0.05), (5.0, 0.8, 0.1), (0.7, 0.3, 0.0)]
    err = np.stack([a * n**-b + c for a, b, c in truth], axis=1)
    a, b, c = curves.fit_power_law(n, err)
    np.testing.assert_allclose(a, [t[0] for t in truth], rtol=0.02)
    np.testing.assert_allclose(b, [t[1] for t in truth], atol=0.005)
    np.testing.assert_allclose(c, [t[2] for t in truth], atol=0.002)


def _power_law_runs(a_by_variant: dict[str, float], seeds: int = 4) -> pd.DataFrame:
    sizes = np.array([100, 200, 400, 800, 1600])
    rows = [
        {
            "variant": v,
            "seed": s,
            "n_train": n,
            "data_fraction": n / 1600,
            "status": "ok",
            "accuracy": 1 - (a * n**-0.5 + 0.05),
        }
        for v, a in a_by_variant.items()
        for s in range(seeds)
        for n in sizes
    ]
    return pd.DataFrame(rows)


def test_examples_to_target_known_answer():
    # error 0.15 = a / sqrt(n) + 0.05  ->  n = (a / 0.1)^2: 400 for a = 2, 1600 for a = 4
    runs = _power_law_runs({"avgpool": 2.0, "maxpool": 4.0})
    out = curves.examples_to_target(runs, 0.85, n_boot=200).set_index("variant")
    assert out.loc["avgpool", "n_needed"] == pytest.approx(400, rel=0.02)
    assert out.loc["maxpool", "n_needed"] == pytest.approx(1600, rel=0.02)
    assert out.loc["maxpool", "ratio_vs_reference"] == pytest.approx(4.0, rel=0.02)
    assert not out["extrapolated"].any()
    fits = curves.power_law_fits(runs, n_boot=200).set_index("variant")
    assert fits.loc["maxpool", "b"] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="target"):
        curves.examples_to_target(runs, 85)


def test_learning_curve_rows_and_bounds():
    study = simulate_study(seeds=5, seed=4)
    out = curves.learning_curve(study["runs"], "accuracy", n_boot=500)
    assert len(out) == 15 and set(out["method"]) == {"t"}
    assert (out["low"] <= out["mean"]).all() and (out["mean"] <= out["high"]).all()
    assert sorted(out["n_train"].unique()) == [200, 400, 1000, 2000, 4000]


def _paired_runs(n_seeds: int, step: float = 0.02) -> pd.DataFrame:
    d = np.tile([step, -step], n_seeds // 2)  # per-seed differences with mean 0 and a known SD
    base = np.linspace(0.7, 0.8, n_seeds)
    return pd.DataFrame(
        {
            "variant": ["avgpool"] * n_seeds + ["maxpool"] * n_seeds,
            "seed": np.tile(np.arange(n_seeds), 2),
            "data_fraction": 1.0,
            "status": "ok",
            "accuracy": np.concatenate([base, base + d]),
        }
    )


def _nct_seeds(dz: float, alpha: float = 0.05, target: float = 0.8) -> int:
    """Seeds needed by brute force over n with scipy's noncentral t (independent of analysis.stats.power)."""
    for n in range(3, 10_000):
        crit = stats.t.ppf(1 - alpha / 2, n - 1)
        if (
            stats.nct.sf(crit, n - 1, np.sqrt(n) * dz) + stats.nct.cdf(-crit, n - 1, np.sqrt(n) * dz)
            >= target
        ):
            return n
    raise AssertionError("not reached")


def test_power_uses_the_noncentral_t_and_mde_shrinks():
    small, large = (power.power_analysis(_paired_runs(n), "accuracy", effect=0.01).iloc[0] for n in (4, 16))
    sd4 = 0.02 * np.sqrt(4 / 3)  # sample SD of (+0.02, -0.02, +0.02, -0.02)
    assert small["sd"] == pytest.approx(sd4)
    assert small["seeds_needed"] == _nct_seeds(0.01 / sd4)  # 44: the normal formula said 42
    assert small["family_size"] == 1 and small["seeds_needed_family"] == small["seeds_needed"]
    crit = stats.t.ppf(0.975, 3)
    nc = np.sqrt(4) * small["mde"] / sd4
    assert stats.nct.sf(crit, 3, nc) + stats.nct.cdf(-crit, 3, nc) == pytest.approx(0.8, abs=1e-9)
    assert large["mde"] < small["mde"]
    with pytest.raises(ValueError, match="effect"):
        power.power_analysis(_paired_runs(4), "accuracy", effect=0)


@pytest.fixture(scope="module")
def claim_table():
    study = simulate_study(
        seeds=10,
        n_test=400,
        fpr_shift={"maxpool": 0.08},
        interaction={"strided": 0.02},
        gap_shift={"maxpool": 0.04, "strided": 0.04},
        seed=5,
    )
    return claims.evaluate_claims(study, n_boot=1000)


def test_claims_supported_when_planted(claim_table):
    verdicts = claim_table["verdict"].tolist()
    # over-calling (at 0.5), gap, latency, interaction are all planted
    assert verdicts[:1] + verdicts[2:5] == [rules.SUPPORTED] * 4
    # a study stored at 0.5 only cannot test the claim at a validation-chosen threshold
    assert verdicts[1] == rules.UNRESOLVED and "0.5 only" in claim_table["detail"].iloc[1]
    assert list(claim_table.columns) == claims.COLUMNS
    assert set(claim_table["verdict"]) <= set(rules.VERDICTS)


def test_claims_reversed_or_contradicted_when_the_planted_effect_is_opposite():
    """maxpool under-predicts and strided is slower: both directional claims are reversed; strided's FPR
    differs from maxpool's by 8 pp, so "behaves like max pooling" is contradicted (not reversed)."""
    study = simulate_study(
        seeds=10,
        n_test=400,
        latency_ms={"strided": 3.0, "avgpool": 2.0, "maxpool": 2.1},
        fpr_shift={"maxpool": -0.08},
        seed=6,
    )
    out = claims.evaluate_claims(study, n_boot=1000)
    at_fixed = out["claim"].str.startswith("max pooling") & out["claim"].str.endswith("0.5")
    assert out.loc[at_fixed, "verdict"].item() == rules.REVERSED
    assert out.loc[out["claim"].str.contains("lowest CPU latency"), "verdict"].item() == rules.REVERSED
    assert (
        out.loc[out["claim"].str.contains("behaves like max pooling"), "verdict"].item() == rules.CONTRADICTED
    )


def test_claims_without_latency_or_variants_are_unresolved():
    study = simulate_study(seeds=3, variants=("avgpool", "lppool"), seed=7)
    out = claims.evaluate_claims({"runs": study["runs"]}, n_boot=200)
    assert (out["verdict"] == rules.UNRESOLVED).sum() >= 4


@pytest.mark.parametrize(
    "compute",
    [
        lambda t, s: latency.latency_ratios(t["latency"], t["runs"], n_boot=300, seed=s),
        lambda t, s: curves.power_law_fits(t["runs"], n_boot=300, seed=s),
        lambda t, s: curves.examples_to_target(t["runs"], 0.8, n_boot=300, seed=s),
    ],
    ids=["latency_ratios", "power_law_fits", "examples_to_target"],
)
def test_seeded_functions_repeat_exactly_and_depend_on_the_seed(compute):
    study = simulate_study(seeds=5, seed=9)
    a, b, c = compute(study, 1), compute(study, 1), compute(study, 2)
    pd.testing.assert_frame_equal(a, b)
    bounds = [col for col in a.columns if col.endswith(("low", "high"))]
    assert not np.allclose(a[bounds].to_numpy(float), c[bounds].to_numpy(float), equal_nan=True)


def test_latency_median_interval_covers_the_planted_median():
    """The simulator's per-call time is log-normal around ``latency_ms * batch**0.8`` (median exact)."""
    planted = {"avgpool": 2.0, "maxpool": 3.0, "strided": 1.5}
    covered, total, widths = 0, 0, []
    for rep in range(60):
        study = simulate_study(seeds=5, fractions=(1.0,), latency_ms=planted, n_test=20, seed=100 + rep)
        out = latency.latency_ratios(study["latency"], study["runs"], n_boot=400, seed=rep)
        assert (out["median_low"] <= out["median_ms"]).all()
        assert (out["median_ms"] <= out["median_high"]).all()
        for row in out.itertuples(index=False):
            truth = planted[row.variant] * row.batch_size**0.8
            covered += row.median_low <= truth <= row.median_high
            total += 1
            widths.append((row.median_high - row.median_low) / row.median_ms)
    assert 0.88 <= covered / total <= 0.995
    assert np.median(widths) < 0.1  # 5 runs x 10 repeats at 3 % run and 5 % repeat noise
