"""DownScaleXR's analysis: a study's Parquet tables -> statistics -> verdicts -> report.

=====================  ===========================================================================
package / module       job
=====================  ===========================================================================
``load``               read and validate a study's tables (the only way analysis sees results)
``design``             which runs count (ok runs), factor levels, arms (MLP / CNN variant)
``stats/``             the statistics, one module per family; one interval engine
``verdicts/``          claims and hypotheses, one function each, in one verdict vocabulary
``report/``            ``python -m analysis.report``: sections, figures, Markdown / LaTeX
``simulation/``        studies with planted effects; coverage study (``python -m analysis.validate``)
=====================  ===========================================================================

The public statistics are re-exported here; see ``docs/architecture.md`` for where to add one.
"""

from analysis.design import base_runs, design_frame, has_inductive_design, ok_runs
from analysis.load import LoadError, load_study, read_provenance, read_table
from analysis.simulation import (
    simulate_inductive_study,
    simulate_multiclass_study,
    simulate_saliency,
    simulate_study,
)
from analysis.stats import (
    MIN_BCA_SEEDS,
    MixedResult,
    bca_means,
    bias_summary,
    confused_pair_contrasts,
    confused_pairs,
    confusion_matrices,
    contrast_test,
    dilution_contrasts,
    example_difficulty,
    examples_to_target,
    expected_calibration_error,
    fit_mixed,
    fit_power_law,
    hierarchical_bootstrap,
    holm,
    kernel_summaries,
    latency_ratios,
    learning_curve,
    mcnemar,
    mcnemar_tests,
    paired_contrasts,
    paired_t_test,
    per_class_recall,
    per_seed_contrast,
    percentile_interval,
    power_analysis,
    power_law_fits,
    reliability_curve,
    saliency_contrasts,
    saliency_summary,
    seed_intervals,
    seed_summary,
    t_band,
    t_interval,
    tost_paired,
)
from analysis.verdicts import (
    VERDICTS,
    combine_verdicts,
    evaluate_claims,
    evaluate_dilution,
    evaluate_hypotheses,
)

__all__ = [
    "MIN_BCA_SEEDS",
    "VERDICTS",
    "LoadError",
    "MixedResult",
    "base_runs",
    "bca_means",
    "bias_summary",
    "combine_verdicts",
    "confused_pair_contrasts",
    "confused_pairs",
    "confusion_matrices",
    "contrast_test",
    "design_frame",
    "dilution_contrasts",
    "evaluate_claims",
    "evaluate_dilution",
    "evaluate_hypotheses",
    "example_difficulty",
    "examples_to_target",
    "expected_calibration_error",
    "fit_mixed",
    "fit_power_law",
    "has_inductive_design",
    "hierarchical_bootstrap",
    "holm",
    "kernel_summaries",
    "latency_ratios",
    "learning_curve",
    "load_study",
    "mcnemar",
    "mcnemar_tests",
    "ok_runs",
    "paired_contrasts",
    "paired_t_test",
    "per_class_recall",
    "per_seed_contrast",
    "percentile_interval",
    "power_analysis",
    "power_law_fits",
    "read_provenance",
    "read_table",
    "reliability_curve",
    "saliency_contrasts",
    "saliency_summary",
    "seed_intervals",
    "seed_summary",
    "simulate_inductive_study",
    "simulate_multiclass_study",
    "simulate_saliency",
    "simulate_study",
    "t_band",
    "t_interval",
    "tost_paired",
]
