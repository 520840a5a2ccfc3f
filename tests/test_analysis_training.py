"""Training curves against hand-computed means and bands, and planted loss curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.design import design_frame
from analysis.simulation.multiclass import simulate_multiclass_study
from analysis.stats.training import curve_axis, run_curve_summaries, training_curves


def _tables(step=(10, 20, 30)) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.DataFrame(
        {"run_id": ["r0", "r1", "r2"], "status": ["ok", "ok", "failed"], "variant": "a", "data_fraction": 1.0}
    ).assign(seed=[0, 1, 2])
    epochs = pd.DataFrame(
        {
            "run_id": np.repeat(["r0", "r1", "r2"], 3),
            "epoch": [0, 1, 2] * 3,
            "step": list(step) * 3,
            "train_loss": [1.0, 0.6, 0.4, 1.2, 0.8, 0.5, 9.0, 9.0, 9.0],
            "val_loss": [1.1, 0.7, 0.9, 1.3, 0.9, 0.8, 9.0, 9.0, 9.0],
            "train_accuracy": [0.5, 0.7, 0.8, 0.4, 0.6, 0.9, 0.0, 0.0, 0.0],
            "val_accuracy": [0.5, 0.6, 0.6, 0.4, 0.5, 0.7, 0.0, 0.0, 0.0],
        }
    )
    return epochs, runs


def test_curves_are_the_hand_computed_means_and_t_bands_of_ok_runs():
    epochs, runs = _tables()
    out = training_curves(epochs, runs)
    point = out[(out["x"] == 20) & (out["measure"] == "train_loss")].iloc[0]
    half = stats.t.ppf(0.975, 1) * np.std([0.6, 0.8], ddof=1) / np.sqrt(2)
    assert point["mean"] == pytest.approx(0.7)  # the failed run's 9.0 is left out
    assert (point["low"], point["high"]) == pytest.approx((0.7 - half, 0.7 + half))
    assert point["n_runs"] == 2 and set(out["axis"]) == {"step"}
    assert sorted(set(out["x"])) == [10, 20, 30]


def test_runs_stopped_early_count_only_where_they_reached():
    epochs, runs = _tables()
    epochs = epochs.drop(index=5)  # r1 stopped before step 30
    out = training_curves(epochs, runs)
    last = out[(out["x"] == 30) & (out["measure"] == "val_loss")].iloc[0]
    assert last["n_runs"] == 1 and last["mean"] == pytest.approx(0.9) and np.isnan(last["low"])


def test_older_cells_without_steps_are_drawn_against_epochs():
    epochs, runs = _tables(step=(-1, -1, -1))
    assert curve_axis(epochs) == "epoch"
    assert sorted(set(training_curves(epochs, runs)["x"])) == [0, 1, 2]


def test_run_summaries_are_the_hand_computed_values():
    epochs, runs = _tables()
    out = run_curve_summaries(epochs, runs).set_index("run_id")
    assert list(out.index) == ["r0", "r1"]
    assert out.loc["r0", "final_train_loss"] == pytest.approx(0.4)
    assert out.loc["r0", "min_val_loss"] == pytest.approx(0.7)
    assert out.loc["r0", "val_loss_rise"] == pytest.approx(0.2)  # 0.9 at the end, 0.7 at its lowest
    assert out.loc["r1", "val_loss_rise"] == pytest.approx(0.0)
    assert out.loc["r1", "last_step"] == 30


def test_planted_curves_and_overfitting_are_recovered():
    study = simulate_multiclass_study(
        models=("lenet", "resnet8"),
        fractions=(1.0,),
        seeds=10,
        n_test=60,
        loss_floor={"resnet8:maxpool": 0.1},
        overfit={"lenet:strided": 0.4},
        seed=9,
    )
    plan = study["truth"]["plan"]
    runs = design_frame(study["runs"])
    curves = training_curves(study["epochs"], runs, by=("arm",))
    summaries = run_curve_summaries(study["epochs"], runs)
    for arm in plan.arms:
        steps, train, val = plan.expected_losses(arm)
        part = curves[(curves["arm"] == arm)]
        got_val = part[part["measure"] == "val_loss"].sort_values("x")
        np.testing.assert_array_equal(got_val["x"], steps)
        np.testing.assert_allclose(got_val["mean"], val, atol=0.03)  # run offsets: SD 0.02 / sqrt(10)
        assert ((got_val["low"] <= val + 1e-12) & (val - 1e-12 <= got_val["high"])).mean() >= 0.75
        rise = summaries.loc[runs.set_index("run_id").loc[summaries["run_id"], "arm"].to_numpy() == arm]
        assert rise["val_loss_rise"].mean() == pytest.approx(val[-1] - val.min(), abs=1e-9)
