"""A multi-class study with planted per-class recall, confusion structure, model effects and curves.

Design: models (e.g. ``lenet``, ``resnet8``) x variants x seeds x data fractions, on one balanced test
set of ``n_test`` examples of ``n_classes`` classes. Each design cell is an *arm* ``"model:variant"``.

Generative model (every planted quantity has an exact expected value while no rate is clipped):

* Run recall of class ``i``: ``r = recall[i] + effects[arm] - slope * log2(1 / fraction) + u_seed + e``
  with a seed effect ``u_seed ~ N(0, seed_sd**2)`` shared by every arm and fraction of a seed (the
  pairing of the design) and run noise ``e ~ N(0, noise_sd**2)``; clipped to [0.001, 0.999].
* Each test example of class ``i`` is right with probability ``r`` (a Gaussian copula with correlation
  ``example_rho`` makes some examples hard for every run, leaving that probability unchanged); a wrong
  example is given class ``j`` with probability ``W[i, j] / sum_k W[i, k]`` of the arm's error weights
  ``W`` (zero diagonal). Hence ``P(predict j | true i) = (1 - r_i) W[i, j] / sum_k W[i, k]``.
* Probabilities: the predicted class gets ``c`` in [0.5, 0.95], the others share ``1 - c`` at random,
  so the argmax is the predicted class. The ``runs`` metrics are computed from these probabilities by
  :func:`downscalexr.metrics.multiclass_metrics` (``f1`` is the macro F1), so the tables agree.
* ``epochs``: validations every ``eval_every`` optimiser steps; training loss
  ``floor + 1.5 exp(-step / tau) + o_run`` with arm-specific ``floor`` (``loss_floor``) and a run offset
  ``o_run ~ N(0, 0.02**2)``; validation loss 0.2 above it plus ``overfit[arm] * (step / last step)**2``
  (it rises again late in training); accuracies the run's final accuracy times
  ``1 - 0.5 exp(-step / tau)``. :meth:`MulticlassPlan.expected_losses` gives the expected curves.

With a balanced test set the expected accuracy of a run is the mean of its class recalls, so the
expected accuracy difference between two arms at one fraction is the difference of their ``effects``
(the planted operator effect of each model, :func:`simulate_multiclass_study`'s ``truth``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special

from analysis.simulation.tables import conform_tables, run_id, runs_table
from downscalexr import schema
from downscalexr.metrics import multiclass_metrics
from downscalexr.seeding import numpy_rng

N_FULL = 4000  # training examples at data fraction 1.0
TAU = 150.0  # optimiser steps of the planted loss decay


@dataclass(frozen=True, eq=False)
class MulticlassPlan:
    """What :func:`simulate_multiclass_study` plants; validated when made.

    Parameters
    ----------
    models, variants : sequence of str
        Model families and variants; every model gets every variant. The first variant is the reference.
    fractions : sequence of float
        Data fractions in (0, 1].
    seeds : int or sequence of int
        Number of seeds (then ``0 .. seeds-1``) or the seed values.
    n_classes, n_test : int
        Classes (>= 3) and test examples (a multiple of ``n_classes``: a balanced test set).
    recall : sequence of float, optional
        Recall of each class at fraction 1.0 before arm effects; default evenly from 0.9 to 0.6.
    effects : dict ``"model:variant"`` -> float
        Shift of every class's recall (so of accuracy) of an arm; missing arms get 0.
    error_weights : dict ``"model:variant"`` -> K x K array
        Where an arm's errors go (zero diagonal, rows not all zero); missing arms get :meth:`ring_weights`.
    slope : float
        Recall lost per halving of the data fraction.
    seed_sd, noise_sd, example_rho : float
        Seed effect SD, run noise SD (recall scale), and an example's latent difficulty correlation.
    eval_every, n_evals : int
        Optimiser steps between validations and validations per run (``epochs`` rows).
    loss_floor : dict ``"model:variant"`` -> float
        Final training loss of an arm (validation loss is 0.2 above it); missing arms get 0.3.
    overfit : dict ``"model:variant"`` -> float
        How much an arm's validation loss rises by the last step (quadratically); missing arms get 0.
    n_failed : int
        Runs (at random) marked ``failed``: no metrics, predictions or epochs.
    study : str
        Study name written in ``runs``.
    seed : int
        Seed of every draw; equal plans give identical tables.
    """

    models: Sequence[str] = ("lenet",)
    variants: Sequence[str] = ("avgpool", "maxpool", "strided")
    fractions: Sequence[float] = (0.25, 1.0)
    seeds: int | Sequence[int] = 10
    n_classes: int = 4
    n_test: int = 200
    recall: Sequence[float] | None = None
    effects: Mapping[str, float] | None = None
    error_weights: Mapping[str, Sequence] | None = None
    slope: float = 0.03
    seed_sd: float = 0.015
    noise_sd: float = 0.01
    example_rho: float = 0.3
    eval_every: int = 50
    n_evals: int = 8
    loss_floor: Mapping[str, float] | None = None
    overfit: Mapping[str, float] | None = None
    n_failed: int = 0
    study: str = "simulated-multiclass"
    seed: int = 0
    seed_values: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("models", "variants"):
            values = list(getattr(self, name))
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct and non-empty, got {values}")
            object.__setattr__(self, name, tuple(values))
        if self.n_classes < 3:
            raise ValueError(f"n_classes must be at least 3 (a multi-class task), got {self.n_classes}")
        if self.n_test < self.n_classes or self.n_test % self.n_classes:
            raise ValueError(f"n_test must be a positive multiple of n_classes, got {self.n_test}")
        fractions = np.asarray(self.fractions, dtype=float)
        if fractions.size == 0 or np.any((fractions <= 0) | (fractions > 1)):
            raise ValueError(f"fractions must lie in (0, 1], got {fractions.tolist()}")
        object.__setattr__(self, "fractions", fractions)
        seeds = np.arange(self.seeds) if np.isscalar(self.seeds) else np.asarray(self.seeds, dtype=int)
        if seeds.size < 1:
            raise ValueError("seeds must be at least 1")
        object.__setattr__(self, "seed_values", seeds)
        if not 0 <= self.example_rho < 1:
            raise ValueError(f"example_rho must lie in [0, 1), got {self.example_rho}")
        if len(self.class_recall()) != self.n_classes:
            raise ValueError(f"recall needs {self.n_classes} values, got {len(self.class_recall())}")
        for name in ("effects", "error_weights", "loss_floor", "overfit"):
            unknown = sorted(set(getattr(self, name) or {}) - set(self.arms))
            if unknown:
                raise ValueError(f"{name} names unknown arms {unknown}; choose from {list(self.arms)}")
        for arm in self.arms:
            self.weights(arm)

    @property
    def arms(self) -> tuple[str, ...]:
        """Every ``"model:variant"``, model slowest."""
        return tuple(f"{m}:{v}" for m in self.models for v in self.variants)

    def class_recall(self) -> np.ndarray:
        """Recall of each class at fraction 1.0 before arm effects."""
        if self.recall is None:
            return np.linspace(0.9, 0.6, self.n_classes)
        return np.asarray(self.recall, dtype=float)

    def ring_weights(self) -> np.ndarray:
        """Default error weights: class ``i`` is mistaken for ``i + 1`` three times as often as others."""
        k = self.n_classes
        w = np.ones((k, k)) - np.eye(k)
        w[np.arange(k), (np.arange(k) + 1) % k] = 3.0
        return w

    def weights(self, arm: str) -> np.ndarray:
        """The row-normalised error distribution ``P(predict j | wrong, true i)`` of an arm (K x K)."""
        w = np.asarray((self.error_weights or {}).get(arm, self.ring_weights()), dtype=float)
        k = self.n_classes
        if w.shape != (k, k) or np.any(w < 0) or np.any(np.diag(w) != 0) or np.any(w.sum(1) == 0):
            raise ValueError(f"error_weights[{arm!r}] must be {k} x {k}, >= 0, zero diagonal, rows not all 0")
        return w / w.sum(1, keepdims=True)

    def expected_confusion(self, arm: str, fraction: float = 1.0) -> np.ndarray:
        """``P(predict j | true i)`` of an arm at a fraction (exact while no recall is clipped)."""
        r = self.recall_at(arm, fraction)
        return np.diag(r) + (1 - r)[:, None] * self.weights(arm)

    def expected_losses(self, arm: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(steps, train loss, validation loss)``: the expected curves of an arm."""
        steps = self.eval_every * np.arange(1, self.n_evals + 1)
        train = (self.loss_floor or {}).get(arm, 0.3) + 1.5 * np.exp(-steps / TAU)
        rise = (self.overfit or {}).get(arm, 0.0) * (steps / steps[-1]) ** 2
        return steps, train, train + 0.2 + rise

    def recall_at(self, arm: str, fraction: float) -> np.ndarray:
        """Expected recall of every class of an arm at a fraction."""
        shift = (self.effects or {}).get(arm, 0.0) - self.slope * np.log2(1.0 / fraction)
        return self.class_recall() + shift


