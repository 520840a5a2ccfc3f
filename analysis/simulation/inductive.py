"""Schema-valid inductive-bias studies with planted effects: MLP rows, permutation, location shift, init.

The generative model makes every planted quantity an exact expected value:

* Each run's expected accuracy is ``a = base(fraction) + arm effect + init effect - shift drop + u_seed``
  plus run noise, where for CNN variant ``v`` on permuted (``p = True``) or unpermuted images
  ``arm effect = effects[p][v]`` (0 for the reference) and for the MLP ``arm effect = -mlp_gap[p]``. So
  the expected CNN - MLP accuracy difference is ``mlp_gap[p] + effects[p][v]``, and a variant's drop
  under the location shift is ``shift_drop[arm]``.
* Scores are perfectly calibrated by construction: P(positive) ``s`` has the marginal law
  ``Beta(pi kappa, (1 - pi) kappa)`` (mean = prevalence ``pi``), drawn as ``Beta(a + 1, b)`` for positive
  and ``Beta(a, b + 1)`` for negative examples, so that P(positive | s) = s exactly. ``kappa`` is solved
  for the run's expected accuracy at threshold 0.5 (achievable range 0.62 to 0.99; values outside are
  clipped). A Gaussian copula with correlation ``example_rho`` makes some test examples hard for every
  run without changing these marginals.
* Shift consistency per run is ``consistency[v][mode] + u + noise``; kernels are planted as low-pass
  (smooth Gaussian blobs), high-pass (checkerboards) or random (white noise) per variant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

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
from downscalexr import schema
from downscalexr.seeding import numpy_rng

KERNEL_KINDS = ("lowpass", "highpass", "random")
BASE_ACCURACY = 0.9  # expected accuracy of the reference CNN at data fraction 1
ACCURACY_RANGE = (0.62, 0.99)
_LOG_KAPPA = np.linspace(np.log(0.02), np.log(400.0), 400)


def _accuracy_at(kappa: np.ndarray, prevalence: float = PREVALENCE) -> np.ndarray:
    a, b = prevalence * kappa, (1 - prevalence) * kappa
    return prevalence * stats.beta.sf(0.5, a + 1, b) + (1 - prevalence) * stats.beta.cdf(0.5, a, b + 1)


_ACCURACY_GRID = _accuracy_at(np.exp(_LOG_KAPPA))  # decreasing in kappa


def calibrated_scores(labels: np.ndarray, accuracy: float, u: np.ndarray) -> np.ndarray:
    """Perfectly calibrated P(positive) scores with expected accuracy ``accuracy`` at threshold 0.5.

    Parameters
    ----------
    labels : ndarray
        0/1 labels with prevalence :data:`analysis.simulation.tables.PREVALENCE`.
    accuracy : float
        Expected accuracy, clipped to :data:`ACCURACY_RANGE`.
    u : ndarray
        Uniform draws, one per example (small u = a hard example, scored on the wrong side).
    """
    acc = float(np.clip(accuracy, *ACCURACY_RANGE))
    kappa = float(np.exp(np.interp(-acc, -_ACCURACY_GRID, _LOG_KAPPA)))
    a, b = PREVALENCE * kappa, (1 - PREVALENCE) * kappa
    return np.where(labels == 1, stats.beta.ppf(u, a + 1, b), stats.beta.isf(u, a, b + 1))


def planted_kernel(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``size x size`` kernel of ``kind`` with a random sign, scale and (for low-pass) centre."""
    if kind not in KERNEL_KINDS:
        raise ValueError(f"kernel kind {kind!r} is unknown; choose from {', '.join(KERNEL_KINDS)}")
    r = np.arange(size) - (size - 1) / 2
    if kind == "lowpass":
        cy, cx = rng.uniform(-0.5, 0.5, 2)
        k = np.exp(-((r[:, None] - cy) ** 2 + (r[None, :] - cx) ** 2) / (2 * 1.5**2))
    elif kind == "highpass":
        checkerboard = (-1.0) ** (np.arange(size)[:, None] + np.arange(size)[None, :])
        k = checkerboard + 0.1 * rng.normal(size=(size, size))
    else:
        k = rng.normal(size=(size, size))
    return k * rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 2.0)


