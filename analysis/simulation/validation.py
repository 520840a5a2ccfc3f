"""``python -m analysis.validate``: the simulation study of the report's intervals, tests and power.

For every scenario of :data:`~analysis.simulation.scenarios.SCENARIOS` (normal, heavy tails, failed
runs, ceiling, seed x variant, floor) at 3, 5 and 10 seeds, it prints the coverage of the paired
contrasts and of the seed-summary levels, the share of contrasts that are not testable, the power after
Holm and the family-wise error of Holm over the report's 12 contrasts per metric; the expanded BCa that
the t procedure replaced, beside it; the achieved power of studies run at the planner's seeds needed;
the coverage of the seeds x test examples interval (and of the percentile bootstrap it replaced) in
three per-example regimes; and, at 10 seeds, the mixed models' Wald coverage, LRT size and the binomial
sensitivity model's agreement. Each figure comes with its Monte Carlo standard error.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, fields

import pandas as pd

from analysis.simulation import coverage, model_checks
from analysis.simulation.scenarios import SCENARIO_NAMES, scenario
from downscalexr.seeding import numpy_rng


@dataclass(frozen=True)
class ValidationPlan:
    """How many studies each part of the validation simulates (the defaults take a few minutes).

    Attributes
    ----------
    seeds : tuple of int
        Seed counts of the contrast, level and per-example checks.
    scenarios : tuple of str
        Scenarios of :mod:`analysis.simulation.scenarios` to run.
    studies, null_studies : int
        Planted studies (coverage, power) and null studies (family-wise error) per scenario x seeds.
    bca_studies, n_boot : int
        Of the planted studies, how many also get the expanded BCa (0: none), with ``n_boot`` resamples.
    planning_studies : int
        Studies run at the planner's seeds needed, per scenario and level (0: skip).
    example_studies, example_boot_studies : int
        Per-example studies per regime x seeds, and of those, how many get the percentile bootstrap.
    mixed_studies : int
        Planted and null studies of the mixed-model checks per mixed scenario (0: skip).
    mixed_seeds : tuple of int
        Seed counts of the mixed-model checks.
    mixed_scenarios : tuple of str
        Scenarios of the mixed-model checks (fitted with a linear learning curve).
    jobs : int
        Processes for the mixed-model fits.
    seed : int
        Seed of the whole simulation.
    """

    seeds: tuple[int, ...] = (3, 5, 10)
    scenarios: tuple[str, ...] = SCENARIO_NAMES
    studies: int = 2000
    null_studies: int = 4000
    bca_studies: int = 500
    n_boot: int = 1000
    planning_studies: int = 1000
    example_studies: int = 1000
    example_boot_studies: int = 200
    mixed_studies: int = 100
    mixed_seeds: tuple[int, ...] = (10,)
    mixed_scenarios: tuple[str, ...] = ("normal", "seed x variant", "floor")
    jobs: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (*self.scenarios, *self.mixed_scenarios):
            scenario(name)  # an unknown name fails here, naming the valid ones
        if min(self.seeds) < 3 or min(self.mixed_seeds, default=3) < 3:
            raise ValueError(f"seed counts must be at least 3, got {self.seeds} and {self.mixed_seeds}")
        if self.studies < 10 or self.null_studies < 10:
            raise ValueError(
                f"need at least 10 studies, got studies={self.studies}, null={self.null_studies}"
            )


def _contrast_rows(plan: ValidationPlan) -> list[dict]:
    rows = []
    for name in plan.scenarios:
        sc = scenario(name)
        for seeds in plan.seeds:
            rng = numpy_rng(plan.seed, "validate", name, seeds)
            rows += coverage.contrast_checks(
                sc, seeds, rng, studies=plan.studies, null_studies=plan.null_studies
            )
            if plan.bca_studies:
                rows += coverage.bca_checks(sc, seeds, rng, studies=plan.bca_studies, n_boot=plan.n_boot)
            rows += coverage.level_checks(sc, seeds, rng, studies=plan.studies)
        if plan.planning_studies:
            rng = numpy_rng(plan.seed, "validate", name, "planning")
            rows += coverage.planning_checks(sc, rng, studies=plan.planning_studies)
    return rows


def _model_rows(plan: ValidationPlan) -> list[dict]:
    rows = []
    for regime in model_checks.EXAMPLE_REGIMES:
        for seeds in plan.seeds:
            rng = numpy_rng(plan.seed, "validate", "examples", regime.name, seeds)
            rows += model_checks.hierarchical_checks(
                regime, seeds, rng, studies=plan.example_studies, boot_studies=plan.example_boot_studies
            )
    for name in plan.mixed_scenarios if plan.mixed_studies else ():
        for seeds in plan.mixed_seeds:
            rng = numpy_rng(plan.seed, "validate", "mixed", name, seeds)
            rows += model_checks.mixed_checks(
                scenario(name), seeds, rng, studies=plan.mixed_studies, jobs=plan.jobs
            )
    return rows


def run_validation(plan: ValidationPlan | None = None) -> pd.DataFrame:
    """Run the simulation study; one row per scenario x seeds x procedure x quantity.

    Returns
    -------
    DataFrame
        Columns ``scenario, seeds, procedure, quantity, nominal, measured, se, studies``; ``se`` is the
        Monte Carlo standard error of ``measured``.
    """
    plan = plan or ValidationPlan()
    rows = _contrast_rows(plan) + _model_rows(plan)
    return pd.DataFrame(rows, columns=coverage.ROW_COLUMNS)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m analysis.validate``."""
    parser = argparse.ArgumentParser(prog="python -m analysis.validate", description=__doc__.splitlines()[0])
    defaults = ValidationPlan()
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=list(defaults.seeds), help="seed counts (3 5 10)"
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=list(defaults.scenarios),
        choices=SCENARIO_NAMES,
        metavar="NAME",
        help=f"scenarios (default all: {', '.join(SCENARIO_NAMES)})",
    )
    for field in fields(ValidationPlan):
        if field.type in ("int", int) and field.name != "seed":
            flag = "--" + field.name.replace("_", "-")
            parser.add_argument(flag, type=int, default=field.default, help=f"(default {field.default})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the simulation (default 0)")
    parser.add_argument(
        "--mixed-seeds", type=int, nargs="+", default=list(defaults.mixed_seeds), help="(default 10)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print the validation table."""
    args = vars(build_parser().parse_args(argv))
    plan = ValidationPlan(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})
    start = time.perf_counter()
    table = run_validation(plan)
    print(f"# python -m analysis.validate: {plan}")
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"# {time.perf_counter() - start:.0f} s")
    return 0
