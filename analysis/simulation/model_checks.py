"""The validation study's model checks: the seeds x test examples interval and the mixed models.

* :func:`hierarchical_checks` simulates every run's right / wrong answer on a shared test set (a
  Gaussian copula makes some examples hard for every run, while each run's accuracy over the
  population of examples is exactly its planted one) and measures the coverage of the report's crossed
  interval (:func:`analysis.stats.hierarchical.crossed_mean_interval`) and of the two-level percentile
  bootstrap it replaced, for the true mean accuracy over seeds and test sets.
* :func:`mixed_checks` fits the report's mixed model (seed and seed x variant components, floors left
  out) and the model it replaced (seed intercept only, every fraction) to studies of a scenario with a
  linear learning curve (so the fixed part is right), and measures the Wald coverage of the variant
  coefficients, the likelihood-ratio test's size for the variant effect, and how often the binomial
  sensitivity model agrees with the linear one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from joblib import Parallel, delayed
from scipy import special, stats

from analysis.simulation.coverage import binomial, clustered, row
from analysis.simulation.scenarios import VARIANTS, Scenario, runs_from_accuracy
from analysis.stats import mixed
from analysis.stats.hierarchical import crossed_mean_interval

REPORT_MIXED = "seed + seed x variant, floors out (report)"
OLD_MIXED = "seed only, all fractions (before)"


@dataclass(frozen=True)
class ExampleRegime:
    """A per-example generative model: accuracy ``mu`` +- a seed effect, ``n_test`` shared examples."""

    name: str
    seed_sd: float
    rho: float
    n_test: int
    mu: float = 0.85

    def simulate(self, n_studies: int, n_seeds: int, rng: np.random.Generator) -> np.ndarray:
        """Right (1) or wrong (0) of every run on every example: (studies, seeds, examples).

        Run ``s`` has accuracy ``p_s = mu + u_s``; it is right on example ``x`` when ``Phi(-latent) <
        p_s`` with ``latent = sqrt(rho) difficulty_x + sqrt(1 - rho) noise``, so P(right) is exactly
        ``p_s`` and the true mean accuracy over seeds and test sets is ``mu``.
        """
        p = self.mu + rng.normal(0, self.seed_sd, (n_studies, n_seeds, 1))
        difficulty = rng.normal(size=(n_studies, 1, self.n_test))
        latent = np.sqrt(self.rho) * difficulty + np.sqrt(1 - self.rho) * rng.normal(
            size=(n_studies, n_seeds, self.n_test)
        )
        return (special.ndtr(-latent) < p).astype(float)


EXAMPLE_REGIMES = (
    ExampleRegime("seeds dominate", seed_sd=0.03, rho=0.3, n_test=500),
    ExampleRegime("examples dominate", seed_sd=0.005, rho=0.3, n_test=300),
    ExampleRegime("independent runs", seed_sd=0.0, rho=0.0, n_test=300),
)


def _percentile_bounds(right: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """The pre-issue-15 interval: percentile of replicates resampling seeds, then (shared) examples."""
    n_studies, n_seeds, n_test = right.shape
    bounds = np.empty((n_studies, 2))
    for i in range(n_studies):
        weights = rng.multinomial(n_test, np.full(n_test, 1 / n_test), size=n_boot)  # example multiplicities
        per_run = right[i] @ weights.T / n_test  # (S, B)
        counts = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot)  # seed multiplicities
        bounds[i] = np.quantile((counts * per_run.T).sum(1) / n_seeds, [0.025, 0.975])
    return bounds


def hierarchical_checks(
    regime: ExampleRegime, seeds: int, rng: np.random.Generator, *, studies: int, boot_studies: int = 0
) -> list[dict]:
    """Coverage of the crossed interval for ``mu``; of the percentile bootstrap too on ``boot_studies``."""
    right = regime.simulate(studies, seeds, rng)
    out = crossed_mean_interval(right)
    hit = (out["low"] <= regime.mu) & (regime.mu <= out["high"])
    name = f"examples: {regime.name}"
    rows = [row(name, seeds, "crossed t (report)", "coverage", "0.95", *binomial(hit), studies)]
    if boot_studies:
        low, high = _percentile_bounds(right[:boot_studies], 500, rng).T
        hit = (low <= regime.mu) & (regime.mu <= high)
        procedure = "percentile, seeds then examples (before)"
        rows.append(row(name, seeds, procedure, "coverage", "0.95", *binomial(hit), len(hit)))
    return rows


def _terms() -> list[str]:
    return [t for v in VARIANTS[1:] for t in (f"variant[{v}]", f"variant[{v}]:log2_fraction")]


def _lrt_p(runs, *, report: bool) -> float:
    """p-value of the likelihood-ratio test of every variant term (ML fits with and without them)."""
    data, _ = mixed._model_data(runs, "accuracy", VARIANTS[0], exclude_floors=report)
    full, _, null = mixed._formulas(VARIANTS[0], one_fraction=False)
    notes: list[str] = []
    big, _ = mixed._fit(full, data, reml=False, notes=notes, label="ML", vc=report)
    small, _ = mixed._fit(null, data, reml=False, notes=notes, label="ML", vc=report)
    df = len(big.fe_params) - len(small.fe_params)
    return float(stats.chi2.sf(max(2 * (big.llf - small.llf), 0.0), df))


def _wald_study(acc: np.ndarray, n_test: int, truth: np.ndarray) -> dict:
    """One planted study: Wald hits of both models, convergence, and the sensitivity model's agreement."""
    runs = runs_from_accuracy(acc, n_test)
    out = {}
    for key, report in (("report", True), ("old", False)):
        fit = mixed.fit_mixed(
            runs, "accuracy", lrt=False, seed_variant=report, sensitivity=report, exclude_floors=report
        )
        coef = fit.coefficients.set_index("term").loc[_terms()]
        out[f"{key}_hit"] = (coef["low"].to_numpy() <= truth) & (truth <= coef["high"].to_numpy())
        out[f"{key}_failed"] = any("no optimiser converged" in w for w in fit.warnings)
        if report and fit.sensitivity is not None:
            out["agree"] = fit.sensitivity["agree"].to_numpy(dtype=bool)
    return out


