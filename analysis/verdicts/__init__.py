"""Verdicts on stated claims and hypotheses, in one vocabulary.

* :mod:`analysis.verdicts.rules`: the words (supported / reversed / contradicted / not resolved at this
  seed count), the rules that give them, and the one rule that combines the parts of a claim.
* :mod:`analysis.verdicts.claims`: the claims of published single-run studies, one function each.
* :mod:`analysis.verdicts.hypotheses`: the inductive-bias hypotheses H1-H5, one function each.
* :mod:`analysis.verdicts.dilution`: "the operator effect is smaller in the residual model".
"""

from analysis.verdicts.claims import CLAIMS, evaluate_claims
from analysis.verdicts.dilution import dilution_verdict, evaluate_dilution
from analysis.verdicts.hypotheses import HYPOTHESES, STATEMENTS, evaluate_hypotheses
from analysis.verdicts.rules import (
    CONTRADICTED,
    REVERSED,
    SUPPORTED,
    UNRESOLVED,
    VERDICTS,
    combine_verdicts,
    directional_verdict,
    equivalence_verdict,
)

__all__ = [
    "CLAIMS",
    "CONTRADICTED",
    "HYPOTHESES",
    "REVERSED",
    "STATEMENTS",
    "SUPPORTED",
    "UNRESOLVED",
    "VERDICTS",
    "combine_verdicts",
    "dilution_verdict",
    "directional_verdict",
    "equivalence_verdict",
    "evaluate_claims",
    "evaluate_dilution",
    "evaluate_hypotheses",
]
