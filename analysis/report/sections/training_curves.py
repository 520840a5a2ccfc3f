"""Section "Training curves": loss and accuracy against optimiser steps, and per-run curve summaries."""

from __future__ import annotations

import pandas as pd

from analysis.design import at_base_levels
from analysis.report.document import (
    INTERVAL_RULE,
    Section,
    Settings,
    Study,
    Table,
    fraction_label,
    order_variants,
)
from analysis.report.figures.training import training_curves_plot
from analysis.report.format import interval_cells
from analysis.stats.intervals import seed_summary
from analysis.stats.training import curve_axis, run_curve_summaries, training_curves

SUMMARIES = {
    "last_step": "steps run",
    "final_train_loss": "final training loss",
    "min_val_loss": "lowest validation loss",
    "val_loss_rise": "validation loss rise after its lowest",
}


def applies(study: Study) -> bool:
    """Whether the study stored training histories."""
    epochs = study.tables.get("epochs")
    return epochs is not None and not epochs.empty


def _summaries(
    section: Section, epochs: pd.DataFrame, ok: pd.DataFrame, s: Settings, axis: str
) -> pd.DataFrame:
    per_run = run_curve_summaries(epochs, ok)
    summ = pd.concat(
        [seed_summary(per_run, m, by=("arm", "data_fraction"), **s.kw) for m in SUMMARIES], ignore_index=True
    )
    cells = summ.assign(cell=interval_cells(summ))
    disp = cells.pivot_table(index=["arm", "data_fraction"], columns="metric", values="cell", aggfunc="first")
    disp = order_variants(disp.reset_index().rename(columns={"arm": "variant"}), s.reference)
    disp["data_fraction"] = disp["data_fraction"].map(fraction_label)
    labels = {**SUMMARIES, "last_step": "steps run" if axis == "step" else "epochs run"}
    disp = disp[["variant", "data_fraction", *SUMMARIES]].rename(
        columns={"variant": "model / variant", **labels}
    )
    caption = f"Training-curve summaries per model/variant [{s.level} interval over seeds]"
    section.tables.append(Table("training_summary", caption, summ, disp))
    return summ


def _counts(curves: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """Per curve: validations, the first and last x, and how many runs reached the first and the last."""
    val = curves[curves["measure"] == "val_loss"].sort_values("x")
    rows = []
    for (arm, fraction), part in val.groupby(["arm", "data_fraction"], sort=True):
        rows.append(
            {
                "variant": arm,
                "data_fraction": fraction,
                "validations": len(part),
                "from": int(part["x"].iloc[0]),
                "to": int(part["x"].iloc[-1]),
                "runs at the first": int(part["n_runs"].iloc[0]),
                "runs at the last": int(part["n_runs"].iloc[-1]),
            }
        )
    disp = order_variants(pd.DataFrame(rows), s.reference)
    disp["data_fraction"] = disp["data_fraction"].map(fraction_label)
    return disp.rename(columns={"variant": "model / variant"})


def build(study: Study, s: Settings) -> tuple[Section, dict]:
    """Mean curves with bands per model/variant and fraction, then summaries with intervals over seeds."""
    rows = at_base_levels(study.tables["runs"])
    ok = rows[rows["status"] == "ok"]
    epochs = study.tables["epochs"]
    epochs = epochs[epochs["run_id"].isin(ok["run_id"])]
    section = Section("Training curves")
    curves = training_curves(epochs, ok, by=("arm", "data_fraction"), alpha=s.alpha)
    axis = curve_axis(epochs)
    x_text = "optimiser steps (a validation every eval_every steps)" if axis == "step" else "epochs"
    section.text.append(
        f"Training (dashed) and validation (solid) loss and accuracy against {x_text}, per model/variant and "
        "data fraction: the mean over the runs (seeds) at each validation; validation curves with a "
        f"pointwise {s.level} t band (cut at the measure's range). "
        "Runs that stopped early end sooner, so late points average fewer runs (bands are drawn where at "
        "least two runs remain; tables/training_curves.csv has the counts). Training values are averaged "
        "over the steps since the previous validation, validation values are at the validation."
    )
    fig = training_curves_plot(
        curves, group="arm", reference=s.reference, level=s.level, palette=study.palette
    )[0]
    section.figures.append(
        ("training_curves", "Training and validation curves, mean over seeds with bands", fig)
    )
    section.tables.append(
        Table(
            "training_curves",
            "Validations and runs per curve (every point in the CSV)",
            curves,
            _counts(curves, s),
        )
    )
    section.text.append(
        f"Per run: the steps it ran, its final training loss, its lowest validation loss and how much the "
        f"validation loss rose again by the end (overfitting); mean over seeds with {s.level} intervals "
        f"({INTERVAL_RULE})."
    )
    return section, {"curves": curves, "summary": _summaries(section, epochs, ok, s, axis)}