@dataclass(frozen=True, eq=False)
class InductivePlan:
    """What :func:`simulate_inductive_study` plants.

    Parameters
    ----------
    variants : sequence of str
        CNN variants (model ``lenet``); the first is the reference.
    include_mlp : bool
        Add MLP runs (model ``mlp``, variant ``none``, init ``random``) at every permute/shift level.
    permute, location_shifts, inits : sequence
        Factor levels, fully crossed (``NaN`` shift = none; MLP runs only get ``random`` init).
    fractions, seeds, n_test
        Data fractions, number of seeds, test examples (shared test set, prevalence 0.6).
    mlp_gap : (float, float)
        Expected accuracy of the reference CNN minus the MLP, unpermuted and permuted.
    effects : dict bool -> dict variant -> float
        Accuracy effect of a variant against the reference, per permute level.
    shift_drop : dict arm -> float
        Expected accuracy lost under a location shift (arm = variant or ``"mlp"``).
    init_effect : dict init -> float
        Accuracy effect of ``edge_frozen`` / ``edge_trainable`` against random init (CNN runs).
    consistency : dict variant -> (circular, pad)
        Expected shift consistency; variants missing here get NaN (not measured). MLP runs get NaN.
    kernel_kind : dict variant -> str
        Planted first-layer kernels of unpermuted runs (``lowpass``, ``highpass``, ``random``; default
        ``lowpass``); permuted runs get ``permuted_kernel_kind``.
    kernel_shape : (out_channels, in_channels, size)
    seed_sd, noise_sd, example_rho
        Seed random effect and run noise (accuracy scale), and the copula correlation of test examples.
    study, seed
        Study name; seed of every draw (equal plans give identical tables).
    """

    variants: Sequence[str] = ("avgpool", "maxpool", "strided")
    include_mlp: bool = True
    permute: Sequence[bool] = (False, True)
    location_shifts: Sequence[float] = (np.nan,)
    inits: Sequence[str] = ("random",)
    fractions: Sequence[float] = (0.5, 1.0)
    seeds: int = 10
    n_test: int = 1000
    mlp_gap: tuple[float, float] = (0.10, 0.0)
    effects: Mapping[bool, Mapping[str, float]] | None = None
    shift_drop: Mapping[str, float] | None = None
    init_effect: Mapping[str, float] | None = None
    consistency: Mapping[str, tuple[float, float]] | None = None
    kernel_kind: Mapping[str, str] | None = None
    permuted_kernel_kind: str = "random"
    kernel_shape: tuple[int, int, int] = (6, 1, 5)
    seed_sd: float = 0.01
    noise_sd: float = 0.005
    example_rho: float = 0.8
    study: str = "inductive-sim"
    seed: int = 0

    def __post_init__(self) -> None:
        effects = {p: dict((self.effects or {}).get(p, {})) for p in (False, True)}
        object.__setattr__(self, "variants", tuple(self.variants))
        object.__setattr__(self, "effects", effects)
        for name in ("shift_drop", "init_effect", "consistency", "kernel_kind"):
            object.__setattr__(self, name, dict(getattr(self, name) or {}))
        kinds = [*self.kernel_kind.values(), self.permuted_kernel_kind]
        unknown = sorted(set(kinds) - set(KERNEL_KINDS))
        if unknown:
            raise ValueError(f"kernel kinds {unknown} are unknown; choose from {', '.join(KERNEL_KINDS)}")

    def cells(self) -> list[tuple[str, bool, float, str]]:
        """Every (arm, permute, location shift, init) cell of the design."""
        cells = []
        for arm in [*self.variants, *(["mlp"] if self.include_mlp else [])]:
            for p in self.permute:
                for shift in self.location_shifts:
                    for init in self.inits if arm != "mlp" else ("random",):
                        cells.append((arm, bool(p), float(shift), init))
        return cells

    def mean_effect(self, arm: str, permuted: bool, shift: float, init: str) -> float:
        """Expected accuracy of a cell minus the reference CNN's at the same fraction and seed."""
        if arm == "mlp":
            mean = -self.mlp_gap[permuted]
        else:
            mean = self.effects[permuted].get(arm, 0.0) + self.init_effect.get(init, 0.0)
        return mean - (self.shift_drop.get(arm, 0.0) if np.isfinite(shift) else 0.0)


def _draw_scores(
    plan: InductivePlan, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict]:
    """Design rows (one per run), the shared labels, every run's scores, and the expected accuracies."""
    u_seed = rng.normal(0, plan.seed_sd, plan.seeds)
    labels = draw_labels(plan.n_test, rng)
    difficulty = rng.normal(size=plan.n_test)
    rows, scores, truth = [], [], {}
    slope = 0.05 * float(np.mean(np.log2(plan.fractions)))
    rho = plan.example_rho
    for arm, p, shift, init in plan.cells():
        mean = plan.mean_effect(arm, p, shift, init)
        truth[(arm, p, None if np.isnan(shift) else shift, init)] = BASE_ACCURACY + mean + slope
        for s in range(plan.seeds):
            for f in plan.fractions:
                acc = BASE_ACCURACY + 0.05 * np.log2(f) + mean + u_seed[s] + rng.normal(0, plan.noise_sd)
                latent = np.sqrt(rho) * difficulty + np.sqrt(1 - rho) * rng.normal(size=plan.n_test)
                scores.append(calibrated_scores(labels, acc, special.ndtr(latent)))
                rows.append(
                    {
                        "arm": arm,
                        "permute": p,
                        "location_shift": shift,
                        "init": init,
                        "seed": s,
                        "data_fraction": float(f),
                    }
                )
    return pd.DataFrame(rows), labels, np.array(scores), truth


