"""Schema-valid study tables with planted effects, for testing and validating the statistics.

The generative model is chosen so that every planted effect has an exact, known expected value:

* Each run (variant x seed x data fraction) has a true error rate
  ``err = e_inf + a * n_train**-b - effect[v] - interaction[v] * log2(fraction) - u_seed + e_run``
  with a seed random effect ``u_seed ~ N(0, seed_sd**2)`` shared by every variant and fraction of that
  seed (the pairing of the design) and run noise ``e_run ~ N(0, noise_sd**2)``.
* The error is split between the classes so that the overall error is unchanged by a false-positive
  shift: ``FPR = err + fpr_shift[v]`` and ``FNR = err - fpr_shift[v] * (1 - p) / p`` with prevalence ``p``.
* Each test example of a run is classified correctly with probability ``1 - FPR`` (negatives) or
  ``1 - FNR`` (positives). A Gaussian copula with correlation ``example_rho`` makes some examples hard for
  every run (as a fixed test set does) without changing those marginal probabilities.
* The metrics in ``runs`` are computed from the ``predictions`` rows, so the two tables agree.

Hence the expected accuracy difference between variant ``v`` and the reference at fraction ``f`` is
``effect[v] + interaction[v] * log2(f)`` exactly (as long as no rate is clipped to [0, 1]; the number of
clipped rates is reported in ``truth["clipped"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from analysis.simulation.tables import (
    PREVALENCE,
    conform_tables,
    draw_labels,
    epochs_table,
    latency_table,
    predictions_table,
    run_id,
    runs_table,
    score_metrics,
)
from downscalexr.seeding import numpy_rng

REFERENCE_MS = 0.5  # median time of the simulated reference workload at log speed 0
DEFAULT_LATENCY_MS = {"avgpool": 2.0, "maxpool": 2.1, "strided": 1.6, "blurpool": 2.6, "lppool": 2.4}
N_FULL = 4000  # training examples at data fraction 1.0


def expected_error(n_train: np.ndarray) -> np.ndarray:
    """The learning curve of every simulated study: error ``0.08 + 2.7 / sqrt(n_train)`` of the reference."""
    return 0.08 + 2.7 * n_train**-0.5


@dataclass(frozen=True, eq=False)
class StudyPlan:
    """What :func:`simulate_study` plants; validated when made.

    Parameters
    ----------
    variants : sequence of str
        Variant names; the first is the natural reference (``avgpool``).
    fractions : sequence of float
        Data fractions in (0, 1]; ``n_train = round(fraction * 4000)``.
    seeds : int or sequence of int
        Number of seeds (then seeds ``0 .. seeds-1``) or the seed values themselves.
    n_test : int
        Test examples (the same test set for every run, prevalence 0.6).
    effects : dict variant -> float
        Accuracy shift (absolute) of a variant at fraction 1.0; missing variants get 0.
    interaction : dict variant -> float
        Extra accuracy shift per doubling of the data fraction (coefficient on ``log2(fraction)``).
    fpr_shift : dict variant -> float
        Shift of the false-positive rate; the false-negative rate moves the other way so that the
        expected accuracy is unchanged.
    gap_shift : dict variant -> float
        Shift of the generalization gap ``train_accuracy - accuracy``.
    seed_sd, noise_sd : float
        Standard deviation of the seed random effect and of the per-run noise (accuracy scale).
    example_rho : float
        Correlation, across runs, of an example's latent difficulty, in [0, 1).
    latency_ms : dict variant -> float
        True median latency per image at batch size 1, in milliseconds.
    latency_repeats, latency_batch_sizes
        Timing repeats per run and batch sizes in the ``latency`` table.
    latency_drift, latency_slope
        Machine-speed drift: every run x batch size is timed at a log speed ``d ~ N(0, latency_drift)``
        that multiplies the reference workload's time (median :data:`REFERENCE_MS`) by ``exp(d)`` and
        the model's by ``exp(latency_slope * d)``; the slope is one number or one per variant (0.8 for
        a variant left out). The default drift 0 plants none.
    n_epochs : int
        Rows per run in the ``epochs`` table.
    n_failed : int
        Number of runs (chosen at random) marked ``failed`` with missing metrics.
    study : str
        Study name written in ``runs``.
    seed : int
        Seed of every random draw; equal plans give identical tables.
    """

    variants: Sequence[str] = ("avgpool", "maxpool", "strided")
    fractions: Sequence[float] = (0.05, 0.1, 0.25, 0.5, 1.0)
    seeds: int | Sequence[int] = 10
    n_test: int = 200
    effects: Mapping[str, float] | None = None
    interaction: Mapping[str, float] | None = None
    fpr_shift: Mapping[str, float] | None = None
    gap_shift: Mapping[str, float] | None = None
    seed_sd: float = 0.015
    noise_sd: float = 0.01
    example_rho: float = 0.3
    latency_ms: Mapping[str, float] | None = None
    latency_repeats: int = 10
    latency_batch_sizes: Sequence[int] = (1, 32)
    latency_drift: float = 0.0
    latency_slope: float | Mapping[str, float] = 0.8
    n_epochs: int = 6
    n_failed: int = 0
    study: str = "simulated"
    seed: int = 0
    seed_values: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        variants = list(self.variants)
        if len(set(variants)) != len(variants) or not variants:
            raise ValueError(f"variants must be distinct and non-empty, got {variants}")
        fractions = np.asarray(self.fractions, dtype=float)
        if fractions.size == 0 or np.any((fractions <= 0) | (fractions > 1)):
            raise ValueError(f"fractions must lie in (0, 1], got {fractions.tolist()}")
        seed_values = np.arange(self.seeds) if np.isscalar(self.seeds) else np.asarray(self.seeds, dtype=int)
        if seed_values.size < 1:
            raise ValueError("seeds must be at least 1")
        if not 0 <= self.example_rho < 1:
            raise ValueError(f"example_rho must lie in [0, 1), got {self.example_rho}")
        object.__setattr__(self, "variants", tuple(variants))
        object.__setattr__(self, "fractions", fractions)
        object.__setattr__(self, "seed_values", seed_values)
        for name in ("effects", "interaction", "fpr_shift", "gap_shift"):
            self.per_variant(name)  # unknown variant names fail here, not halfway through the draws

    def per_variant(self, name: str) -> np.ndarray:
        """The planted ``effects`` / ``interaction`` / ``fpr_shift`` / ``gap_shift``, one per variant."""
        values = dict(getattr(self, name) or {})
        unknown = sorted(set(values) - set(self.variants))
        if unknown:
            raise ValueError(f"{name} names unknown variants {unknown}; choose from {list(self.variants)}")
        return np.array([float(values.get(v, 0.0)) for v in self.variants])

    def latency_medians(self) -> np.ndarray:
        """The true median latency per image at batch size 1 of each variant (ms)."""
        values = {**DEFAULT_LATENCY_MS, **dict(self.latency_ms or {})}
        return np.array([values.get(v, 2.0) for v in self.variants])

    def latency_slopes(self) -> np.ndarray:
        """How each variant's time follows the machine speed (0.8 where not given)."""
        if isinstance(self.latency_slope, Mapping):
            return np.array([self.latency_slope.get(v, 0.8) for v in self.variants], dtype=float)
        return np.array([self.latency_slope] * len(self.variants), dtype=float)


