"""Contract checks run over every seeded statistic, in the spirit of scikit-learn's common estimator checks.

Every public function of :mod:`analysis` that draws random numbers (it takes a ``seed``) is registered
in :data:`SEEDED` with the columns that hold its estimates and interval bounds, and then gets the same
checks: the same seed gives an identical table, another seed different bounds, every bound brackets its
estimate, failed and diverged runs change nothing, and the input tables are left as they were. A new
seeded statistic gets these checks by adding one line to :data:`SEEDED`;
:func:`test_every_seeded_statistic_is_registered` fails until it is added.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis.simulation import (
    simulate_inductive_study,
    simulate_multiclass_study,
    simulate_saliency,
    simulate_study,
)

N_BOOT = 300  # bootstrap resamples: enough for stable checks, few enough for a fast suite


@dataclass(frozen=True)
class Seeded:
    """A seeded statistic: how to compute it from the studies, and its (estimate, low, high) columns.

    ``order_invariant`` says whether the statistic already gives the identical table when the rows of
    its input tables are shuffled. Not yet (issue 15 makes every bootstrap sort its units first):
    seed_summary, learning_curve and bias_summary resample a group's values in row order;
    latency_ratios resamples a run's timing repeats in row order, and evaluate_claims uses it.
    """

    name: str
    compute: Callable[[dict, int], pd.DataFrame]
    bounds: tuple[tuple[str, str, str], ...]
    study: str = "standard"
    order_invariant: bool = False


def _claims(tables: dict, seed: int) -> pd.DataFrame:
    return analysis.evaluate_claims(tables, n_boot=N_BOOT, seed=seed)


def _hypotheses(tables: dict, seed: int) -> pd.DataFrame:
    return analysis.evaluate_hypotheses(tables["runs"], n_boot=N_BOOT, seed=seed)[0]


def _saliency(name: str) -> Callable[[dict, int], pd.DataFrame]:
    """A saliency statistic of :mod:`analysis.stats.saliency` on the multi-class study."""
    return lambda t, s: getattr(analysis, name)(t["saliency"], t["runs"], n_boot=N_BOOT, seed=s)


def _errors(name: str) -> Callable[[dict, int], pd.DataFrame]:
    """A multi-class error statistic of :mod:`analysis.stats.errors` on the multi-class study."""
    return lambda t, s: getattr(analysis, name)(t["predictions"], t["runs"], n_boot=N_BOOT, seed=s)


DILUTION_BOUNDS = (
    ("effect_base", "effect_base_low", "effect_base_high"),
    ("effect_model", "effect_model_low", "effect_model_high"),
    ("change", "change_low", "change_high"),
    ("change", "change_low_eq", "change_high_eq"),
    ("sum", "sum_low", "sum_high"),
)


SEEDED = (
    Seeded(
        "seed_summary",
        lambda t, s: analysis.seed_summary(t["runs"], "accuracy", n_boot=N_BOOT, seed=s),
        (("mean", "low", "high"),),
    ),
    Seeded(
        "paired_contrasts",
        lambda t, s: analysis.paired_contrasts(t["runs"], ["accuracy", "auroc"], n_boot=N_BOOT, seed=s),
        (("diff", "low", "high"),),
        order_invariant=True,
    ),
    Seeded(
        "hierarchical_bootstrap",
        lambda t, s: analysis.hierarchical_bootstrap(t["predictions"], t["runs"], n_boot=N_BOOT, seed=s),
        (("estimate", "low", "high"),),
        order_invariant=True,
    ),
    Seeded(
        "bias_summary",
        lambda t, s: analysis.bias_summary(t["runs"], n_boot=N_BOOT, seed=s),
        (("mean", "low", "high"), ("diff_vs_reference", "diff_low", "diff_high")),
    ),
    Seeded(
        "latency_ratios",
        lambda t, s: analysis.latency_ratios(t["latency"], t["runs"], n_boot=N_BOOT, seed=s),
        (
            ("median_ms", "median_low", "median_high"),
            ("ratio", "low", "high"),
            ("raw_median_ms", "raw_median_low", "raw_median_high"),
            ("raw_ratio", "raw_low", "raw_high"),
        ),
    ),
    Seeded(
        "learning_curve",
        lambda t, s: analysis.learning_curve(t["runs"], "accuracy", n_boot=N_BOOT, seed=s),
        (("mean", "low", "high"),),
    ),
    Seeded(
        "power_law_fits",
        lambda t, s: analysis.power_law_fits(t["runs"], n_boot=N_BOOT, seed=s),
        (("a", "a_low", "a_high"), ("b", "b_low", "b_high"), ("c", "c_low", "c_high")),
        order_invariant=True,
    ),
    Seeded(
        "examples_to_target",
        lambda t, s: analysis.examples_to_target(t["runs"], 0.8, n_boot=N_BOOT, seed=s),
        (("n_needed", "low", "high"), ("ratio_vs_reference", "ratio_low", "ratio_high")),
        order_invariant=True,
    ),
    Seeded(
        "reliability_curve",
        lambda t, s: analysis.reliability_curve(t["predictions"], t["runs"], n_boot=N_BOOT, seed=s),
        (("frequency", "low", "high"),),
        order_invariant=True,
    ),
    Seeded("evaluate_claims", _claims, (("estimate", "low", "high"),)),
    Seeded(
        "evaluate_hypotheses",
        _hypotheses,
        (("estimate", "low", "high"), ("estimate", "low_eq", "high_eq")),
        study="inductive",
        order_invariant=True,
    ),
    Seeded("per_class_recall", _errors("per_class_recall"), (("mean", "low", "high"),), "multiclass", True),
    Seeded("confused_pairs", _errors("confused_pairs"), (("mean", "low", "high"),), "multiclass", True),
    Seeded(
        "confused_pair_contrasts",
        _errors("confused_pair_contrasts"),
        (("diff", "low", "high"),),
        "multiclass",
        True,
    ),
    Seeded(
        "dilution_contrasts",
        lambda t, s: analysis.dilution_contrasts(t["runs"], n_boot=N_BOOT, seed=s),
        DILUTION_BOUNDS,
        "multiclass",
        True,
    ),
    Seeded(
        "evaluate_dilution",
        lambda t, s: analysis.evaluate_dilution(t["runs"], n_boot=N_BOOT, seed=s)[0],
        DILUTION_BOUNDS,
        "multiclass",
        True,
    ),
    Seeded("saliency_summary", _saliency("saliency_summary"), (("mean", "low", "high"),), "multiclass", True),
    Seeded(
        "saliency_contrasts", _saliency("saliency_contrasts"), (("diff", "low", "high"),), "multiclass", True
    ),
)
IDS = [s.name for s in SEEDED]


@pytest.fixture(scope="module")
def studies() -> dict[str, dict]:
    """A standard study with 10 seeds (so intervals are bootstrapped), an inductive-bias study, and a
    multi-class study of two models (LeNet and ResNet) with an operator effect diluted in the ResNet."""
    standard = simulate_study(
        seeds=10,
        fractions=(0.25, 0.5, 1.0),
        n_test=100,
        effects={"maxpool": -0.03},
        fpr_shift={"maxpool": 0.04},
        latency_repeats=4,
        latency_drift=0.1,
        seed=31,
    )
    inductive = simulate_inductive_study(
        variants=("avgpool", "strided"),
        location_shifts=(np.nan, 0.5),
        fractions=(1.0,),
        seeds=10,
        n_test=200,
        consistency={"avgpool": (0.9, 0.85), "strided": (0.8, 0.78)},
        seed=32,
    )
    multiclass = simulate_multiclass_study(
        models=("lenet", "resnet8"),
        fractions=(0.5, 1.0),
        seeds=10,
        n_test=120,
        effects={"lenet:maxpool": -0.05, "resnet8:maxpool": -0.01},
        seed=33,
    )
    saliency = simulate_saliency(multiclass["runs"], localisation={"lenet:maxpool": 0.6}, n_images=6, seed=34)
    multiclass |= {k: saliency[k] for k in ("saliency", "saliency_maps")}
    return {"standard": standard, "inductive": inductive, "multiclass": multiclass}


def _tables(studies: dict, stat: Seeded) -> dict[str, pd.DataFrame]:
    return {k: v for k, v in studies[stat.study].items() if isinstance(v, pd.DataFrame)}


def _with_failed_runs(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables plus failed and diverged runs whose every number is wrong, and their rows elsewhere.

    Two copy existing cells (same seeds), one has a seed no ok run has; a statistic that reads them
    (their metrics, predictions, latency or seed) gives a different table.
    """
    runs = tables["runs"]
    ok = runs[runs["status"] == "ok"]
    bad = ok.iloc[[0, len(ok) // 2, -1]].copy()
    ids = {old: f"bad{i}" for i, old in enumerate(bad["run_id"])}
    bad["run_id"] = bad["run_id"].map(ids)
    bad["status"] = ["failed", "diverged", "failed"]
    bad.iloc[2, bad.columns.get_loc("seed")] = 999
    numeric = [c for c in bad.columns if pd.api.types.is_float_dtype(bad[c]) and c != "data_fraction"]
    bad[numeric] = 0.01
    out = {**tables, "runs": pd.concat([runs, bad], ignore_index=True)}
    garbage_rows = [("predictions", {"score": 0.99}), ("latency", {"seconds": 5.0})]
    if "saliency" in tables:
        garbage_rows.append(("saliency", {"localisation": 0.99, "deletion_area": 0.99}))
    for name, garbage in garbage_rows:
        rows = tables[name][tables[name]["run_id"].isin(ids)]
        rows = rows.assign(run_id=rows["run_id"].map(ids), **garbage)
        out[name] = pd.concat([tables[name], rows], ignore_index=True)
    return out


def _shuffled(tables: dict[str, pd.DataFrame], seed: int) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    return {k: v.iloc[rng.permutation(len(v))].reset_index(drop=True) for k, v in tables.items()}


@pytest.mark.parametrize("stat", SEEDED, ids=IDS)
def test_same_seed_gives_an_identical_table(studies, stat):
    tables = _tables(studies, stat)
    pd.testing.assert_frame_equal(stat.compute(tables, 1), stat.compute(tables, 1))


@pytest.mark.parametrize("stat", SEEDED, ids=IDS)
def test_another_seed_gives_other_bounds(studies, stat):
    tables = _tables(studies, stat)
    a, b = stat.compute(tables, 1), stat.compute(tables, 2)
    bounds = sorted({c for _, low, high in stat.bounds for c in (low, high)})
    assert not np.allclose(a[bounds].to_numpy(float), b[bounds].to_numpy(float), equal_nan=True)


@pytest.mark.parametrize("stat", SEEDED, ids=IDS)
def test_bounds_bracket_the_estimate(studies, stat):
    out = stat.compute(_tables(studies, stat), 1)
    assert len(out)
    for estimate, low, high in stat.bounds:
        values = out[[estimate, low, high]].to_numpy(float)
        finite = np.isfinite(values).all(axis=1)
        assert finite.any(), (estimate, "no row with a finite interval")
        est, lo, hi = values[finite].T
        tol = 1e-12 * np.maximum(np.abs(est), 1.0)
        assert (lo <= est + tol).all() and (est <= hi + tol).all(), (estimate, low, high)


@pytest.mark.parametrize("stat", SEEDED, ids=IDS)
def test_failed_and_diverged_runs_are_ignored(studies, stat):
    tables = _tables(studies, stat)
    pd.testing.assert_frame_equal(stat.compute(_with_failed_runs(tables), 1), stat.compute(tables, 1))


@pytest.mark.parametrize("stat", SEEDED, ids=IDS)
def test_the_input_tables_are_not_modified(studies, stat):
    tables = _with_failed_runs(_tables(studies, stat))
    before = copy.deepcopy(tables)
    stat.compute(tables, 1)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(tables[name], frame, check_exact=True)


ORDER_INVARIANT = [s for s in SEEDED if s.order_invariant]


@pytest.mark.parametrize("stat", ORDER_INVARIANT, ids=[s.name for s in ORDER_INVARIANT])
def test_shuffled_rows_give_an_identical_table(studies, stat):
    tables = _tables(studies, stat)
    pd.testing.assert_frame_equal(stat.compute(_shuffled(tables, 5), 1), stat.compute(tables, 1))


def test_every_seeded_statistic_is_registered():
    """Every public function of analysis that takes a seed, simulators aside, is in SEEDED."""
    seeded = {
        name
        for name in analysis.__all__
        if inspect.isfunction(obj := getattr(analysis, name))
        and not name.startswith("simulate")
        and "seed" in inspect.signature(obj).parameters
    }
    assert seeded == set(IDS), f"register in SEEDED: {sorted(seeded - set(IDS))}"
