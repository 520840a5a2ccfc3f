"""The default study trains every cell: a reduced version of it (its smallest fraction, three seeds)
run for real, no mocks. Under-training showed up as the call-everything-positive classifier
(balanced accuracy 0.5 at the test prevalence), so that is what these tests rule out."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from downscalexr.data.registry import load_dataset
from experiments.cell import cells_of, data_options, run_cell
from experiments.spec import list_studies, load_spec

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def smallest_fraction_runs() -> pd.DataFrame:
    spec = load_spec("default")
    smallest = min(spec.fractions)
    spec = dataclasses.replace(
        spec, seeds=SEEDS, fractions=(smallest,), latency=dataclasses.replace(spec.latency, enabled=False)
    )
    rows, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # as in a grid worker; more threads only contend on this small model
    try:
        for cell in cells_of(spec):
            options = data_options(spec, cell)
            data = load_dataset(spec.dataset, seed=cell.seed, test_seed=spec.test_seed, **options)
            rows.append(run_cell(spec, cell, data)["runs"])
    finally:
        torch.set_num_threads(threads)
    return pd.concat(rows, ignore_index=True)


@pytest.mark.slow
def test_the_smallest_fraction_of_the_default_study_trains_every_cell(smallest_fraction_runs):
    runs = smallest_fraction_runs
    assert len(runs) == 3 * len(SEEDS) and (runs["status"] == "ok").all()
    assert (runs["n_train"] == 50).all()  # 5 % of 1,000
    # above chance at the study's reported operating point, for every variant and seed
    assert (runs["balanced_accuracy"] > 0.55).all(), runs[["variant", "seed", "balanced_accuracy"]]
    assert (runs["auroc"] > 0.6).all(), runs[["variant", "seed", "auroc"]]
    # not the constant classifier: some test images are called negative, some positive
    assert runs["predicted_positive_rate"].between(0.05, 0.95).all()


@pytest.mark.slow
def test_the_default_study_selects_on_validation_and_reports_the_chosen_point(smallest_fraction_runs):
    runs = smallest_fraction_runs
    assert (runs["operating_point"] == "chosen").all()
    assert (runs["threshold"] == runs["threshold_chosen"]).all()
    assert (runs["balanced_accuracy"] == runs["balanced_accuracy_chosen"]).all()
    # early stopping on validation ends the small subsets well inside the step budget
    spec = load_spec("default")
    assert (runs["steps_run"] <= spec.train.steps).all() and (runs["best_step"] <= runs["steps_run"]).all()


TEST_FIXTURES = ("smoke", "smoke-factors")  # tiny studies that exercise code paths, not science


@pytest.mark.parametrize("name", [s for s in list_studies() if s not in TEST_FIXTURES])
def test_every_built_in_study_trains_by_the_step_budget_rule(name):
    spec = load_spec(name)
    t = spec.train
    assert t.steps > 0 and t.min_steps == 0 and 1 <= t.eval_every <= t.steps
    shifted = spec.data.get("location_shift") is not None or spec.factors.location_shift != (None,)
    if shifted:  # validation is drawn from the shifted test region: nothing may be selected on it
        assert not t.restore_best and t.patience is None
    else:
        assert t.restore_best and t.patience is not None