@dataclass(frozen=True)
class _Design:
    """The run grid, variant slowest: indices of variant, seed and fraction of each run."""

    vi: np.ndarray
    si: np.ndarray
    fi: np.ndarray
    frac: np.ndarray
    n_train: np.ndarray

    @classmethod
    def of(cls, plan: StudyPlan) -> _Design:
        shape = (len(plan.variants), len(plan.seed_values), len(plan.fractions))
        vi, si, fi = (a.ravel() for a in np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"))
        frac = plan.fractions[fi]
        return cls(vi, si, fi, frac, np.maximum(np.rint(frac * N_FULL).astype(int), 1))


def _class_error_rates(
    plan: StudyPlan, design: _Design, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, int]:
    """True FPR and FNR of every run (clipped to [0.001, 0.999]) and the number of clipped rates."""
    vi, log2f = design.vi, np.log2(design.frac)
    u_seed = rng.normal(0.0, plan.seed_sd, len(plan.seed_values))
    err = (
        expected_error(design.n_train)
        - plan.per_variant("effects")[vi]
        - plan.per_variant("interaction")[vi] * log2f
        - u_seed[design.si]
        + rng.normal(0.0, plan.noise_sd, vi.size)
    )
    shift, p = plan.per_variant("fpr_shift")[vi], PREVALENCE
    fpr_true = err + shift
    fnr_true = err - shift * (1 - p) / p
    clipped = int(np.sum((fpr_true < 1e-3) | (fpr_true > 0.999) | (fnr_true < 1e-3) | (fnr_true > 0.999)))
    return np.clip(fpr_true, 1e-3, 0.999), np.clip(fnr_true, 1e-3, 0.999), clipped


def _scores(
    plan: StudyPlan, fpr: np.ndarray, fnr: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the shared test set and every run's P(positive) on it, wrong at the planted rates."""
    labels = draw_labels(plan.n_test, rng)
    difficulty = rng.normal(size=plan.n_test)
    rho = plan.example_rho
    latent = np.sqrt(rho) * difficulty[None, :] + np.sqrt(1 - rho) * rng.normal(size=(fpr.size, plan.n_test))
    error_rate = np.where(labels[None, :] == 1, fnr[:, None], fpr[:, None])
    wrong = special.ndtr(-latent) < error_rate  # hard examples: large difficulty -> wrong for many runs
    predicted = np.where(wrong, 1 - labels[None, :], labels[None, :])
    confidence = 0.5 + 0.5 * np.where(wrong, rng.beta(1.2, 2.5, wrong.shape), rng.beta(2.5, 1.2, wrong.shape))
    return labels, np.where(predicted == 1, confidence, 1 - confidence)


def _runs(
    plan: StudyPlan, design: _Design, metrics: dict, failed: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """The ``runs`` table: design, model facts, metrics (missing for failed runs) and provenance."""
    vi, n_runs = design.vi, design.vi.size
    variant_names = np.array(plan.variants)[vi]
    seeds = plan.seed_values[design.si]
    ids = [
        run_id(plan.study, v, int(s), float(f))
        for v, s, f in zip(variant_names, seeds, design.frac, strict=True)
    ]
    base_gap = 0.05 - 0.02 * np.log2(design.frac) + plan.per_variant("gap_shift")[vi]
    train_acc = np.clip(metrics["accuracy"] + base_gap + rng.normal(0, 0.005, n_runs), 0, 1)
    params = np.where(variant_names == "strided", 62_000, 60_000)

    def unless_failed(values: np.ndarray) -> np.ndarray:
        return np.where(failed, np.nan, values)

    return runs_table(
        {
            "run_id": ids,
            "study": plan.study,
            "dataset": "synthetic",
            "model": "lenet",
            "variant": variant_names,
            "seed": seeds,
            "data_fraction": design.frac,
            "n_train": design.n_train,
            "image_size": 64,
            "epochs_run": plan.n_epochs,
            "batch_size": 32,
            "lr": 1e-3,
            "optimizer": "adam",
            "transform": "none",
            "params": params,
            "flops": params * 40.0,
            "model_bytes": params * 4,
            "status": np.where(failed, "failed", "ok"),
            "error": np.where(failed, "simulated failure", None),
            "train_seconds": design.n_train * 1e-3 * plan.latency_medians()[vi],
            **{name: unless_failed(values) for name, values in metrics.items()},
            "train_accuracy": unless_failed(train_acc),
            "val_accuracy": unless_failed(metrics["accuracy"] + rng.normal(0, 0.01, n_runs)),
            "val_auroc": unless_failed(metrics["auroc"]),
            "best_epoch": plan.n_epochs - 1,
        }
    )


def _epochs(runs: pd.DataFrame, ok: np.ndarray, n_epochs: int) -> pd.DataFrame:
    """The ``epochs`` table of the ok runs: accuracy rises towards the run's final value."""
    ep = np.arange(n_epochs)
    approach = 1 - 0.3 * np.exp(-ep / 1.5)  # (E,)
    return epochs_table(
        runs["run_id"].to_numpy()[ok],
        train_loss=0.7 * np.exp(-ep / 2.0) + 0.05,
        val_loss=0.7 * np.exp(-ep / 2.5) + 0.15,
        train_accuracy=np.outer(runs["train_accuracy"].to_numpy()[ok], approach),
        val_accuracy=np.outer(runs["val_accuracy"].to_numpy()[ok], approach),
        val_auroc=runs["val_auroc"].to_numpy()[ok],
        seconds=runs["train_seconds"].to_numpy()[ok] / n_epochs,
    )


def _latency(
    plan: StudyPlan, run_ids: np.ndarray, variant_index: np.ndarray, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """The ``latency`` table of the given runs, and each run x batch size's planted log speed.

    Run factor and repeat noise are both log-normal with median 1, so medians scale exactly.
    """
    batch = np.asarray(plan.latency_batch_sizes, dtype=int)
    run_factor = np.exp(rng.normal(0, 0.03, run_ids.size))
    shape = (run_ids.size, batch.size, plan.latency_repeats)
    noise = np.exp(rng.normal(0, 0.05, shape))
    per_batch = batch[None, :, None] ** 0.8 / 1000.0
    speed = np.zeros((run_ids.size, batch.size, 1))  # log machine speed of each run x batch size
    if plan.latency_drift > 0:
        speed = rng.normal(0, plan.latency_drift, speed.shape)
    seconds = (
        plan.latency_medians()[variant_index][:, None, None] * run_factor[:, None, None] * per_batch * noise
    )
    seconds = seconds * np.exp(plan.latency_slopes()[variant_index][:, None, None] * speed)
    reference = REFERENCE_MS / 1000.0 * np.exp(speed + rng.normal(0, 0.03, shape))
    return latency_table(run_ids, batch, seconds, reference), speed


def _truth(plan: StudyPlan, labels: np.ndarray, speed: np.ndarray, clipped: int) -> dict:
    """The planted quantities, versus the first variant (see :func:`simulate_study`)."""
    eff, inter = plan.per_variant("effects"), plan.per_variant("interaction")
    shift, gap, lat = plan.per_variant("fpr_shift"), plan.per_variant("gap_shift"), plan.latency_medians()
    p, fractions, ref = PREVALENCE, plan.fractions, 0
    diff = {
        v: {float(f): float(eff[i] - eff[ref] + (inter[i] - inter[ref]) * np.log2(f)) for f in fractions}
        for i, v in enumerate(plan.variants)
    }
    shifted = {v: float(shift[i] - shift[ref]) for i, v in enumerate(plan.variants)}
    return {
        "reference": plan.variants[ref],
        "accuracy_diff": diff,
        "accuracy_diff_pooled": {
            v: float(eff[i] - eff[ref] + (inter[i] - inter[ref]) * np.log2(fractions).mean())
            for i, v in enumerate(plan.variants)
        },
        "fpr_diff": {v: {f: shifted[v] - d for f, d in diff[v].items()} for v in plan.variants},
        "fnr_diff": {
            v: {f: -shifted[v] * (1 - p) / p - d for f, d in diff[v].items()} for v in plan.variants
        },
        "ppr_over_prevalence_diff": {
            v: {f: (2 * shifted[v] * (1 - p) + d * (2 * p - 1)) / p for f, d in diff[v].items()}
            for v in plan.variants
        },
        "gap_diff": {v: float(gap[i] - gap[ref]) for i, v in enumerate(plan.variants)},
        "latency_ratio": {v: float(lat[i] / lat[ref]) for i, v in enumerate(plan.variants)},
        "latency_speed_log": float(speed.mean()),
        "latency_slope": {v: float(s) for v, s in zip(plan.variants, plan.latency_slopes(), strict=True)},
        "coef_variant_pp": {v: 100 * float(eff[i] - eff[ref]) for i, v in enumerate(plan.variants)},
        "coef_interaction_pp": {v: 100 * float(inter[i] - inter[ref]) for i, v in enumerate(plan.variants)},
        "seed_variance_pp": float((100 * plan.seed_sd) ** 2),
        "prevalence": float(labels.mean()),
        "clipped": clipped,
    }


def simulate_study(**plan) -> dict:
    """Simulate the four results tables of a study, with planted effects and their true values.

    Parameters
    ----------
    **plan
        The fields of :class:`StudyPlan` (variants, fractions, seeds, planted effects, latency, ...).

    Returns
    -------
    dict
        ``runs``, ``epochs``, ``predictions``, ``latency`` (schema-conformed DataFrames) and ``truth``, a
        dict with ``accuracy_diff``, ``fpr_diff``, ``fnr_diff``, ``ppr_over_prevalence_diff`` (each
        ``{variant: {fraction: diff}}``), ``accuracy_diff_pooled``, ``gap_diff``, ``latency_ratio``
        (all versus ``variants[0]``), ``latency_speed_log`` (mean planted log speed ``d`` over every run
        x batch size: at that speed the model's median time is ``latency_ms * batch**0.8 *
        exp(slope * latency_speed_log)``), ``latency_slope`` (per variant), ``coef_variant_pp`` and
        ``coef_interaction_pp`` (mixed-model coefficients in percentage points), ``seed_variance_pp``,
        ``prevalence`` and ``clipped`` (rates clipped to [0.001, 0.999]; truth is exact when 0).

    Raises
    ------
    ValueError
        If the plan is invalid (the message names the field and the valid values).

    Examples
    --------
    >>> tables = simulate_study(seeds=3, fractions=(0.5, 1.0), effects={"maxpool": -0.03})
    >>> len(tables["runs"])
    18
    >>> tables["truth"]["accuracy_diff"]["maxpool"][1.0]
    -0.03
    """
    spec = StudyPlan(**plan)
    rng = numpy_rng(spec.seed, "simulate_study")
    design = _Design.of(spec)
    fpr, fnr, clipped = _class_error_rates(spec, design, rng)
    labels, scores = _scores(spec, fpr, fnr, rng)
    failed = np.zeros(design.vi.size, dtype=bool)
    if spec.n_failed:
        failed[rng.choice(failed.size, size=min(spec.n_failed, failed.size), replace=False)] = True
    runs = _runs(spec, design, score_metrics(labels, scores, 0.5), failed, rng)
    ok = ~failed
    ok_ids = runs["run_id"].to_numpy()[ok]
    latency, speed = _latency(spec, ok_ids, design.vi[ok], rng)
    tables = {
        "runs": runs,
        "epochs": _epochs(runs, ok, spec.n_epochs),
        "predictions": predictions_table(ok_ids, labels, scores[ok]),
        "latency": latency,
    }
    return {**conform_tables(tables), "truth": _truth(spec, labels, speed, clipped)}
