"""Answer-quality metrics shared by every evaluation: hits, abstention, AUROC, thresholds, calibration.

Each asked question becomes one `Outcome`. An answerable question is *right* when its top-ranked
sentence holds the answer; an unanswerable one should be refused. The confidence of the answer
(`Answer.confidence`) is what the service compares with its threshold, so sweeping that threshold
over the outcomes shows what every other threshold would have done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
CALIBRATION_LEVEL = 0.8


@dataclass(frozen=True)
class Outcome:
    answerable: bool
    confidence: float
    abstained: bool
    hit1: bool = False  # answerable only: the best sentence holds the answer
    hit3: bool = False  # answerable only: one of the three best does


def rate(n: float, d: float) -> float:
    return round(n / d, 4) if d else 0.0


def auroc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positives or not negatives:
        return 0.0
    ranks = rankdata(np.concatenate([np.asarray(positives, float), np.asarray(negatives, float)]))
    n_pos, n_neg = len(positives), len(negatives)
    return round(float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)), 4)


def threshold_table(outcomes: Sequence[Outcome], thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, float]]:
    """At each confidence threshold: answerable questions answered, unanswerable ones refused, and the
    share of given answers that are right (an answer to an unanswerable question is wrong)."""
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    table = []
    for t in thresholds:
        answered = [o for o in outcomes if o.confidence >= t]
        right = sum(o.answerable and o.hit1 for o in answered)
        table.append(
            {
                "threshold": t,
                "answered_answerable": rate(sum(o.confidence >= t for o in answerable), len(answerable)),
                "refused_unanswerable": rate(sum(o.confidence < t for o in unanswerable), len(unanswerable)),
                "right_among_answered": rate(right, len(answered)),
            }
        )
    return table


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The metrics every evaluation reports (rates in [0, 1])."""
    answerable = [o for o in outcomes if o.answerable]
    unanswerable = [o for o in outcomes if not o.answerable]
    right = [o.confidence for o in answerable if o.hit1]
    confident = [o for o in outcomes if not o.abstained and o.confidence >= CALIBRATION_LEVEL]
    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "top1_sentence_hit": rate(sum(o.hit1 for o in answerable), len(answerable)),
        "top3_sentence_hit": rate(sum(o.hit3 for o in answerable), len(answerable)),
        "answered_rate_answerable": rate(sum(not o.abstained for o in answerable), len(answerable)),
        "right_and_answered": rate(sum(o.hit1 and not o.abstained for o in answerable), len(answerable)),
        "abstain_rate_unanswerable": rate(sum(o.abstained for o in unanswerable), len(unanswerable)),
        "auroc_right_vs_unanswerable": auroc(right, [o.confidence for o in unanswerable]),
        f"right_at_confidence_{CALIBRATION_LEVEL}": rate(
            sum(o.answerable and o.hit1 for o in confident), len(confident)
        ),
        f"answers_at_confidence_{CALIBRATION_LEVEL}": len(confident),
        "thresholds": threshold_table(outcomes),
    }


def format_table(table: list[dict[str, float]]) -> str:
    lines = ["threshold  answered(answerable)  refused(unanswerable)  right(among answered)"]
    lines += [
        f"{row['threshold']:>9.2f}  {row['answered_answerable']:>20.3f}  {row['refused_unanswerable']:>21.3f}"
        f"  {row['right_among_answered']:>21.3f}"
        for row in table
    ]
    return "\n".join(lines)
