"""Part of the "Inductive bias" section: permutation-invariant summaries of the first-layer kernels."""

from __future__ import annotations

import pandas as pd

from analysis.design import base_levels, design_frame
from analysis.report.document import Section, Settings, Study, Table
from analysis.report.figures import colours_for, kernel_maps, kernel_spectra
from analysis.report.format import interval_cells
from analysis.stats.intervals import seed_summary
from analysis.stats.kernels import CUTOFF, kernel_summaries

PERMUTED = {False: "unpermuted", True: "permuted"}


def _figures(section: Section, ks: dict, study: Study) -> None:
    """Mean absolute kernels (variants x permuted or not) and the radial power spectra."""
    per_run = ks["per_run"]
    maps = {(str(a), PERMUTED[bool(p)]): m for (a, p), m in ks["mean_abs"].items()}
    rows = list(colours_for(per_run["arm"], study.palette))
    cols = [PERMUTED[p] for p in sorted(set(per_run["permute"].astype(bool)))]
    caption = "Mean absolute unit-norm first-layer kernel per variant (permutation-invariant summary)"
    section.figures.append(
        ("kernels_mean_abs", caption, kernel_maps(maps, row_labels=rows, col_labels=cols)[0])
    )
    fig = kernel_spectra(ks["spectra"], variant="arm", palette=study.palette)[0]
    section.figures.append(("kernels_spectrum", "Radial power spectrum of the first-layer kernels", fig))


def add_kernels(section: Section, study: Study, s: Settings) -> pd.DataFrame:
    """High-frequency energy of the base-level CNN kernels per variant, permuted or not, with figures."""
    runs = study.tables["runs"]
    d = design_frame(runs)
    levels = base_levels(runs)
    cnn = d[~d["is_mlp"] & (d["location_shift"] == levels["location_shift"]) & (d["init"] == levels["init"])]
    ks = kernel_summaries(study.tables["kernels"], cnn, by=("arm", "permute"), alpha=s.alpha)
    per_run = ks["per_run"]
    if per_run.empty:
        section.text.append("The kernels table holds no kernels of successful base-level CNN runs.")
        return per_run
    per_seed = per_run.groupby(["arm", "permute", "seed"], as_index=False)["high_frequency_fraction"].mean()
    summ = seed_summary(per_seed, "high_frequency_fraction", by=("arm", "permute"), **s.kw)
    disp = pd.DataFrame(
        {
            "variant": summ["arm"],
            "images": summ["permute"].map(PERMUTED),
            "seeds": summ["n_seeds"],
            f"high-frequency energy (%) [{s.level}]": interval_cells(summ, metric="accuracy"),
        }
    )
    section.text.append(
        "First-layer kernels. Channel order is arbitrary across seeds (and a filter's sign and scale can be "
        "absorbed by the next layer), so a raw mean of kernels cancels out. Each kernel (one output x input "
        "channel) is scaled to unit L2 norm; the figures show the mean absolute kernel "
        "(where the weight sits) and the mean radial power spectrum (zero-padded FFT, white noise = 1): "
        "low-pass filters put their energy at low frequency, edge and checkerboard filters near "
        f"0.5 cycles/pixel. The table gives the share of energy above {CUTOFF:g} cycles/pixel "
        "(white noise: about 80 %), averaged over a seed's runs (data fractions), "
        f"then mean [{s.level} interval] over seeds."
    )
    section.tables.append(Table("kernels", "First-layer kernels: high-frequency energy share", summ, disp))
    _figures(section, ks, study)
    return per_run
