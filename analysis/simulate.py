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

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from downscalexr import schema
from downscalexr.seeding import numpy_rng

REFERENCE_MS = 0.5  # median time of the simulated reference workload at log speed 0
DEFAULT_LATENCY_MS = {"avgpool": 2.0, "maxpool": 2.1, "strided": 1.6, "blurpool": 2.6, "lppool": 2.4}
N_FULL = 4000  # training examples at data fraction 1.0
PREVALENCE = 0.6


def _run_id(*parts: object) -> str:
    return hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).hexdigest()


def _per_variant(values: Mapping[str, float] | None, variants: Sequence[str], what: str) -> np.ndarray:
    values = dict(values or {})
    unknown = sorted(set(values) - set(variants))
    if unknown:
        raise ValueError(f"{what} names unknown variants {unknown}; choose from {list(variants)}")
    return np.array([float(values.get(v, 0.0)) for v in variants])


def _auc_ap(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC (Mann-Whitney with mid-ranks) and average precision per row (runs x examples)."""
    ranks = stats.rankdata(scores, axis=1)
    pos = labels[None, :] == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    auroc = ((ranks * pos).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = pos[0][order]  # (R, N) label of the k-th highest score
    precision_at_k = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    auprc = (precision_at_k * hits).sum(axis=1) / n_pos
    return auroc, auprc


def _metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Threshold, ranking, calibration and bias metrics per run from (runs x examples) scores."""
    y = labels[None, :].astype(float)
    pred = (scores >= threshold).astype(float)
    tp = (pred * y).sum(1)
    fp = (pred * (1 - y)).sum(1)
    fn = ((1 - pred) * y).sum(1)
    tn = ((1 - pred) * (1 - y)).sum(1)
    n, n_pos, n_neg = tp + fp + fn + tn, tp + fn, fp + tn
    recall, specificity = tp / n_pos, tn / n_neg
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0
    )
    # log-linear correction keeps z finite when a rate is 0 or 1
    hit = (tp + 0.5) / (n_pos + 1)
    false_alarm = (fp + 0.5) / (n_neg + 1)
    z_hit, z_fa = stats.norm.ppf(hit), stats.norm.ppf(false_alarm)
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    conf = np.where(pred == 1, scores, 1 - scores)
    correct = (pred == y).astype(float)
    bins = np.minimum((conf - 0.5) * 2 * 10, 9).astype(int)  # 10 bins of confidence on [0.5, 1]
    ece = np.zeros(len(scores))
    for k in range(10):
        in_bin = bins == k
        count = in_bin.sum(1)
        gap = np.abs(((conf - correct) * in_bin).sum(1))
        ece += np.where(count > 0, gap, 0.0)
    ece /= scores.shape[1]
    auroc, auprc = _auc_ap(labels, scores)
    return {
        "accuracy": (tp + tn) / n,
        "balanced_accuracy": (recall + specificity) / 2,
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": f1,
        "auroc": auroc,
        "auprc": auprc,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "fpr": fp / n_neg,
        "fnr": fn / n_pos,
        "predicted_positive_rate": (tp + fp) / n,
        "prevalence": n_pos / n,
        "criterion_c": -(z_hit + z_fa) / 2,
        "dprime": z_hit - z_fa,
        "ece": ece,
        "brier": ((scores - y) ** 2).mean(1),
        "log_loss": -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).mean(1),
        "threshold": np.full(len(scores), threshold),
    }


