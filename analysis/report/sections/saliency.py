"""Section "Grad-CAM saliency": localisation and faithfulness per model/variant, contrasts, mean maps.

Applies when the study stored a ``saliency`` table (``saliency: {enabled: true}`` in its study file).
"""

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
from analysis.report.figures.saliency import saliency_maps_plot
from analysis.report.format import format_interval, format_p, interval_cells
from analysis.stats.saliency import BETTER, mean_maps, saliency_contrasts, saliency_summary

MAP_IMAGES = 4  # images drawn one by one in the map figures (plus their mean)
LABELS = {
    "localisation": "localisation (pp)",
    "localisation_gain": "localisation - chance (pp)",
    "deletion_area": "deletion area (pp)",
}


def applies(study: Study) -> bool:
    """Whether the study has saliency rows."""
    table = study.tables.get("saliency")
    return table is not None and not table.empty


def _summary(section: Section, saliency: pd.DataFrame, ok: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """Each outcome per model/variant and fraction, mean over seeds with intervals (one wide table)."""
    summ = saliency_summary(saliency, ok, by=("arm", "data_fraction"), **s.kw)
    cells = summ.assign(
        cell=[format_interval(r.mean, r.low, r.high, percent=True) for r in summ.itertuples()]
    )
    disp = cells.pivot_table(
        index=["arm", "data_fraction"], columns="outcome", values="cell", aggfunc="first"
    )
    disp = order_variants(disp.reset_index().rename(columns={"arm": "variant"}), s.reference)
    keys = list(zip(disp["variant"], disp["data_fraction"], strict=True))
    for at, (outcome, name) in enumerate((("deletion_area", "seeds"), ("localisation", "seeds localised"))):
        seeds = summ[summ["outcome"] == outcome].set_index(["arm", "data_fraction"])["n_seeds"]
        disp.insert(2 + at, name, [seeds.get(k, 0) for k in keys])
    disp["data_fraction"] = disp["data_fraction"].map(fraction_label)
    present = [o for o in LABELS if o in disp.columns]
    disp = disp[["variant", "data_fraction", "seeds", "seeds localised", *present]].rename(
        columns={"variant": "model / variant", **LABELS}
    )
    n_images = int(summ["n_images"].max())
    section.text.append(
        f"Grad-CAM maps of the same {n_images} test images in every run (chosen by the study's test_seed), "
        "explained at the output of the last convolutional stage. Localisation: share of the map's mass "
        "inside the ground-truth mask of the planted signal (higher = the evidence lies on it; images "
        "without a mask are left out); localisation - chance: the same minus the mask's share of the image "
        "(what a uniform map scores). Deletion area: area under the curve of the explained class's "
        "probability as the most salient pixels are removed first (lower = more faithful: the map found the "
        "pixels the decision depends on). Per run the mean over its images ('seeds localised': seeds with a "
        f"localisation, i.e. a map with mass on an image with a mask); mean over seeds with {s.level} "
        f"intervals ({INTERVAL_RULE}); the images are fixed, so the intervals are over seeds only."
    )
    section.tables.append(
        Table("saliency", f"Grad-CAM outcomes per model/variant [{s.level} interval]", summ, disp)
    )
    return summ


def _contrasts(section: Section, saliency: pd.DataFrame, ok: pd.DataFrame, s: Settings) -> pd.DataFrame:
    """Outcome differences vs the reference within each model, paired by seed, Holm across the rows."""
    pc = saliency_contrasts(saliency, ok, reference=s.reference, **s.kw)
    if pc.empty:
        section.text.append(f"No model has the reference variant {s.reference!r}: no saliency contrasts.")
        return pc
    shown = pc[pc["data_fraction"].isna()] if pc["data_fraction"].isna().any() else pc
    disp = pd.DataFrame(
        {
            "model": shown["model"],
            "outcome": shown["outcome"].map(lambda o: f"{LABELS[o]}, {BETTER[o]} is better"),
            "variant": shown["variant"],
            "fraction": shown["data_fraction"].map(fraction_label),
            "seeds": shown["n_seeds"],
            f"difference (pp) [{s.level}]": interval_cells(shown, estimate="diff", metric="recall"),
            "p (Holm)": shown["p_holm"].map(format_p),
        }
    )
    note = (
        f"p (Holm): paired t-test, Holm-adjusted across all {len(pc)} rows (every fraction and pooled; "
        "tables/saliency_contrasts.csv). The gain over chance is not contrasted: the images (so the masks) "
        "are the same in every run, so its contrasts differ from the localisation's only through images "
        "whose localisation is missing in some runs."
    )
    caption = f"Grad-CAM outcomes: variant - {s.reference} within each model, paired by seed"
    section.tables.append(Table("saliency_contrasts", caption, pc, disp, note=note))
    return pc


def _maps(section: Section, study: Study, ok: pd.DataFrame, s: Settings) -> None:
    """Mean maps over seeds (first images and their mean) and the width of their seed bands."""
    maps = study.tables.get("saliency_maps")
    if maps is None or maps.empty:
        section.text.append("The study stored no saliency maps, so no mean map is drawn.")
        return
    largest = ok[ok["data_fraction"] == ok["data_fraction"].max()]
    per_image = mean_maps(maps, largest, by=("arm",), alpha=s.alpha)
    images = sorted(set(per_image["example_id"]))[:MAP_IMAGES]
    pooled = mean_maps(maps, largest, by=("arm",), per_image=False, alpha=s.alpha)
    drawn = pd.concat([per_image[per_image["example_id"].isin(images)], pooled], ignore_index=True)
    fraction = f"{largest['data_fraction'].max():g}"
    for value, name, what in (
        ("mean", "saliency_maps", "mean map"),
        ("band", "saliency_bands", "seed-band width"),
    ):
        fig = saliency_maps_plot(
            drawn, group="arm", value=value, level=s.level, reference=s.reference, palette=study.palette
        )[0]
        caption = f"Grad-CAM {what} per model/variant at fraction {fraction} (images {images} and their mean)"
        section.figures.append((name, caption, fig))
    section.text.append(
        f"Maps at data fraction {fraction} on the stored coarse grid: the mean over seeds of each run's map "
        f"(divided by its maximum), and the width of its pointwise {s.level} t band over seeds (how much the "
        "map moves between seeds); 'mean of images' averages each run's maps over all its images first."
    )


def build(study: Study, s: Settings) -> tuple[Section, dict]:
    """Outcomes with intervals, contrasts vs the reference within each model, and the mean maps."""
    rows = at_base_levels(study.tables["runs"])
    ok = rows[rows["status"] == "ok"]
    saliency = study.tables["saliency"]
    section = Section("Grad-CAM saliency: localisation and faithfulness")
    result = {
        "summary": _summary(section, saliency, ok, s),
        "contrasts": _contrasts(section, saliency, ok, s),
    }
    _maps(section, study, ok, s)
    return section, result
