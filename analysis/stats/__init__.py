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
``curves``                learning curves, power-law fits, examples needed to reach a target
``power``                 minimum detectable difference and seeds needed
``calibration``           reliability curves and expected calibration error
``kernels``               permutation-invariant summaries of first-layer kernels
``errors``                multi-class confusions, per-class recall, most-confused pairs
``difficulty``            per-example difficulty: the share of runs that get a test example wrong
``saliency``              Grad-CAM localisation and deletion areas per variant, contrasts, mean maps
``training``              training and validation curves over optimiser steps, per-run curve summaries
``dilution``              the operator effect in a residual model against the LeNet (paired by seed)
========================  ================================================================================

Every function takes the study's tables (DataFrames from :mod:`analysis.load`), uses only the runs with
``status == "ok"``, and takes an explicit ``seed`` where it draws random numbers.
"""

from analysis.stats.bias import bias_summary, mcnemar_tests
from analysis.stats.calibration import expected_calibration_error, reliability_curve
from analysis.stats.contrasts import contrast_test, paired_contrasts, paired_differences, per_seed_contrast
from analysis.stats.curves import examples_to_target, fit_power_law, learning_curve, power_law_fits
from analysis.stats.difficulty import example_difficulty
from analysis.stats.dilution import dilution_contrasts
from analysis.stats.errors import (
    confused_pair_contrasts,
    confused_pairs,
    confusion_matrices,
    per_class_recall,
    run_confusions,
)
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
from analysis.stats.saliency import mean_maps, saliency_contrasts, saliency_outcomes, saliency_summary
from analysis.stats.training import run_curve_summaries, training_curves

__all__ = [
    "MIN_BCA_SEEDS",
    "MixedResult",
    "bca_means",
    "bias_summary",
    "confused_pair_contrasts",
    "confused_pairs",
    "confusion_matrices",
    "contrast_test",
    "dilution_contrasts",
    "example_difficulty",
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
    "mean_maps",
    "mcnemar",
    "mcnemar_tests",
    "paired_contrasts",
    "paired_differences",
    "paired_t_test",
    "per_class_recall",
    "per_seed_contrast",
    "percentile_interval",
    "power_analysis",
    "power_law_fits",
    "prediction_matrix",
    "reliability_curve",
    "resample_indices",
    "run_confusions",
    "run_curve_summaries",
    "saliency_contrasts",
    "saliency_outcomes",
    "saliency_summary",
    "seed_intervals",
    "seed_summary",
    "t_band",
    "t_interval",
    "tost_paired",
    "training_curves",
]