def simulate_study(
    *,
    variants: Sequence[str] = ("avgpool", "maxpool", "strided"),
    fractions: Sequence[float] = (0.05, 0.1, 0.25, 0.5, 1.0),
    seeds: int | Sequence[int] = 10,
    n_test: int = 200,
    effects: Mapping[str, float] | None = None,
    interaction: Mapping[str, float] | None = None,
    fpr_shift: Mapping[str, float] | None = None,
    gap_shift: Mapping[str, float] | None = None,
    seed_sd: float = 0.015,
    noise_sd: float = 0.01,
    example_rho: float = 0.3,
    latency_ms: Mapping[str, float] | None = None,
    latency_repeats: int = 10,
    latency_batch_sizes: Sequence[int] = (1, 32),
    latency_drift: float = 0.0,
    latency_slope: float | Mapping[str, float] = 0.8,
    n_epochs: int = 6,
    n_failed: int = 0,
    study: str = "simulated",
    seed: int = 0,
) -> dict:
    """Simulate the four results tables of a study, with planted effects and their true values.

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
        Seed of every random draw; equal arguments give identical tables.

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

    Examples
    --------
    >>> tables = simulate_study(seeds=3, fractions=(0.5, 1.0), effects={"maxpool": -0.03})
    >>> len(tables["runs"])
    18
    >>> tables["truth"]["accuracy_diff"]["maxpool"][1.0]
    -0.03
    """
    variants = list(variants)
    if len(set(variants)) != len(variants) or not variants:
        raise ValueError(f"variants must be distinct and non-empty, got {variants}")
    fractions = np.asarray(fractions, dtype=float)
    if fractions.size == 0 or np.any((fractions <= 0) | (fractions > 1)):
        raise ValueError(f"fractions must lie in (0, 1], got {fractions.tolist()}")
    seed_values = np.arange(seeds) if np.isscalar(seeds) else np.asarray(seeds, dtype=int)
    if seed_values.size < 1:
        raise ValueError("seeds must be at least 1")
    if not 0 <= example_rho < 1:
        raise ValueError(f"example_rho must lie in [0, 1), got {example_rho}")
    eff = _per_variant(effects, variants, "effects")
    inter = _per_variant(interaction, variants, "interaction")
    shift = _per_variant(fpr_shift, variants, "fpr_shift")
    gap = _per_variant(gap_shift, variants, "gap_shift")
    lat_values = {**DEFAULT_LATENCY_MS, **dict(latency_ms or {})}
    lat = np.array([lat_values.get(v, 2.0) for v in variants])

    rng = numpy_rng(seed, "simulate_study")
    n_v, n_s, n_f = len(variants), len(seed_values), len(fractions)
    # design grid, variant slowest: (V, S, F) flattened
    vi, si, fi = (
        a.ravel() for a in np.meshgrid(np.arange(n_v), np.arange(n_s), np.arange(n_f), indexing="ij")
    )
    n_runs = vi.size
    frac = fractions[fi]
    n_train = np.maximum(np.rint(frac * N_FULL).astype(int), 1)
    log2f = np.log2(frac)

    u_seed = rng.normal(0.0, seed_sd, n_s)
    err = (
        0.08
        + 2.7 * n_train**-0.5
        - eff[vi]
        - inter[vi] * log2f
        - u_seed[si]
        + rng.normal(0.0, noise_sd, n_runs)
    )
    p = PREVALENCE
    fpr_true = err + shift[vi]
    fnr_true = err - shift[vi] * (1 - p) / p
    clipped = int(np.sum((fpr_true < 1e-3) | (fpr_true > 0.999) | (fnr_true < 1e-3) | (fnr_true > 0.999)))
    fpr_true, fnr_true = np.clip(fpr_true, 1e-3, 0.999), np.clip(fnr_true, 1e-3, 0.999)

    labels = np.zeros(n_test, dtype=int)
    labels[rng.permutation(n_test)[: int(round(p * n_test))]] = 1
    difficulty = rng.normal(size=n_test)
    latent = np.sqrt(example_rho) * difficulty[None, :] + np.sqrt(1 - example_rho) * rng.normal(
        size=(n_runs, n_test)
    )
    error_rate = np.where(labels[None, :] == 1, fnr_true[:, None], fpr_true[:, None])
    wrong = special.ndtr(-latent) < error_rate  # hard examples: large difficulty -> wrong for many runs
    predicted = np.where(wrong, 1 - labels[None, :], labels[None, :])
    confidence = 0.5 + 0.5 * np.where(wrong, rng.beta(1.2, 2.5, wrong.shape), rng.beta(2.5, 1.2, wrong.shape))
    scores = np.where(predicted == 1, confidence, 1 - confidence)
    metrics = _metrics(labels, scores, 0.5)

    failed = np.zeros(n_runs, dtype=bool)
    if n_failed:
        failed[rng.choice(n_runs, size=min(n_failed, n_runs), replace=False)] = True
    variant_names = np.array(variants)[vi]
    run_ids = [
        _run_id(study, v, int(s), float(f))
        for v, s, f in zip(variant_names, seed_values[si], frac, strict=True)
    ]
    base_gap = 0.05 - 0.02 * log2f + gap[vi]
    train_acc = np.clip(metrics["accuracy"] + base_gap + rng.normal(0, 0.005, n_runs), 0, 1)
    params = np.where(variant_names == "strided", 62_000, 60_000)
    runs = pd.DataFrame(
        {
            "run_id": run_ids,
            "study": study,
            "dataset": "synthetic",
            "model": "lenet",
            "variant": variant_names,
            "seed": seed_values[si],
            "data_fraction": frac,
            "n_train": n_train,
            "image_size": 64,
            "epochs_run": n_epochs,
            "batch_size": 32,
            "lr": 1e-3,
            "optimizer": "adam",
            "transform": "none",
            "params": params,
            "flops": params * 40.0,
            "model_bytes": params * 4,
            "status": np.where(failed, "failed", "ok"),
            "error": np.where(failed, "simulated failure", None),
            "train_seconds": n_train * 1e-3 * lat[vi],
            **{name: np.where(failed, np.nan, values) for name, values in metrics.items()},
            "train_accuracy": np.where(failed, np.nan, train_acc),
            "val_accuracy": np.where(failed, np.nan, metrics["accuracy"] + rng.normal(0, 0.01, n_runs)),
            "val_auroc": np.where(failed, np.nan, metrics["auroc"]),
            "best_epoch": n_epochs - 1,
            "package_version": "0.1.0",
            "git_commit": "simulated",
            "torch_version": "simulated",
            "threads": 1,
            "cpu": "simulated",
            "host_id": "simulated",
            "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": "2026-01-01T00:01:00+00:00",
        }
    )
    ok = ~failed

    # epochs: accuracy rises towards the run's final value
    ep = np.arange(n_epochs)
    approach = 1 - 0.3 * np.exp(-ep / 1.5)  # (E,)
    ok_idx = np.flatnonzero(ok)
    final_val = runs["val_accuracy"].to_numpy()[ok_idx]
    final_train = train_acc[ok_idx]
    epochs = pd.DataFrame(
        {
            "run_id": np.repeat(np.array(run_ids)[ok_idx], n_epochs),
            "epoch": np.tile(ep, ok_idx.size),
            "train_loss": np.tile(0.7 * np.exp(-ep / 2.0), ok_idx.size) + 0.05,
            "train_accuracy": np.outer(final_train, approach).ravel(),
            "val_loss": np.tile(0.7 * np.exp(-ep / 2.5), ok_idx.size) + 0.15,
            "val_accuracy": np.outer(final_val, approach).ravel(),
            "val_auroc": np.repeat(runs["val_auroc"].to_numpy()[ok_idx], n_epochs),
            "seconds": np.repeat(runs["train_seconds"].to_numpy()[ok_idx] / n_epochs, n_epochs),
        }
    )

    predictions = pd.DataFrame(
        {
            "run_id": np.repeat(np.array(run_ids)[ok_idx], n_test),
            "example_id": np.tile(np.arange(n_test), ok_idx.size),
            "label": np.tile(labels, ok_idx.size),
            "class_index": 1,
            "score": scores[ok_idx].ravel(),
        }
    )

    # latency: run factor x repeat noise, both log-normal with median 1, so medians scale exactly
    batch = np.asarray(latency_batch_sizes, dtype=int)
    run_factor = np.exp(rng.normal(0, 0.03, ok_idx.size))
    shape = (ok_idx.size, batch.size, latency_repeats)
    noise = np.exp(rng.normal(0, 0.05, shape))
    per_batch = batch[None, :, None] ** 0.8 / 1000.0
    speed = np.zeros((ok_idx.size, batch.size, 1))  # log machine speed of each run x batch size
    if latency_drift > 0:
        speed = rng.normal(0, latency_drift, speed.shape)
    seconds = lat[vi[ok_idx]][:, None, None] * run_factor[:, None, None] * per_batch * noise
    slope = np.array(
        [latency_slope.get(v, 0.8) for v in variants]
        if isinstance(latency_slope, Mapping)
        else [latency_slope] * n_v,
        dtype=float,
    )
    seconds = seconds * np.exp(slope[vi[ok_idx]][:, None, None] * speed)
    reference = REFERENCE_MS / 1000.0 * np.exp(speed + rng.normal(0, 0.03, shape))
    latency = pd.DataFrame(
        {
            "run_id": np.repeat(np.array(run_ids)[ok_idx], batch.size * latency_repeats),
            "batch_size": np.tile(np.repeat(batch, latency_repeats), ok_idx.size),
            "threads": 1,
            "memory_format": "contiguous",
            "repeat": np.tile(np.arange(latency_repeats), ok_idx.size * batch.size),
            "seconds": seconds.ravel(),
            "reference_seconds": reference.ravel(),
        }
    )

    ref = 0
    acc_diff = {
        v: {float(f): float(eff[i] - eff[ref] + (inter[i] - inter[ref]) * np.log2(f)) for f in fractions}
        for i, v in enumerate(variants)
    }
    truth = {
        "reference": variants[ref],
        "accuracy_diff": acc_diff,
        "accuracy_diff_pooled": {
            v: float(eff[i] - eff[ref] + (inter[i] - inter[ref]) * np.log2(fractions).mean())
            for i, v in enumerate(variants)
        },
        "fpr_diff": {
            v: {float(f): float(shift[i] - shift[ref]) - acc_diff[v][float(f)] for f in fractions}
            for i, v in enumerate(variants)
        },
        "fnr_diff": {
            v: {
                float(f): -float(shift[i] - shift[ref]) * (1 - p) / p - acc_diff[v][float(f)]
                for f in fractions
            }
            for i, v in enumerate(variants)
        },
        "ppr_over_prevalence_diff": {
            v: {
                float(f): (2 * float(shift[i] - shift[ref]) * (1 - p) + acc_diff[v][float(f)] * (2 * p - 1))
                / p
                for f in fractions
            }
            for i, v in enumerate(variants)
        },
        "gap_diff": {v: float(gap[i] - gap[ref]) for i, v in enumerate(variants)},
        "latency_ratio": {v: float(lat[i] / lat[ref]) for i, v in enumerate(variants)},
        "latency_speed_log": float(speed.mean()),
        "latency_slope": {v: float(slope[i]) for i, v in enumerate(variants)},
        "coef_variant_pp": {v: 100 * float(eff[i] - eff[ref]) for i, v in enumerate(variants)},
        "coef_interaction_pp": {v: 100 * float(inter[i] - inter[ref]) for i, v in enumerate(variants)},
        "seed_variance_pp": float((100 * seed_sd) ** 2),
        "prevalence": float(labels.mean()),
        "clipped": clipped,
    }
    return {
        "runs": schema.conform("runs", runs),
        "epochs": schema.conform("epochs", epochs),
        "predictions": schema.conform("predictions", predictions),
        "latency": schema.conform("latency", latency),
        "truth": truth,
    }
