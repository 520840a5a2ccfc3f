"""Section "Claims of single-run studies": each published claim tested, with a verdict."""

from __future__ import annotations

import pandas as pd

from analysis.report.document import Section, Settings, Study, Table
from analysis.report.format import format_interval
from analysis.verdicts.claims import evaluate_claims


def build(study: Study, s: Settings) -> tuple[Section, pd.DataFrame]:
    """The verdict on every claim of :data:`analysis.verdicts.claims.CLAIMS`."""
    tables = study.standard
    cl = evaluate_claims(
        {
            "runs": tables["runs"],
            "latency": tables["latency"],
            "predictions": tables["predictions"],
            "study_runs": study.tables["runs"],
        },
        reference=s.reference,
        compression_margin=s.margin,
        **s.kw,
    )
    disp = pd.DataFrame(
        {
            "claim": cl["claim"],
            "test": cl["test"],
            f"estimate [{s.level}]": [format_interval(r.estimate, r.low, r.high) for r in cl.itertuples()],
            "verdict": cl["verdict"],
            "detail": cl["detail"],
        }
    )
    text = [
        "Claims of published single-run studies, each tested against this study's seeds: supported (the "
        "interval lies on the claimed side), reversed (it lies entirely on the other side), contradicted "
        "(an equivalence claim whose difference is shown) or not resolved at this seed count."
    ]
    return Section(
        "Claims of single-run studies", text, [Table("claims", "Published claims and verdicts", cl, disp)]
    ), cl
