"""Training curves from the ``epochs`` table: loss and accuracy against optimiser steps, over seeds.

Each run validates every ``eval_every`` optimiser steps (or once per epoch in older studies) and stores
one ``epochs`` row per validation: ``step`` (steps taken; -1 in cells stored before steps were
recorded), training loss and accuracy over the period, validation loss and accuracy.

* :func:`training_curves`: per group, validation point and measure, the mean over runs with a pointwise
  t band (:func:`analysis.stats.intervals.t_band`) and the number of runs that reached the point.
* :func:`run_curve_summaries`: per run, the final training loss, the lowest validation loss and how far
  the validation loss rose after it (a sign of overfitting), for intervals over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from analysis.design import ok_runs
from analysis.stats.intervals import t_band

BY = ("variant", "data_fraction")
MEASURES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
CURVE_COLUMNS = ["measure", "n_runs", "mean", "low", "high"]


def curve_axis(epochs: pd.DataFrame) -> str:
    """``"step"`` when every row records its optimiser step, else ``"epoch"`` (older cells)."""
    return "step" if "step" in epochs and len(epochs) and (epochs["step"] >= 0).all() else "epoch"


def _ok_epochs(epochs: pd.DataFrame, runs: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    ok = ok_runs(runs)
    meta = ok.assign(run_id=ok["run_id"].astype(str))[["run_id", "seed", *by]]
    rows = epochs[epochs["run_id"].isin(ok["run_id"])]
    if rows.empty:
        raise ValueError("no epochs rows of ok runs: the study stored no training history")
    return rows.assign(run_id=rows["run_id"].astype(str)).merge(meta, on="run_id")


def training_curves(
    epochs: pd.DataFrame, runs: pd.DataFrame, *, by: Sequence[str] = BY, alpha: float = 0.05
) -> pd.DataFrame:
    """Mean training and validation curves per group over the runs (seeds), with pointwise t bands.

    Parameters
    ----------
    epochs, runs : DataFrame
        The ``epochs`` and ``runs`` tables; only ok runs count.
    by : sequence of str
        Grouping columns of ``runs``.
    alpha : float
        1 - confidence level of the bands.

    Returns
    -------
    DataFrame
        ``*by, x, measure, n_runs, mean, low, high``: ``x`` is the optimiser step (or the epoch, see
        :func:`curve_axis`); ``n_runs`` the runs with a value there (runs stopped early end sooner, so
        late points average fewer runs); bounds NaN below two runs.
    """
    frame = _ok_epochs(epochs, runs, by)
    axis = curve_axis(frame)
    out = []
    for key, group in frame.groupby([*by, axis], sort=True, dropna=False):
        for measure in MEASURES:
            values = group[measure].to_numpy(dtype=float)
            values = values[~np.isnan(values)]
            if not values.size:
                continue
            mean, half = t_band(values, alpha)
            out.append((*key, measure, values.size, float(mean), float(mean - half), float(mean + half)))
    result = pd.DataFrame(out, columns=[*by, "x", *CURVE_COLUMNS])
    return result.assign(axis=axis)


def run_curve_summaries(epochs: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per ok run: its last step, final training loss, lowest validation loss and the rise after it.

    Returns
    -------
    DataFrame
        The ok runs' ``runs`` rows (with history) plus ``last_step`` (or last epoch), ``final_train_loss``
        (at the last validation), ``min_val_loss`` and ``val_loss_rise`` (last minus lowest validation
        loss, >= 0: how much the validation loss went up again by the end).
    """
    frame = _ok_epochs(epochs, runs, ())
    axis = curve_axis(frame)
    ordered = frame.sort_values(["run_id", axis])
    grouped = ordered.groupby("run_id", sort=True)
    last = grouped.tail(1).set_index("run_id")
    summary = pd.DataFrame(
        {
            "last_step": last[axis],
            "final_train_loss": last["train_loss"],
            "min_val_loss": grouped["val_loss"].min(),
            "val_loss_rise": last["val_loss"] - grouped["val_loss"].min(),
        }
    )
    ok = ok_runs(runs)
    meta = ok.assign(run_id=ok["run_id"].astype(str)).set_index("run_id")
    return meta.join(summary, how="inner").reset_index().sort_values("run_id", ignore_index=True)