def _design(plan: MulticlassPlan) -> pd.DataFrame:
    """One row per run: arm index, model, variant, seed, fraction (arm slowest, fraction fastest)."""
    shape = (len(plan.arms), plan.seed_values.size, plan.fractions.size)
    ai, si, fi = (a.ravel() for a in np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"))
    arms = np.array(plan.arms)[ai]
    return pd.DataFrame(
        {
            "ai": ai,
            "si": si,
            "model": [a.split(":")[0] for a in arms],
            "variant": [a.split(":")[1] for a in arms],
            "seed": plan.seed_values[si],
            "data_fraction": plan.fractions[fi],
        }
    )


def _predicted(plan: MulticlassPlan, design: pd.DataFrame, rng: np.random.Generator):
    """Labels of the test set, every run's predicted class, and the number of clipped recalls."""
    k, n = plan.n_classes, plan.n_test
    labels = rng.permutation(np.arange(n) % k)
    u_seed = rng.normal(0, plan.seed_sd, plan.seed_values.size)
    arms = np.array(plan.arms)[design["ai"]]
    recall = np.stack([plan.recall_at(a, f) for a, f in zip(arms, design["data_fraction"], strict=True)])
    recall = recall + u_seed[design["si"], None] + rng.normal(0, plan.noise_sd, (len(design), 1))
    clipped = int(((recall < 1e-3) | (recall > 0.999)).sum())
    recall = np.clip(recall, 1e-3, 0.999)  # (R, K)
    rho = plan.example_rho
    latent = np.sqrt(rho) * rng.normal(size=n)[None, :] + np.sqrt(1 - rho) * rng.normal(size=(len(design), n))
    wrong = special.ndtr(-latent) < 1 - recall[:, labels]  # (R, N): hard examples are wrong for many runs
    predicted = np.repeat(labels[None, :], len(design), axis=0)
    for ai, arm in enumerate(plan.arms):
        cum = plan.weights(arm).cumsum(1)[labels]  # (N, K) error distribution of each example's class
        rows = design["ai"].to_numpy() == ai
        draw = rng.random((rows.sum(), n))
        other = (draw[:, :, None] > cum[None, :, :]).sum(2)  # inverse-CDF draw of the wrong class
        predicted[rows] = np.where(wrong[rows], np.minimum(other, k - 1), labels[None, :])
    return labels, predicted, clipped


def _probabilities(predicted: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Class probabilities (R, N, K) whose argmax is ``predicted`` (top in [0.5, 0.95])."""
    top = 0.5 + 0.45 * rng.beta(2.0, 2.0, predicted.shape)
    rest = rng.dirichlet(np.ones(k - 1), predicted.shape) * (1 - top)[..., None]  # (R, N, K-1)
    classes = np.arange(k)
    slot = np.clip(classes - (classes > predicted[..., None]), 0, k - 2)  # class j -> its slot in rest
    probs = np.take_along_axis(rest, slot, axis=-1)
    return np.where(classes == predicted[..., None], top[..., None], probs)


def _runs(plan: MulticlassPlan, design: pd.DataFrame, metrics: list, failed: np.ndarray, rng) -> pd.DataFrame:
    """The ``runs`` table: design, model facts, metrics (missing for failed runs), provenance."""
    n_runs = len(design)
    values = {key: np.array([m[key] for m in metrics]) for key in metrics[0]}
    values = {key: np.where(failed, np.nan, v) for key, v in values.items()}
    steps = plan.eval_every * plan.n_evals
    params = np.where(design["model"] == "lenet", 60_000, 75_000) + np.where(
        design["variant"] == "strided", 2_000, 0
    )
    return runs_table(
        {
            "run_id": [
                run_id(plan.study, m, v, int(s), float(f))
                for m, v, s, f in design[["model", "variant", "seed", "data_fraction"]].itertuples(
                    index=False
                )
            ],
            "study": plan.study,
            "dataset": "simulated-shapes",
            "model": design["model"],
            "variant": design["variant"],
            "seed": design["seed"],
            "data_fraction": design["data_fraction"],
            "n_train": np.maximum(np.rint(design["data_fraction"] * N_FULL).astype(int), 1),
            "image_size": 32,
            "epochs_run": plan.n_evals,
            "batch_size": 32,
            "lr": 1e-3,
            "optimizer": "adam",
            "transform": "none",
            "params": params,
            "flops": params * 40.0,
            "model_bytes": params * 4,
            "status": np.where(failed, "failed", "ok"),
            "error": np.where(failed, "simulated failure", None),
            "train_seconds": np.full(n_runs, 30.0),
            **values,
            "train_accuracy": np.where(failed, np.nan, np.clip(values["accuracy"] + 0.05, 0, 1)),
            "val_accuracy": np.where(failed, np.nan, values["accuracy"] + rng.normal(0, 0.01, n_runs)),
            "val_auroc": values["auroc"],
            "best_epoch": plan.n_evals - 1,
            "steps_run": steps,
            "best_step": steps,
        }
    )


def _epochs(
    plan: MulticlassPlan, runs: pd.DataFrame, design: pd.DataFrame, ok: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """The ``epochs`` table of the ok runs: planted loss curves per arm, accuracies rising to the run's."""
    arms = np.array(plan.arms)[design["ai"].to_numpy()[ok]]
    curves = {a: plan.expected_losses(a) for a in plan.arms}
    steps = curves[plan.arms[0]][0]
    offset = rng.normal(0, 0.02, (arms.size, 1))
    train = np.stack([curves[a][1] for a in arms]) + offset
    val = np.stack([curves[a][2] for a in arms]) + offset
    sub = runs[ok]
    n_runs, n_evals = len(sub), steps.size
    rise = 1 - 0.5 * np.exp(-steps / TAU)
    return pd.DataFrame(
        {
            "run_id": np.repeat(sub["run_id"].to_numpy(), n_evals),
            "epoch": np.tile(np.arange(n_evals), n_runs),
            "step": np.tile(steps, n_runs),
            "train_loss": train.ravel(),
            "train_accuracy": np.outer(sub["train_accuracy"].to_numpy(), rise).ravel(),
            "val_loss": val.ravel(),
            "val_accuracy": np.outer(sub["val_accuracy"].to_numpy(), rise).ravel(),
            "val_auroc": np.repeat(sub["val_auroc"].to_numpy(), n_evals),
            "seconds": 0.5,
        }
    )


def _predictions(run_ids: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """One row per run x test example x class: ``score`` is the probability of ``class_index``."""
    n_runs, n, k = probs.shape
    return pd.DataFrame(
        {
            "run_id": np.repeat(run_ids, n * k),
            "example_id": np.tile(np.repeat(np.arange(n), k), n_runs),
            "label": np.tile(np.repeat(labels, k), n_runs),
            "class_index": np.tile(np.arange(k), n_runs * n),
            "score": probs.ravel(),
        }
    )


def _truth(plan: MulticlassPlan, labels: np.ndarray, clipped: int) -> dict:
    """Planted accuracy effects (vs the first variant, per model) and the plan for exact expectations."""
    eff = dict(plan.effects or {})
    ref = plan.variants[0]
    effect = {
        m: {v: float(eff.get(f"{m}:{v}", 0.0) - eff.get(f"{m}:{ref}", 0.0)) for v in plan.variants}
        for m in plan.models
    }
    return {"reference": ref, "effect": effect, "labels": labels, "plan": plan, "clipped": clipped}


def simulate_multiclass_study(**plan) -> dict:
    """Simulate a multi-class study's tables with planted recall, confusions, model effects and curves.

    Parameters
    ----------
    **plan
        The fields of :class:`MulticlassPlan`.

    Returns
    -------
    dict
        ``runs``, ``epochs``, ``predictions``, ``latency`` and ``kernels`` (empty) as schema-conformed
        DataFrames, and ``truth``: ``effect`` (``{model: {variant: expected accuracy difference vs the
        first variant}}``, the same at every fraction), ``labels`` (the test labels), ``plan`` (its
        :meth:`~MulticlassPlan.expected_confusion` and :meth:`~MulticlassPlan.recall_at` give exact
        expectations) and ``clipped`` (recalls clipped to [0.001, 0.999]; expectations exact when 0).

    Examples
    --------
    >>> t = simulate_multiclass_study(models=("lenet", "resnet8"), seeds=3, effects={"lenet:maxpool": -0.05})
    >>> len(t["runs"]), t["truth"]["effect"]["lenet"]["maxpool"]
    (36, -0.05)
    """
    spec = MulticlassPlan(**plan)
    rng = numpy_rng(spec.seed, "simulate_multiclass_study")
    design = _design(spec)
    labels, predicted, clipped = _predicted(spec, design, rng)
    probs = _probabilities(predicted, spec.n_classes, rng)
    failed = np.zeros(len(design), dtype=bool)
    if spec.n_failed:
        failed[rng.choice(failed.size, size=min(spec.n_failed, failed.size), replace=False)] = True
    metrics = [multiclass_metrics(labels, p) for p in probs]
    runs = _runs(spec, design, metrics, failed, rng)
    ok = ~failed
    tables = {
        "runs": runs,
        "epochs": _epochs(spec, runs, design, ok, rng),
        "predictions": _predictions(runs["run_id"].to_numpy()[ok], labels, probs[ok]),
        "latency": schema.empty("latency"),
        "kernels": schema.empty("kernels"),
    }
    return {**conform_tables(tables), "truth": _truth(spec, labels, clipped)}
