"""Simulated studies with planted effects, and the simulation study that validates the intervals.

* :mod:`analysis.simulation.tables`: the table builders every simulator shares.
* :mod:`analysis.simulation.study`: :func:`simulate_study` (variants x seeds x data fractions).
* :mod:`analysis.simulation.inductive`: :func:`simulate_inductive_study` (MLP, permutation, location
  shift, edge init, shift consistency, kernels).
* :mod:`analysis.simulation.multiclass`: :func:`simulate_multiclass_study` (models x variants, K classes,
  planted recall, confusions, operator effects per model, training curves).
* :mod:`analysis.simulation.saliency`: :func:`simulate_saliency` (saliency tables with planted
  localisation and deletion areas for a simulated study's runs).
* :mod:`analysis.simulation.coverage`: coverage of the intervals and the Holm family-wise error
  (``python -m analysis.validate``).
"""

from analysis.simulation.inductive import InductivePlan, simulate_inductive_study
from analysis.simulation.multiclass import MulticlassPlan, simulate_multiclass_study
from analysis.simulation.saliency import simulate_saliency
from analysis.simulation.study import StudyPlan, simulate_study

__all__ = [
    "InductivePlan",
    "MulticlassPlan",
    "StudyPlan",
    "simulate_inductive_study",
    "simulate_multiclass_study",
    "simulate_saliency",
    "simulate_study",
]
