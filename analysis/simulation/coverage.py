"""Simulation study of the statistics: coverage of the 95 % intervals and the Holm family-wise error.

``python -m analysis.validate [--studies 1000] [--seeds 10] [--seed 0] [--n-boot 2000]``

Each simulated study has the design of a real one (3 variants x 5 data fractions x ``seeds`` seeds,
200 test examples) and the generative model of :mod:`analysis.simulation.study`: a learning curve, a seed
random effect shared across variants and fractions, run noise, and binomial test-set noise. The
per-seed accuracies are drawn directly as arrays (studies x variants x seeds x fractions), so thousands
of studies take seconds; the intervals are computed with the same functions the report uses
(:func:`analysis.stats.intervals.bca_means`, :func:`analysis.stats.hypothesis_tests.holm`,
:func:`analysis.stats.mixed.fit_mixed`).

Measured: coverage of the paired-contrast intervals (expanded BCa bootstrap over seeds jointly, plain
BCa for comparison, and the paired t-interval), of the mixed-model Wald intervals of the variant and
interaction coefficients, and the family-wise error of Holm-adjusted paired t-tests when every
variant equals the reference (family: 2 variants x (5 fractions + pooled) = 12 contrasts).

The mixed model is checked twice: with a learning curve linear in log2(fraction) (the model's fixed
part is right; this is the coverage target) and with the curved power-law learning curve of real
training, where the curvature the model cannot follow inflates the residual variance and the Wald
intervals become conservative (they cover more than 95 %).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats

from analysis.simulation.study import N_FULL, expected_error
from analysis.stats.hypothesis_tests import holm
from analysis.stats.intervals import bca_means, resample_indices, t_band
from analysis.stats.mixed import fit_mixed
from downscalexr.seeding import numpy_rng

VARIANTS = ("avgpool", "maxpool", "strided")
FRACTIONS = np.array([0.05, 0.1, 0.25, 0.5, 1.0])
EFFECTS = np.array([0.0, -0.02, 0.0])  # accuracy shift at fraction 1 (maxpool worse)
INTERACTION = np.array([0.0, 0.0, 0.01])  # per doubling of data (strided gains more with data)
N_TEST, SEED_SD, NOISE_SD = 200, 0.015, 0.01


def simulate_accuracy(
    n_studies: int, n_seeds: int, rng: np.random.Generator, *, null: bool = False, curve: str = "power"
) -> np.ndarray:
    """Per-run test accuracy, shape (studies, variants, seeds, fractions).

    ``curve="power"`` uses the learning curve of :mod:`analysis.simulation.study` (error ~ n^-0.5, curved in
    log2 fraction); ``curve="linear"`` joins its end points linearly in log2 fraction, so the mixed
    model's fixed part is exactly right.
    """
    if curve not in ("power", "linear"):
        raise ValueError(f"unknown curve {curve!r}; choose from 'power', 'linear'")
    shape = (n_studies, len(VARIANTS), n_seeds, FRACTIONS.size)
    log2f = np.log2(FRACTIONS)
    err = expected_error(FRACTIONS * N_FULL)  # (F,)
    if curve == "linear":
        err = err[-1] + (err[0] - err[-1]) * log2f / log2f[0]
    if not null:
        err = err - EFFECTS[:, None, None] - INTERACTION[:, None, None] * log2f  # (V, 1, F)
    err = err - rng.normal(0, SEED_SD, (n_studies, 1, n_seeds, 1)) + rng.normal(0, NOISE_SD, shape)
    return rng.binomial(N_TEST, np.clip(1 - err, 0, 1)) / N_TEST


def paired_differences(acc: np.ndarray, *, null: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-seed differences to the reference: (studies, contrasts, seeds), their truths and labels."""
    diffs, truth, labels = [], [], []
    for v in range(1, len(VARIANTS)):
        d = acc[:, v] - acc[:, 0]  # (N, S, F)
        true_f = np.zeros(FRACTIONS.size) if null else EFFECTS[v] + INTERACTION[v] * np.log2(FRACTIONS)
        for k, f in enumerate(FRACTIONS):
            diffs.append(d[:, :, k])
            truth.append(true_f[k])
            labels.append(f"{VARIANTS[v]} @ {f:g}")
        diffs.append(d.mean(2))
        truth.append(true_f.mean())
        labels.append(f"{VARIANTS[v]} pooled")
    return np.stack(diffs, axis=1), np.array(truth), labels