def _lrt_study(acc: np.ndarray, n_test: int) -> dict:
    """One null study: the LRT p-value of the variant effect under both models."""
    runs = runs_from_accuracy(acc, n_test)
    return {key: _lrt_p(runs, report=report) for key, report in (("report", True), ("old", False))}


def mixed_checks(
    sc: Scenario, seeds: int, rng: np.random.Generator, *, studies: int, jobs: int = 1
) -> list[dict]:
    """Wald coverage, LRT size (null studies) and sensitivity agreement of the report's and the old model."""
    sc = sc.with_(curve="linear")
    truth = 100 * np.array([x for v in range(1, len(VARIANTS)) for x in (sc.effects[v], sc.interaction[v])])
    truth = truth * (1 - sc.failure_rate)
    planted, null = sc.simulate(studies, seeds, rng), sc.simulate(studies, seeds, rng, null=True)
    fits = Parallel(n_jobs=jobs)(delayed(_wald_study)(a, sc.n_test, truth) for a in planted)
    nulls = Parallel(n_jobs=jobs)(delayed(_lrt_study)(a, sc.n_test) for a in null)
    rows = []
    for key, name in (("report", REPORT_MIXED), ("old", OLD_MIXED)):
        hits = np.array([f[f"{key}_hit"] for f in fits])
        rows.append(
            row(sc.name, seeds, name, "Wald coverage, variant terms", "0.95", *clustered(hits), studies)
        )
        size = np.array([f[key] < 0.05 for f in nulls])
        rows.append(row(sc.name, seeds, name, "LRT size, variant effect", "0.05", *binomial(size), studies))
        failed = np.array([f[f"{key}_failed"] for f in fits])
        quantity = "fits where no optimiser converged"
        rows.append(row(sc.name, seeds, name, quantity, "(reported)", *binomial(failed), studies))
    agree = [f["agree"] for f in fits if "agree" in f]
    if agree:
        value = clustered(np.array(agree))
        quantity = "terms agreeing with the linear model"
        rows.append(
            row(sc.name, seeds, "binomial GEE (sensitivity)", quantity, "(reported)", *value, len(agree))
        )
    return rows
