"""Per-example difficulty on the shared test set: the share of runs that get each example wrong.

Decisions are those of :mod:`analysis.stats.errors` (the class of highest probability), so a run counts
an example wrong exactly when its confusion counts do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats.errors import decisions


def _difficulty(labels: np.ndarray, predicted: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Share wrong, the most common wrong class and its share per example, over the rows of ``predicted``."""
    n_runs = predicted.shape[0]
    flat = np.tile(np.arange(labels.size), n_runs) * k + predicted.ravel()
    votes = np.bincount(flat, minlength=labels.size * k).reshape(labels.size, k)
    votes[np.arange(labels.size), labels] = 0
    return {
        "n_runs": np.full(labels.size, n_runs),
        "share_wrong": (predicted != labels[None, :]).mean(axis=0),
        "top_wrong_class": np.where(votes.max(axis=1) > 0, votes.argmax(axis=1), -1),
        "share_top_wrong": votes.max(axis=1) / n_runs,
    }


def example_difficulty(
    predictions: pd.DataFrame, runs: pd.DataFrame, *, by: str | None = None
) -> pd.DataFrame:
    """Per test example: the share of ok runs that get it wrong, and what they say instead.

    Parameters
    ----------
    predictions, runs : DataFrame
        The study's tables (only ok runs count).
    by : str, optional
        A column of ``runs``: the shares are then per example and group (e.g. per model/variant).

    Returns
    -------
    DataFrame
        ``[by,] example_id, label, n_runs, share_wrong, top_wrong_class, share_top_wrong`` (and ``source``
        when ``predictions`` has it), hardest first within a group (ties by ``example_id``).
        ``top_wrong_class`` is the wrong class given most often (-1 when no run is wrong) and
        ``share_top_wrong`` the share of runs giving it.
    """
    meta, examples, labels, predicted, k = decisions(predictions, runs)
    groups = [(None, np.arange(len(meta)))] if by is None else meta.groupby(by, sort=True).indices.items()
    parts = []
    for key, rows in groups:
        part = pd.DataFrame(
            {"example_id": examples, "label": labels, **_difficulty(labels, predicted[rows], k)}
        )
        if by is not None:
            part.insert(0, by, key)
        parts.append(part.sort_values(["share_wrong", "example_id"], ascending=[False, True]))
    out = pd.concat(parts, ignore_index=True)
    if "source" in predictions.columns:
        sources = predictions.drop_duplicates("example_id").set_index("example_id")["source"]
        out["source"] = sources.reindex(out["example_id"]).to_numpy()
    return out
