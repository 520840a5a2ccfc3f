"""Power from the noncentral t, checked against simulated paired t-tests with planted effects.

The power functions are tested by running thousands of simulated studies at the seed count and effect
they name and counting how often scipy's t-test (an independent implementation) rejects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.power import TTestPower

from analysis.stats import holm, paired_contrasts, power
from analysis.stats.intervals import MIN_SEEDS

N_STUDIES = 4000  # Monte Carlo SE of a rate near 0.8: 0.0063


def _rejection_rate(n: int, dz: float, alpha: float, rng: np.random.Generator) -> float:
    d = rng.normal(dz, 1.0, (N_STUDIES, n))
    return float((scipy_stats.ttest_1samp(d, 0.0, axis=1).pvalue < alpha).mean())


def test_t_power_is_the_noncentral_t_known_answer():
    for n, dz, alpha in ((10, 1.0, 0.05), (4, 2.0, 0.01), (30, 0.3, 0.05)):
        df, crit = n - 1, scipy_stats.t.ppf(1 - alpha / 2, n - 1)
        nc = np.sqrt(n) * dz
        expected = scipy_stats.nct.sf(crit, df, nc) + scipy_stats.nct.cdf(-crit, df, nc)
        assert float(power.t_power(dz, n, alpha)) == pytest.approx(expected, rel=1e-6)
        statsmodels = TTestPower().power(effect_size=dz, nobs=n, alpha=alpha, alternative="two-sided")
        assert float(power.t_power(dz, n, alpha)) == pytest.approx(statsmodels, rel=1e-6)
    assert float(power.t_power(4.0, 4)) == pytest.approx(0.998, abs=1e-3)  # where TTestPower gives NaN
    # where scipy's nct returns NaN for the far tail: the power is still the known value
    expected = scipy_stats.nct.sf(scipy_stats.t.ppf(1 - 5e-5, 9), 9, np.sqrt(10) * 3.0)
    assert float(power.t_power(3.0, 10, 1e-4)) == pytest.approx(expected, rel=1e-9)
    assert float(power._power_by_quadrature(3.1824463, 3.0, 2.0)) == pytest.approx(
        float(power.t_power(1.0, 4)), rel=1e-6
    )


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 4, 8, 22])
def test_the_detectable_difference_is_detected_80_percent_of_the_time(n):
    """At the difference it calls detectable for n seeds, 4,000 simulated studies reject 80 +- 3 %."""
    rng = np.random.default_rng(100 + n)
    dz = power.detectable_dz(n, 0.05, 0.8)
    assert abs(_rejection_rate(n, dz, 0.05, rng) - 0.8) <= 0.03


@pytest.mark.slow
@pytest.mark.parametrize("target", [4, 8, 22])
def test_seeds_needed_delivers_its_power_and_one_seed_fewer_falls_short(target):
    sd = 0.013  # any paired SD: the answer depends on effect / sd only
    effect = power.detectable_dz(target, 0.05, 0.8) * sd * 1.0001
    n = power.seeds_for(effect / sd, 0.05, 0.8)
    assert n == target
    rng = np.random.default_rng(200 + target)
    assert abs(_rejection_rate(target, effect / sd, 0.05, rng) - 0.8) <= 0.03
    assert float(power.t_power(effect / sd, target - 1, 0.05)) < 0.8
    if target == 4:  # one seed fewer is far short, visibly so in simulation too
        assert _rejection_rate(3, effect / sd, 0.05, rng) < 0.7


@pytest.mark.slow
@pytest.mark.parametrize("m", [12, 54])
def test_family_level_power_holds_after_holm(m):
    """One planted contrast at the family-level detectable difference among m - 1 null contrasts."""
    n, rng = 10, np.random.default_rng(300 + m)
    dz = power.detectable_dz(n, 0.05 / m, 0.8)
    d = rng.normal(0.0, 1.0, (N_STUDIES, m, n))
    d[:, 0] += dz
    p = scipy_stats.ttest_1samp(d, 0.0, axis=2).pvalue
    adjusted = np.apply_along_axis(holm, 1, p)
    achieved = float((adjusted[:, 0] < 0.05).mean())
    assert 0.77 <= achieved <= 0.84  # at least the Bonferroni bound's 80 %, barely above it
    unadjusted_only = float(power.t_power(power.detectable_dz(n, 0.05, 0.8), n, 0.05 / m))
    assert unadjusted_only < 0.5  # planning per comparison would have fallen far short after Holm


def test_seeds_needed_is_never_below_what_the_interval_needs():
    assert power.seeds_for(25.0) == MIN_SEEDS == 3  # a tight pilot: the normal formula asked for 1
    assert np.isnan(power.seeds_for(0.0)) and np.isnan(power.seeds_for(np.nan))


def _runs_with_fraction_sds(sds: dict[float, float], seeds: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for f, sd in sds.items():
        base = rng.normal(0.8, 0.02, seeds)
        for v, shift in (("avgpool", 0.0), ("maxpool", -0.01), ("strided", 0.0)):
            noise = rng.normal(0, sd, seeds) if v != "avgpool" else np.zeros(seeds)
            acc = base + shift + noise if sd > 0 else np.full(seeds, 0.6)
            rows += [
                {"variant": v, "seed": s, "data_fraction": f, "status": "ok", "accuracy": a}
                for s, a in enumerate(acc)
            ]
    return pd.DataFrame(rows)


def test_power_analysis_uses_each_contrasts_sd_and_plans_for_the_worst():
    rng = np.random.default_rng(4)
    runs = _runs_with_fraction_sds({0.1: 0.03, 0.5: 0.005, 1.0: 0.01, 0.05: 0.0}, 12, rng)
    table = power.power_analysis(runs, "accuracy", effect=0.01)
    wide = runs.pivot_table(index="seed", columns=["variant", "data_fraction"], values="accuracy")
    for r in table[table["data_fraction"].notna()].itertuples():
        d = (wide[(r.variant, r.data_fraction)] - wide[("avgpool", r.data_fraction)]).to_numpy()
        if r.data_fraction == 0.05:  # every run at the base rate: not testable, no figures
            assert r.method == "no variation" and np.isnan(r.sd) and np.isnan(r.seeds_needed)
            continue
        assert r.sd == pytest.approx(np.std(d, ddof=1), rel=1e-10)
        assert r.mde == pytest.approx(power.detectable_dz(12, 0.05, 0.8) * r.sd, rel=1e-8)
        assert r.seeds_needed == power.seeds_for(0.01 / r.sd, 0.05, 0.8)
        assert r.seeds_needed_family >= r.seeds_needed and r.mde_family > r.mde
    family = paired_contrasts(runs, "accuracy")
    assert (table["family_size"] == family["p_value"].notna().sum()).all()
    assert family["p_value"].isna().sum() == 2  # the two contrasts at the floor fraction
    worst = power.worst_case(table).iloc[0]
    assert worst["data_fraction"] == 0.1 and worst["sd"] == pytest.approx(table["sd"].max())
    assert worst["n_contrasts"] == len(table) and worst["n_testable"] == len(table) - 2


def test_power_analysis_rejects_bad_input():
    runs = _runs_with_fraction_sds({1.0: 0.01}, 4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="choose from"):
        power.power_analysis(runs, "accuracy", reference="avg")
    with pytest.raises(ValueError, match="positive"):
        power.power_analysis(runs, "accuracy", effect=0.0)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        power.detectable_dz(1)