def bootstrap_coverage(
    diffs: np.ndarray,
    truth: np.ndarray,
    *,
    n_boot: int,
    rng: np.random.Generator,
    expand: bool,
    chunk: int = 25,
) -> np.ndarray:
    """Whether each (study, contrast) BCa interval covers the truth; seeds resampled jointly per study."""
    n_studies, n_contrasts, n_seeds = diffs.shape
    covered = np.zeros((n_studies, n_contrasts), dtype=bool)
    for start in range(0, n_studies, chunk):
        block = diffs[start : start + chunk]  # each block shares one index matrix; blocks are independent
        idx = resample_indices(n_seeds, n_boot, rng)
        _, low, high = bca_means(block.reshape(-1, n_seeds), idx, expand=expand)
        hit = (low <= np.tile(truth, len(block))) & (np.tile(truth, len(block)) <= high)
        covered[start : start + len(block)] = hit.reshape(len(block), n_contrasts)
    return covered


def t_coverage(diffs: np.ndarray, truth: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Whether each paired t-interval covers the truth."""
    mean, half = t_band(diffs, alpha, axis=-1)
    return np.abs(mean - truth) <= half


def holm_fwer(diffs: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """Family-wise error (any rejection) with Holm-adjusted and with unadjusted paired t-tests."""
    p = stats.ttest_1samp(diffs, 0.0, axis=-1).pvalue  # (N, C)
    adjusted = np.apply_along_axis(holm, 1, p)
    return float((adjusted < alpha).any(1).mean()), float((p < alpha).any(1).mean())


def mixed_coverage(acc: np.ndarray, alpha: float = 0.05, jobs: int = 1) -> tuple[np.ndarray, list[str], int]:
    """Wald coverage of the variant and interaction coefficients per study, and studies with warnings.

    ``jobs`` > 1 splits the studies over that many processes (joblib); results do not depend on it.
    """
    if jobs > 1 and len(acc) > 1:
        parts = Parallel(n_jobs=jobs)(
            delayed(mixed_coverage)(chunk, alpha) for chunk in np.array_split(acc, jobs)
        )
        return np.concatenate([p[0] for p in parts]), parts[0][1], sum(p[2] for p in parts)
    n_studies, n_v, n_s, n_f = acc.shape
    grid = np.meshgrid(np.arange(n_v), np.arange(n_s), np.arange(n_f), indexing="ij")
    v_idx, s_idx, f_idx = (a.ravel() for a in grid)
    terms, truth = [], []
    for v in range(1, n_v):
        terms += [f"variant[{VARIANTS[v]}]", f"variant[{VARIANTS[v]}]:log2_fraction"]
        truth += [100 * EFFECTS[v], 100 * INTERACTION[v]]
    covered = np.zeros((n_studies, len(terms)), dtype=bool)
    flagged = 0
    for i in range(n_studies):
        runs = pd.DataFrame(
            {
                "variant": np.array(VARIANTS)[v_idx],
                "seed": s_idx,
                "status": "ok",
                "data_fraction": FRACTIONS[f_idx],
                "accuracy": acc[i].ravel(),
            }
        )
        result = fit_mixed(runs, "accuracy", alpha=alpha, lrt=False)
        flagged += bool(result.warnings)
        coef = result.coefficients.set_index("term").loc[terms]
        covered[i] = (coef["low"].to_numpy() <= truth) & (np.array(truth) <= coef["high"].to_numpy())
    return covered, terms, flagged


def _coverage_row(quantity: str, method: str, hits: np.ndarray, target: str) -> dict:
    """Mean coverage over studies with its Monte Carlo SE; ``hits`` is studies x intervals.

    Intervals of one study are correlated (shared reference, shared seeds): the standard error comes
    from the spread of per-study coverage, not from treating every interval as independent.
    """
    per_study = hits.reshape(hits.shape[0], -1).mean(1)
    se = float(per_study.std(ddof=1) / np.sqrt(per_study.size))
    return {
        "quantity": quantity,
        "method": method,
        "value": float(per_study.mean()),
        "se": se,
        "n": int(hits.size),
        "target": target,
    }


def _rate_row(quantity: str, method: str, value: float, n: int, target: str, se: float | None = None) -> dict:
    """A rate over ``n`` studies with its binomial standard error (or ``se`` when given)."""
    se = float(np.sqrt(value * (1 - value) / n)) if se is None else se
    return {"quantity": quantity, "method": method, "value": value, "se": se, "n": n, "target": target}


def _mixed_rows(acc: np.ndarray, linear: np.ndarray, jobs: int) -> list[dict]:
    """Wald coverage of the mixed model on linear and curved learning curves, and how often fits warned."""
    rows = []
    for label, data, target in (
        ("linear curve", linear, "0.93-0.97"),
        ("curved learning curve", acc, "(conservative)"),
    ):
        covered, _, flagged = mixed_coverage(data, jobs=jobs)
        rows.append(
            _coverage_row(f"coverage, mixed-model coefficients, {label}", "Wald (REML)", covered, target)
        )
        quantity = f"mixed fits with warnings, {label}"
        rows.append(
            _rate_row(quantity, "fallback/singular", flagged / len(data), len(data), "(reported)", np.nan)
        )
    return rows


def run_validation(
    studies: int = 1000,
    seeds: int = 10,
    seed: int = 0,
    n_boot: int = 2000,
    mixed_studies: int | None = None,
    null_studies: int = 10000,
    jobs: int = 1,
) -> pd.DataFrame:
    """Run the simulation study; one row per measured quantity with its Monte Carlo standard error.

    Parameters
    ----------
    studies, seeds : int
        Simulated studies with planted effects, and seeds per study.
    seed : int
        Seed of the whole simulation.
    n_boot : int
        Bootstrap resamples per interval.
    mixed_studies : int or None
        How many of the studies are refitted with the mixed model (None: all).
    null_studies : int
        Studies without any effect, for the family-wise error (cheap: only t-tests).
    jobs : int
        Processes for the mixed-model fits (the only part that is not vectorised).

    Returns
    -------
    DataFrame
        Columns ``quantity, method, value, se, n, target``.
    """
    if studies < 10 or seeds < 3:
        raise ValueError(f"need at least 10 studies and 3 seeds, got studies={studies}, seeds={seeds}")
    rng = numpy_rng(seed, "validate")
    acc = simulate_accuracy(studies, seeds, rng)
    diffs, truth, _ = paired_differences(acc)
    quantity = "coverage, paired contrasts"
    rows = [
        _coverage_row(
            quantity,
            "bootstrap BCa, expanded (report)",
            bootstrap_coverage(diffs, truth, n_boot=n_boot, rng=rng, expand=True),
            "0.93-0.97",
        ),
        _coverage_row(
            quantity,
            "bootstrap BCa, plain",
            bootstrap_coverage(diffs, truth, n_boot=n_boot, rng=rng, expand=False),
            "(reference)",
        ),
        _coverage_row(quantity, "paired t-interval", t_coverage(diffs, truth), "0.93-0.97"),
    ]
    null_diffs, _, _ = paired_differences(simulate_accuracy(null_studies, seeds, rng, null=True), null=True)
    fwer_holm, fwer_raw = holm_fwer(null_diffs)
    quantity, n = "family-wise error, 12 null contrasts", null_diffs.shape[0]
    rows.append(_rate_row(quantity, "Holm-adjusted paired t", fwer_holm, n, "<= 0.05"))
    rows.append(_rate_row(quantity, "unadjusted paired t", fwer_raw, n, "(reference)"))
    m = studies if mixed_studies is None else min(mixed_studies, studies)
    if m > 0:
        rows += _mixed_rows(acc[:m], simulate_accuracy(m, seeds, rng, curve="linear"), jobs)
    return pd.DataFrame(rows, columns=["quantity", "method", "value", "se", "n", "target"])


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``python -m analysis.validate``."""
    parser = argparse.ArgumentParser(prog="python -m analysis.validate", description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000, help="simulated studies (default 1000)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per study (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
    parser.add_argument(
        "--n-boot", type=int, default=2000, help="bootstrap resamples per interval (default 2000)"
    )
    parser.add_argument(
        "--mixed-studies",
        type=int,
        default=None,
        help="studies refitted with the mixed model (default: all; ~0.1 s per fit)",
    )
    parser.add_argument(
        "--null-studies",
        type=int,
        default=10000,
        help="null studies for the family-wise error (default 10000; cheap)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="processes for the mixed fits (default 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: print the validation table."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    table = run_validation(
        args.studies, args.seeds, args.seed, args.n_boot, args.mixed_studies, args.null_studies, args.jobs
    )
    print(
        f"# validation: {args.studies} studies, {args.seeds} seeds, 3 variants x 5 fractions, "
        f"{args.n_boot} resamples, seed {args.seed}"
    )
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    print(f"# {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
