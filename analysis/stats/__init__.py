"""The statistics of a study, one module per statistical family.

========================  ================================================================================
module                    computes
========================  ================================================================================
``intervals``             the one interval engine (t below 10 seeds, expanded BCa from 10), percentile step
``hypothesis_tests``      Holm, paired t-test, TOST, McNemar
``contrasts``             paired contrasts against the reference; per-seed contrasts of design cells
``hierarchical``          runs' decisions on the test set; bootstrap over seeds, then test examples
``bias``                  FPR / FNR / criterion / d' with intervals; per-seed McNemar tests
``mixed``                 mixed-effects models with likelihood-ratio tests
``latency``               ratios of (speed-adjusted) median latencies
``compression``           compressed models against their parents: changes, equivalence, reordering,
                          latency and size ratios, flipped decisions
``curves``                learning curves, power-law fits, examples needed to reach a target
``power``                 minimum detectable difference and seeds needed
``calibration``           reliability curves and expected calibration error
``kernels``               permutation-invariant summaries of first-layer kernels
========================  ================================================================================

Every function takes the study's tables (DataFrames from :mod:`analysis.load`), uses only the runs with
``status == "ok"``, and takes an explicit ``seed`` where it draws random numbers.
"""

from analysis.stats.bias import bias_summary, mcnemar_tests
from analysis.stats.calibration import expected_calibration_error, reliability_curve
from analysis.stats.compression import (
    compression_changes,
    compression_equivalence,
    compression_interaction,
    compression_latency,
    compression_sizes,
    prediction_flips,
)
from analysis.stats.contrasts import contrast_test, paired_contrasts, paired_differences, per_seed_contrast
from analysis.stats.curves import examples_to_target, fit_power_law, learning_curve, power_law_fits
from analysis.stats.hierarchical import hierarchical_bootstrap, is_multiclass, prediction_matrix
from analysis.stats.hypothesis_tests import holm, mcnemar, paired_t_test, tost_paired
from analysis.stats.intervals import (
    MIN_BCA_SEEDS,
    bca_means,
    percentile_interval,
    resample_indices,
    seed_intervals,
    seed_summary,
    t_band,
    t_interval,
)
from analysis.stats.kernels import kernel_summaries
from analysis.stats.latency import latency_ratios
from analysis.stats.mixed import MixedResult, fit_mixed
from analysis.stats.power import power_analysis

__all__ = [
    "MIN_BCA_SEEDS",
    "MixedResult",
    "bca_means",
    "bias_summary",
    "compression_changes",
    "compression_equivalence",
    "compression_interaction",
    "compression_latency",
    "compression_sizes",
    "contrast_test",
    "examples_to_target",
    "expected_calibration_error",
    "fit_mixed",
    "fit_power_law",
    "hierarchical_bootstrap",
    "holm",
    "is_multiclass",
    "kernel_summaries",
    "latency_ratios",
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
    "prediction_flips",
    "prediction_matrix",
    "reliability_curve",
    "resample_indices",
    "seed_intervals",
    "seed_summary",
    "t_band",
    "t_interval",
    "tost_paired",
]
