"""The validation study's vectorised checks: paired contrasts, seed-summary levels and power planning.

Every check simulates studies of one :class:`~analysis.simulation.scenarios.Scenario` at one seed count
(arrays studies x variants x seeds x fractions), computes what the report computes with the report's
own functions (:func:`analysis.stats.intervals.t_procedure`, :func:`analysis.stats.hypothesis_tests.holm`,
:func:`analysis.stats.power.seeds_for`; the expanded BCa of :func:`analysis.stats.bca.bca_means` for
comparison) and returns rows of the validation table (:data:`ROW_COLUMNS`): the measured value against
its nominal target with its Monte Carlo standard error.

Standard errors: a coverage or power averages many intervals of one study, which share seeds and the
reference, so its SE comes from the spread of the per-study averages; a family-wise error or a rejection
rate is one binary outcome per study (binomial SE).
"""

from __future__ import annotations

import numpy as np

from analysis.simulation.scenarios import FRACTIONS, Scenario, contrast_truth, contrasts
from analysis.stats.bca import bca_means
from analysis.stats.hypothesis_tests import holm
from analysis.stats.intervals import T_METHOD, resample_indices, t_procedure
from analysis.stats.power import seeds_for

ROW_COLUMNS = ["scenario", "seeds", "procedure", "quantity", "nominal", "measured", "se", "studies"]
REPORT_T = "paired t (report)"
BCA = "expanded BCa (before)"
PILOT_SEEDS = 20_000  # seeds of the pilot that gives a scenario's true paired SD (its error is negligible)


def row(
    sc: str, seeds: int, procedure: str, quantity: str, nominal: str, value: float, se: float, n: int
) -> dict:
    """One row of the validation table."""
    return dict(
        zip(
            ROW_COLUMNS,
            (sc, int(seeds), procedure, quantity, nominal, float(value), float(se), int(n)),
            strict=True,
        )
    )


def clustered(hits: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float]:
    """Mean of per-study averages of ``hits`` (studies x items, only ``valid`` items) and its SE."""
    valid = np.ones(hits.shape, dtype=bool) if valid is None else valid
    counts = valid.sum(axis=1)
    keep = counts > 0
    per_study = (hits & valid).sum(axis=1)[keep] / counts[keep]
    if per_study.size < 2:
        return float(per_study.mean()) if per_study.size else np.nan, np.nan
    return float(per_study.mean()), float(per_study.std(ddof=1) / np.sqrt(per_study.size))


def binomial(outcomes: np.ndarray) -> tuple[float, float]:
    """A rate over independent studies and its binomial SE."""
    p = float(np.mean(outcomes))
    return p, float(np.sqrt(p * (1 - p) / outcomes.size))


