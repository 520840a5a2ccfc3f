"""The report's figures, one module per kind; every function returns ``(fig, axes)`` and never saves.

Every plot takes ``ax=None`` (draw into the caller's axes, or make a new figure) and ``palette=None``
(variant -> colour; the report passes one palette for the whole study, so a variant has the same colour
in every figure). The caller decides where files go (:mod:`analysis.report.write`).
"""

import matplotlib

matplotlib.use("Agg")  # headless rendering for the report CLI; the figures never need a GUI

from analysis.report.figures.bias import bias_plot, confusion_matrices  # noqa: E402
from analysis.report.figures.calibration import reliability_diagram  # noqa: E402
from analysis.report.figures.contrasts import forest_plot  # noqa: E402
from analysis.report.figures.curves import generalization_gap_plot, interval_points, learning_curves  # noqa: E402
from analysis.report.figures.hypotheses import hypothesis_forest  # noqa: E402
from analysis.report.figures.kernels import kernel_maps, kernel_spectra  # noqa: E402
from analysis.report.figures.latency import latency_ratio_plot, tradeoff_plot  # noqa: E402
from analysis.report.figures.palette import VERDICT_COLOURS, colours_for, variant_palette  # noqa: E402
from analysis.report.figures.roc import roc_pr_curves  # noqa: E402

__all__ = [
    "VERDICT_COLOURS",
    "bias_plot",
    "colours_for",
    "confusion_matrices",
    "forest_plot",
    "generalization_gap_plot",
    "hypothesis_forest",
    "interval_points",
    "kernel_maps",
    "kernel_spectra",
    "latency_ratio_plot",
    "learning_curves",
    "reliability_diagram",
    "roc_pr_curves",
    "tradeoff_plot",
    "variant_palette",
]