def _runs(plan: InductivePlan, design: pd.DataFrame, metrics: dict, rng: np.random.Generator) -> pd.DataFrame:
    """The ``runs`` table: every run ok, shift consistency drawn around the planted values."""
    mlp = design["arm"] == "mlp"
    planted = [plan.consistency.get(a, (np.nan, np.nan)) for a in design["arm"]]
    n = len(design)
    return runs_table(
        {
            "run_id": [run_id(plan.study, *r) for r in design.itertuples(index=False)],
            "study": plan.study,
            "dataset": "synthetic",
            "model": np.where(mlp, "mlp", "lenet"),
            "variant": np.where(mlp, "none", design["arm"]),
            "seed": design["seed"],
            "data_fraction": design["data_fraction"],
            "n_train": np.rint(design["data_fraction"] * 2000).astype(int),
            "image_size": 32,
            "epochs_run": 3,
            "batch_size": 32,
            "lr": 1e-3,
            "optimizer": "adam",
            "transform": "none",
            "permute": design["permute"],
            "location_shift": design["location_shift"],
            "init": design["init"],
            "params": np.where(mlp, 61_000, 60_000),
            "flops": 2.4e6,
            "model_bytes": 240_000,
            "status": "ok",
            "error": None,
            "train_seconds": 1.0,
            **metrics,
            "train_accuracy": np.clip(metrics["accuracy"] + 0.03, 0, 1),
            "val_accuracy": metrics["accuracy"],
            "val_auroc": metrics["auroc"],
            "best_epoch": 2,
            "shift_consistency_circular": np.clip(
                np.array([c[0] for c in planted]) + rng.normal(0, 0.01, n), 0, 1
            ),
            "shift_consistency_pad": np.clip(
                np.array([c[1] for c in planted]) + rng.normal(0, 0.01, n), 0, 1
            ),
        }
    )


def _kernels(
    plan: InductivePlan, runs: pd.DataFrame, design: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """The ``kernels`` table: the planted first-layer kernels of every CNN run."""
    out_c, in_c, size = plan.kernel_shape
    parts = []
    for rid, arm, p in zip(runs["run_id"], design["arm"], design["permute"], strict=True):
        if arm == "mlp":
            continue
        kind = plan.permuted_kernel_kind if p else plan.kernel_kind.get(arm, "lowpass")
        w = np.array([[planted_kernel(kind, size, rng) for _ in range(in_c)] for _ in range(out_c)])
        o, i, r, c = np.meshgrid(*(np.arange(s) for s in w.shape), indexing="ij")
        parts.append(
            pd.DataFrame(
                {
                    "run_id": rid,
                    "layer": "conv1",
                    "out_channel": o.ravel(),
                    "in_channel": i.ravel(),
                    "row": r.ravel(),
                    "col": c.ravel(),
                    "value": w.ravel(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else schema.empty("kernels")


def simulate_inductive_study(**plan) -> dict:
    """Simulate ``runs``, ``epochs``, ``predictions``, ``latency`` and ``kernels`` of an inductive-bias study.

    Parameters
    ----------
    **plan
        The fields of :class:`InductivePlan` (variants, factor levels, planted effects, ...).

    Returns
    -------
    dict
        The five tables (schema-conformed) and ``truth`` with the expected ``accuracy`` of every cell
        (keyed by ``(arm, permute, shift, init)``, averaged over fractions and seeds' random effects)
        and the ``reference`` variant.
    """
    spec = InductivePlan(**plan)
    rng = numpy_rng(spec.seed, "simulate_inductive_study")
    design, labels, scores, truth = _draw_scores(spec, rng)
    runs = _runs(spec, design, score_metrics(labels, scores, 0.5), rng)
    ids, n = runs["run_id"].to_numpy(), len(runs)
    epochs = epochs_table(
        ids,
        train_loss=np.full(3, 0.3),
        val_loss=np.full(3, 0.35),
        train_accuracy=np.outer(runs["train_accuracy"].to_numpy(), np.ones(3)),
        val_accuracy=np.outer(runs["val_accuracy"].to_numpy(), np.ones(3)),
        val_auroc=np.full(n, 0.9),
        seconds=np.full(n, 0.3),
    )
    seconds = np.exp(rng.normal(np.log(2e-3), 0.05, 3 * n)).reshape(n, 1, 3)
    tables = {
        "runs": runs,
        "epochs": epochs,
        "predictions": predictions_table(ids, labels, scores),
        "latency": latency_table(ids, np.array([1]), seconds),
        "kernels": _kernels(spec, runs, design, rng),
    }
    return {**conform_tables(tables), "truth": {"accuracy": truth, "reference": spec.variants[0]}}
