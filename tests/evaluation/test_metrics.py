from qa_service.evaluation.metrics import Outcome, auroc, summarize, threshold_table


def test_auroc_counts_pairs_and_ties() -> None:
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5], [0.5]) == 0.5
    assert auroc([0.9, 0.3], [0.5]) == 0.5
    assert auroc([], [0.5]) == 0.0


def test_summary_and_threshold_table() -> None:
    outcomes = [
        Outcome(True, 0.9, False, hit1=True, hit3=True),
        Outcome(True, 0.6, False, hit1=False, hit3=True),
        Outcome(True, 0.2, True, hit1=True, hit3=True),
        Outcome(False, 0.85, False),
        Outcome(False, 0.1, True),
    ]
    metrics = summarize(outcomes)
    assert metrics["answerable"] == 3 and metrics["unanswerable"] == 2
    assert metrics["top1_sentence_hit"] == round(2 / 3, 4) and metrics["top3_sentence_hit"] == 1.0
    assert metrics["answered_rate_answerable"] == round(2 / 3, 4)
    assert metrics["right_and_answered"] == round(1 / 3, 4)
    assert metrics["abstain_rate_unanswerable"] == 0.5
    # right answers (0.9, 0.2) against unanswerable (0.85, 0.1): 2 of 4 pairs ordered
    assert metrics["auroc_right_vs_unanswerable"] == 0.75
    assert metrics["right_at_confidence_0.8"] == 0.5 and metrics["answers_at_confidence_0.8"] == 2
    row = {r["threshold"]: r for r in threshold_table(outcomes)}[0.5]
    assert row == {
        "threshold": 0.5,
        "answered_answerable": round(2 / 3, 4),
        "refused_unanswerable": 0.5,
        "right_among_answered": round(1 / 3, 4),
    }
