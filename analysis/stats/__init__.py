"""The statistics of a study, one module per statistical family.

========================  ================================================================================
module                    computes
========================  ================================================================================
``intervals``             the one interval engine (t interval + p at every seed count), percentile step
``hypothesis_tests``      Holm, paired t-test, TOST, McNemar
``bca``                   the expanded BCa bootstrap (measured by the validation; not used by the report)
``contrasts``             paired contrasts against the reference; per-seed contrasts of design cells
``hierarchical``          runs' decisions on the test set; crossed seeds x examples interval
``bias``                  FPR / FNR / criterion / d' with intervals; per-seed McNemar tests
``mixed``                 mixed-effects models with likelihood-ratio tests
``latency``               ratios of (speed-adjusted) median latencies
``curves``                learning curves, power-law fits, examples needed to reach a target
``power``                 minimum detectable difference and seeds needed
``calibration``           reliability curves and expected calibration error
``kernels``               permutation-invariant summaries of first-layer kernels
========================  ================================================================================

Every function takes the study's tables (DataFrames from :mod:`analysis.load`), uses only the runs with
``status == "ok"``, and takes an explicit ``seed`` where it draws random numbers.
"""

from analysis.stats.bca import bca_means
from analysis.stats.bias import bias_summary, mcnemar_tests
from analysis.stats.calibration import expected_calibration_error, reliability_curve
from analysis.stats.contrasts import contrast_test, paired_contrasts, paired_differences, per_seed_contrast
from analysis.stats.curves import examples_to_target, fit_power_law, learning_curve, power_law_fits
from analysis.stats.hierarchical import (
    crossed_mean_interval,
    hierarchical_interval,
    is_multiclass,
    linearised_values,
    prediction_matrix,
)
from analysis.stats.hypothesis_tests import holm, mcnemar, paired_t_test, tost_paired
from analysis.stats.intervals import (
    MIN_SEEDS,
    percentile_interval,
    resample_indices,
    seed_intervals,
    seed_summary,
    t_band,
    t_interval,
    t_procedure,
)
from analysis.stats.kernels import kernel_summaries
from analysis.stats.latency import latency_ratios
from analysis.stats.mixed import MixedResult, fit_mixed
from analysis.stats.power import power_analysis

__all__ = [
    "MIN_SEEDS",
    "MixedResult",
    "bca_means",
    "bias_summary",
    "contrast_test",
    "crossed_mean_interval",
    "examples_to_target",
    "expected_calibration_error",
    "fit_mixed",
    "fit_power_law",
    "hierarchical_interval",
    "holm",
    "is_multiclass",
    "kernel_summaries",
    "latency_ratios",
    "linearised_values",
    "learning_curve",
    "mcnemar",
    "mcnemar_tests",
    "paired_contrasts",
    "paired_differences",
    "paired_t_test",
    "per_seed_contrast",
    "percentile_interval",
    "power_analysis",
    "power_law_fits",
    "prediction_matrix",
    "reliability_curve",
    "resample_indices",
    "seed_intervals",
    "seed_summary",
    "t_band",
    "t_interval",
    "t_procedure",
    "tost_paired",
]