def holm_rows(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values of each study's family (studies x contrasts; NaN are not in the family)."""
    return np.apply_along_axis(holm, 1, p)


def t_tests(diffs: np.ndarray, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """The report's t procedure per (study, contrast): ``low, high, p, testable``, studies x contrasts."""
    n_studies, n_contrasts, n_seeds = diffs.shape
    out = t_procedure(diffs.reshape(-1, n_seeds), alpha, scale=1.0)  # accuracy: scale max(1, |x|) = 1
    shape = (n_studies, n_contrasts)
    return {
        "low": out["low"].to_numpy().reshape(shape),
        "high": out["high"].to_numpy().reshape(shape),
        "p": out["p_value"].to_numpy().reshape(shape),
        "testable": (out["method"] == T_METHOD).to_numpy().reshape(shape),
    }


def bca_bounds(diffs: np.ndarray, n_boot: int, rng: np.random.Generator, chunk: int = 25) -> tuple:
    """Expanded BCa bounds of every (study, contrast), the seeds resampled jointly within a study."""
    n_studies, n_contrasts, n_seeds = diffs.shape
    low, high = np.empty((n_studies, n_contrasts)), np.empty((n_studies, n_contrasts))
    for start in range(0, n_studies, chunk):
        block = diffs[start : start + chunk]  # studies of a block share one index matrix; blocks differ
        _, lo, hi = bca_means(block.reshape(-1, n_seeds), resample_indices(n_seeds, n_boot, rng))
        low[start : start + len(block)] = lo.reshape(len(block), n_contrasts)
        high[start : start + len(block)] = hi.reshape(len(block), n_contrasts)
    return low, high


def contrast_checks(
    sc: Scenario, seeds: int, rng: np.random.Generator, *, studies: int, null_studies: int
) -> list[dict]:
    """The report's paired contrasts: coverage, untestable share and power after Holm (planted studies),
    family-wise error of Holm over the 12 contrasts (null studies)."""
    truth, _ = contrast_truth(sc.truth())
    t = t_tests(contrasts(sc.simulate(studies, seeds, rng)))
    covered = (t["low"] <= truth) & (truth <= t["high"])
    nonnull = np.broadcast_to(np.abs(truth) > 1e-12, covered.shape)
    rejected = holm_rows(t["p"]) < 0.05
    null = t_tests(contrasts(sc.simulate(null_studies, seeds, rng, null=True)))
    fwer = (holm_rows(null["p"]) < 0.05).any(axis=1)
    return [
        row(sc.name, seeds, REPORT_T, "coverage", "0.95", *clustered(covered, t["testable"]), studies),
        row(sc.name, seeds, REPORT_T, "not testable", "(reported)", *clustered(~t["testable"]), studies),
        row(
            sc.name, seeds, REPORT_T, "power after Holm", "(reported)", *clustered(rejected, nonnull), studies
        ),
        row(
            sc.name, seeds, REPORT_T, "family-wise error (Holm, 12)", "<= 0.05", *binomial(fwer), null_studies
        ),
    ]


def bca_checks(
    sc: Scenario, seeds: int, rng: np.random.Generator, *, studies: int, n_boot: int
) -> list[dict]:
    """The expanded BCa the report used from 10 seeds before: its coverage, and how often it disagrees
    with the paired t-test printed beside it (significant by one, not by the other)."""
    truth, _ = contrast_truth(sc.truth())
    diffs = contrasts(sc.simulate(studies, seeds, rng))
    t = t_tests(diffs)
    low, high = bca_bounds(diffs, n_boot, rng)
    hit = (low <= truth) & (truth <= high)
    disagree = ((low > 0) | (high < 0)) != (t["p"] < 0.05)
    quantity = "disagrees with the t-test"
    return [
        row(sc.name, seeds, BCA, "coverage", "0.95", *clustered(hit, t["testable"]), studies),
        row(sc.name, seeds, BCA, quantity, "0 (one procedure)", *clustered(disagree, t["testable"]), studies),
    ]


def level_checks(sc: Scenario, seeds: int, rng: np.random.Generator, *, studies: int) -> list[dict]:
    """Coverage of the t interval of every variant x fraction mean (the report's seed summaries)."""
    acc = sc.simulate(studies, seeds, rng)  # (N, V, S, F)
    values = np.moveaxis(acc, 2, -1).reshape(-1, seeds)  # (N * V * F, S)
    out = t_procedure(values, scale=1.0)
    shape = (studies, acc.shape[1] * acc.shape[3])
    truth = np.broadcast_to(sc.truth().ravel(), shape)
    low, high = (out[c].to_numpy().reshape(shape) for c in ("low", "high"))
    testable = (out["method"] == T_METHOD).to_numpy().reshape(shape)
    covered = (low <= truth) & (truth <= high)
    return [
        row(sc.name, seeds, "t interval (levels)", "coverage", "0.95", *clustered(covered, testable), studies)
    ]


def pilot_sds(sc: Scenario, rng: np.random.Generator) -> np.ndarray:
    """The true SD of every contrast's per-seed differences, from a pilot of :data:`PILOT_SEEDS` seeds."""
    return contrasts(sc.simulate(1, PILOT_SEEDS, rng))[0].std(axis=1, ddof=1)


def planning_checks(
    sc: Scenario, rng: np.random.Generator, *, studies: int, power: float = 0.8
) -> list[dict]:
    """Achieved power of studies run at :func:`~analysis.stats.power.seeds_for` for the planted effect of
    the contrast maxpool @ fraction 1, per comparison and after Holm over the 12 contrasts.

    The planner gets the contrast's true SD and true effect, so a shortfall is the planner's (the
    noncentral t assumes normal differences), not the pilot's.
    """
    truth, labels = contrast_truth(sc.truth())
    k = labels.index(f"maxpool @ {FRACTIONS[-1]:g}")
    dz = abs(truth[k]) / pilot_sds(sc, rng)[k]
    rows = []
    for level, alpha, holm_family in (
        ("per comparison", 0.05, False),
        ("after Holm", 0.05 / len(truth), True),
    ):
        n = seeds_for(dz, alpha, power)
        if not np.isfinite(n):
            continue
        t = t_tests(contrasts(sc.simulate(studies, int(n), rng)))
        p = holm_rows(t["p"]) if holm_family else t["p"]
        hit = p[:, k] < 0.05
        rows.append(
            row(
                sc.name,
                int(n),
                "seeds_needed (noncentral t)",
                f"achieved power, {level}",
                f">= {power:g}",
                *binomial(hit),
                studies,
            )
        )
    return rows
