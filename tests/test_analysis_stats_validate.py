"""A reduced run of the simulation study (``python -m analysis.validate``) with bounds set by its error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.simulation import coverage, simulate_study
from analysis.stats import paired_contrasts


@pytest.mark.slow
def test_reduced_validation_meets_targets_within_monte_carlo_error():
    table = coverage.run_validation(
        studies=150, seeds=10, seed=1, n_boot=1000, mixed_studies=30, null_studies=4000, jobs=1
    )
    value = table.set_index("method")["value"]
    se = table.set_index("method")["se"]
    # Coverage targets are 0.93-0.97. With 150 studies the Monte Carlo SE of a coverage is ~0.006, so
    # the accepted band is the target widened by ~4 SE; a broken interval (e.g. plain BCa at ~0.90 or a
    # z-interval) still falls outside it.
    for method in ("bootstrap BCa, expanded (report)", "paired t-interval"):
        assert 0.91 <= value[method] <= 0.99, (method, value[method], se[method])
    assert value["bootstrap BCa, plain"] < value["bootstrap BCa, expanded (report)"]
    # 30 mixed fits x 4 coefficients: SE ~0.02; accept 0.85-1.0
    by_quantity = table.set_index("quantity")["value"]
    assert 0.85 <= by_quantity["coverage, mixed-model coefficients, linear curve"] <= 1.0
    assert 0.85 <= by_quantity["coverage, mixed-model coefficients, curved learning curve"] <= 1.0
    # family-wise error over 4000 null studies: SE ~0.0035 at 0.05; accept <= 0.05 + 4 SE
    assert value["Holm-adjusted paired t"] <= 0.064
    assert value["unadjusted paired t"] > 0.2  # without correction 12 tests reject far too often


def test_vectorised_contrasts_agree_with_paired_contrasts():
    # the simulation study computes differences and t-intervals on arrays; the report computes them
    # from runs tables: for the same numbers both must agree
    study = simulate_study(seeds=6, seed=2)
    runs = study["runs"]
    out = paired_contrasts(runs, "accuracy", n_boot=200)
    cube = np.stack(
        [
            runs[runs["variant"] == v]
            .pivot_table(index="seed", columns="data_fraction", values="accuracy")
            .to_numpy()
            for v in coverage.VARIANTS
        ]
    )  # (V, S, F)
    diffs, _, labels = coverage.paired_differences(cube[None], null=True)
    np.testing.assert_allclose(out["diff"].to_numpy(), diffs[0].mean(-1))
    covered = coverage.t_coverage(diffs, out["diff"].to_numpy())  # an interval always covers its own centre
    assert covered.all() and len(labels) == len(out)


@pytest.mark.parametrize("module", ["analysis.validate", "analysis.report"])
def test_the_documented_commands_still_run(module):
    """``python -m analysis.validate`` and ``python -m analysis.report`` keep working after the move."""
    root = Path(__file__).resolve().parent.parent
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", module, "--help"]
    env = os.environ | {"PYTHONPATH": path}
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"python -m {module}" in done.stdout
