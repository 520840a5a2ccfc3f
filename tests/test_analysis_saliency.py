"""Saliency statistics against hand-computed values, planted localisation / deletion and numpy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.design import design_frame
from analysis.simulation.multiclass import simulate_multiclass_study
from analysis.simulation.saliency import simulate_saliency
from analysis.stats.saliency import mean_maps, saliency_contrasts, saliency_outcomes, saliency_summary


def _hand_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.DataFrame(
        {
            "run_id": ["a0", "a1", "b0", "b1"],
            "status": "ok",
            "model": "lenet",
            "variant": ["avgpool", "avgpool", "maxpool", "maxpool"],
            "seed": [0, 1, 0, 1],
            "data_fraction": 1.0,
        }
    )
    saliency = pd.DataFrame(
        {
            "run_id": np.repeat(runs["run_id"], 2),
            "example_id": [0, 1] * 4,
            # image 1 of run a0 has no localisation (an empty mask): left out of its mean
            "localisation": [0.6, np.nan, 0.5, 0.7, 0.8, 0.6, 0.9, 0.5],
            "mask_fraction": [0.1, 0.2] * 4,
            "deletion_area": [0.2, 0.4, 0.3, 0.3, 0.1, 0.3, 0.2, 0.2],
        }
    )
    return runs, saliency


def test_outcomes_per_run_are_the_hand_computed_means():
    runs, saliency = _hand_tables()
    out = saliency_outcomes(saliency, runs).set_index("run_id")
    assert out.loc["a0", "localisation"] == pytest.approx(0.6)
    assert out.loc["a0", "localisation_gain"] == pytest.approx(0.5)  # 0.6 - 0.1; image 1 has none
    assert out.loc["a0", "deletion_area"] == pytest.approx(0.3)
    assert out.loc["a1", "localisation_gain"] == pytest.approx(((0.5 - 0.1) + (0.7 - 0.2)) / 2)
    assert (out.loc["a0", "n_images"], out.loc["a0", "n_localised"]) == (2, 1)


def test_summary_and_contrast_are_the_hand_computed_t_intervals():
    runs, saliency = _hand_tables()
    summary = saliency_summary(saliency, runs, n_boot=200).set_index(["variant", "outcome"])
    loc = np.array([0.6, 0.6])  # run means of avgpool: seed 0 0.6, seed 1 0.6
    assert summary.loc[("avgpool", "localisation"), "mean"] == pytest.approx(loc.mean())
    maxpool = np.array([0.7, 0.7])
    assert summary.loc[("maxpool", "localisation"), "high"] == pytest.approx(0.7)  # zero spread
    pc = saliency_contrasts(saliency, runs, reference="avgpool", n_boot=200)
    deletion = pc[pc["outcome"] == "deletion_area"].iloc[0]
    d = np.array([0.2 - 0.3, 0.2 - 0.3])  # maxpool - avgpool per seed
    assert deletion["diff"] == pytest.approx(d.mean())
    loc_row = pc[pc["outcome"] == "localisation"].iloc[0]
    assert loc_row["diff"] == pytest.approx((maxpool - loc).mean())
    assert "localisation_gain" not in set(pc["outcome"])  # same images, same masks: equal to localisation
    gain = summary.loc[("avgpool", "localisation_gain")]
    per_seed = np.array([0.6 - 0.1, ((0.5 - 0.1) + (0.7 - 0.2)) / 2])
    half = stats.t.ppf(0.975, 1) * per_seed.std(ddof=1) / np.sqrt(2)
    assert (gain["low"], gain["high"]) == pytest.approx((per_seed.mean() - half, per_seed.mean() + half))


@pytest.fixture(scope="module")
def planted():
    study = simulate_multiclass_study(
        models=("lenet", "resnet8"), fractions=(1.0,), seeds=12, n_test=60, seed=5
    )
    sal = simulate_saliency(
        study["runs"],
        localisation={"lenet:maxpool": 0.62, "resnet8:maxpool": 0.52},
        deletion={"lenet:strided": 0.22},
        n_images=12,
        seed=6,
    )
    return study, sal


def test_planted_localisation_and_deletion_are_recovered(planted):
    study, sal = planted
    truth = sal["truth"]
    assert truth["clipped"] == 0
    summary = saliency_summary(sal["saliency"], design_frame(study["runs"]), by=("arm",), n_boot=2000, seed=2)
    inside = []
    for outcome, planted_values in (
        ("localisation", truth["localisation"]),
        ("deletion_area", truth["deletion"]),
    ):
        part = summary[summary["outcome"] == outcome].set_index("arm")
        for arm, value in planted_values.items():
            inside.append(part.loc[arm, "low"] <= value <= part.loc[arm, "high"])
            assert abs(part.loc[arm, "mean"] - value) < 0.03
    assert np.mean(inside) >= 0.8  # 12 intervals at 95 %; the seed effect moves them together


def test_planted_contrasts_are_shown_and_null_ones_are_not(planted):
    study, sal = planted
    pc = saliency_contrasts(sal["saliency"], study["runs"], n_boot=2000, seed=2).set_index(
        ["model", "outcome", "variant"]
    )
    lenet_loc = pc.loc[("lenet", "localisation", "maxpool")]
    assert lenet_loc["low"] <= 0.12 <= lenet_loc["high"] and lenet_loc["p_holm"] < 0.01
    lenet_del = pc.loc[("lenet", "deletion_area", "strided")]
    assert lenet_del["low"] <= -0.08 <= lenet_del["high"] and lenet_del["p_holm"] < 0.01
    assert pc.loc[("resnet8", "deletion_area", "strided"), "p_holm"] > 0.05


def test_mean_maps_match_a_direct_numpy_average(planted):
    study, sal = planted
    runs = design_frame(study["runs"])
    out = mean_maps(sal["saliency_maps"], runs, by=("arm",), per_image=False)
    maps = sal["saliency_maps"].merge(runs[["run_id", "arm", "seed"]], on="run_id")
    arm = maps[maps["arm"] == "lenet:maxpool"]
    per_run = arm.groupby(["seed", "row", "col"])["cam"].mean().unstack(["row", "col"]).to_numpy()  # (S, G*G)
    mean = per_run.mean(axis=0)
    half = stats.t.ppf(0.975, per_run.shape[0] - 1) * per_run.std(axis=0, ddof=1) / np.sqrt(per_run.shape[0])
    got = out[out["arm"] == "lenet:maxpool"].sort_values(["row", "col"])
    np.testing.assert_allclose(got["mean"], mean)
    np.testing.assert_allclose(got["high"] - got["mean"], half)
    assert set(got["example_id"]) == {-1} and (got["n_seeds"] == 12).all()


def test_a_planted_map_has_its_localisation_as_mass_inside_the_mask(planted):
    _, sal = planted
    maps = sal["saliency_maps"]
    one = maps[(maps["run_id"] == maps["run_id"].iloc[0]) & (maps["example_id"] == 3)]
    share = (one["cam"] * one["mask"]).sum() / one["cam"].sum()
    row = sal["saliency"].query("run_id == @one.run_id.iloc[0] and example_id == 3")
    assert share == pytest.approx(row["localisation"].iloc[0])
    assert one["mask"].mean() == pytest.approx(row["mask_fraction"].iloc[0])


def test_missing_saliency_rows_are_refused_with_the_fix():
    runs, saliency = _hand_tables()
    with pytest.raises(ValueError, match="enable `saliency`"):
        saliency_outcomes(saliency.iloc[:0], runs)
