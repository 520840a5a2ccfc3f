"""The table builders every simulator shares: run ids, metrics from scores, and the results tables.

A simulator draws what its study plants (per-run scores on a shared test set, latency times, kernels)
and hands the arrays to these builders, so every simulated study has the schema of a real one
(:mod:`downscalexr.schema`) and its ``runs`` metrics agree with its ``predictions`` rows.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from scipy import stats

from downscalexr import schema

PREVALENCE = 0.6  # share of positives in every simulated test set
# the provenance columns of a simulated run: nothing was trained, so every value says so
SIMULATED_PROVENANCE = {
    "package_version": "0.1.0",
    "git_commit": "simulated",
    "torch_version": "simulated",
    "threads": 1,
    "cpu": "simulated",
    "host_id": "simulated",
    "started_at": "2026-01-01T00:00:00+00:00",
    "finished_at": "2026-01-01T00:01:00+00:00",
}


def run_id(*parts: object) -> str:
    """A stable 16-hex-digit id of a simulated run from its design coordinates."""
    return hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).hexdigest()


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


def _ece(scores: np.ndarray, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Expected calibration error per run over 10 bins of confidence on [0.5, 1]."""
    conf = np.where(pred == 1, scores, 1 - scores)
    correct = (pred == y).astype(float)
    bins = np.minimum((conf - 0.5) * 2 * 10, 9).astype(int)
    ece = np.zeros(len(scores))
    for k in range(10):
        in_bin = bins == k
        count = in_bin.sum(1)
        gap = np.abs(((conf - correct) * in_bin).sum(1))
        ece += np.where(count > 0, gap, 0.0)
    return ece / scores.shape[1]


def score_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Threshold, ranking, calibration and bias metrics per run from (runs x examples) scores.

    Parameters
    ----------
    labels : ndarray
        0/1 labels of the shared test set, ``(n_examples,)``.
    scores : ndarray
        P(positive) of every run on every example, ``(n_runs, n_examples)``.
    threshold : float
        The decision threshold.

    Returns
    -------
    dict of str to ndarray
        One array of ``n_runs`` values per metric column of the ``runs`` table.
    """
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
    z_hit = stats.norm.ppf((tp + 0.5) / (n_pos + 1))
    z_fa = stats.norm.ppf((fp + 0.5) / (n_neg + 1))
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
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
        "ece": _ece(scores, pred, y),
        "brier": ((scores - y) ** 2).mean(1),
        "log_loss": -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)).mean(1),
        "threshold": np.full(len(scores), threshold),
    }


def draw_labels(n_test: int, rng: np.random.Generator) -> np.ndarray:
    """0/1 labels of a shared test set with :data:`PREVALENCE` positives, in random order."""
    labels = np.zeros(n_test, dtype=int)
    labels[rng.permutation(n_test)[: int(round(PREVALENCE * n_test))]] = 1
    return labels


def runs_table(columns: dict) -> pd.DataFrame:
    """The ``runs`` table from a simulator's columns plus the simulated provenance columns."""
    return pd.DataFrame({**columns, **SIMULATED_PROVENANCE})


def epochs_table(
    run_ids: np.ndarray,
    *,
    train_loss: np.ndarray,
    val_loss: np.ndarray,
    train_accuracy: np.ndarray,
    val_accuracy: np.ndarray,
    val_auroc: np.ndarray,
    seconds: np.ndarray,
) -> pd.DataFrame:
    """The ``epochs`` table: losses per epoch ``(E,)`` shared by every run, the rest per run and epoch.

    ``train_accuracy`` and ``val_accuracy`` are ``(runs, E)``; ``val_auroc`` and ``seconds`` (per
    epoch) are one value per run.
    """
    n_runs, n_epochs = np.shape(train_accuracy)
    return pd.DataFrame(
        {
            "run_id": np.repeat(run_ids, n_epochs),
            "epoch": np.tile(np.arange(n_epochs), n_runs),
            "train_loss": np.tile(train_loss, n_runs),
            "train_accuracy": np.ravel(train_accuracy),
            "val_loss": np.tile(val_loss, n_runs),
            "val_accuracy": np.ravel(val_accuracy),
            "val_auroc": np.repeat(val_auroc, n_epochs),
            "seconds": np.repeat(seconds, n_epochs),
        }
    )


def predictions_table(run_ids: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """The ``predictions`` table of a binary task: P(positive) of every run (rows of ``scores``)."""
    n_runs, n_test = scores.shape
    return pd.DataFrame(
        {
            "run_id": np.repeat(run_ids, n_test),
            "example_id": np.tile(np.arange(n_test), n_runs),
            "label": np.tile(labels, n_runs),
            "class_index": 1,
            "score": scores.ravel(),
        }
    )


def latency_table(
    run_ids: np.ndarray,
    batch_sizes: np.ndarray,
    seconds: np.ndarray,
    reference_seconds: np.ndarray | None = None,
) -> pd.DataFrame:
    """The ``latency`` table from per-call times ``(runs, batch sizes, repeats)`` (contiguous, 1 thread).

    ``reference_seconds``, shaped like ``seconds``, is the reference workload timed before each repeat.
    """
    n_runs, n_batch, n_repeats = seconds.shape
    columns = {
        "run_id": np.repeat(run_ids, n_batch * n_repeats),
        "batch_size": np.tile(np.repeat(batch_sizes, n_repeats), n_runs),
        "threads": 1,
        "memory_format": "contiguous",
        "repeat": np.tile(np.arange(n_repeats), n_runs * n_batch),
        "seconds": seconds.ravel(),
    }
    if reference_seconds is not None:
        columns["reference_seconds"] = reference_seconds.ravel()
    return pd.DataFrame(columns)


def conform_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every table cast to its schema (column order and dtypes of :mod:`downscalexr.schema`)."""
    return {name: schema.conform(name, frame) for name, frame in tables.items()}
