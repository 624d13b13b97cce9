"""Precision of the generative citation check (`supports`) on SQuAD: does it accept a claim only when
the cited sentence holds it?

Every answerable question becomes a claim, the question with its answer ("How many ...? 30,000."), as a
model restating the source would write it. It is checked against the paragraph sentence that holds the
answer (should support), against another sentence of the same paragraph (hard negative: same topic and
names, not the answer) and against a sentence of another article (easy negative).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from qa_service.evaluation.squad import contains_answer
from qa_service.generation.citations import supports
from qa_service.ingest.segmentation import split_sentences


def evaluate_support(path: Path, seed: int = 5) -> dict[str, Any]:
    data = json.loads(path.read_text())["data"]
    rng = random.Random(seed)
    cases: list[tuple[str, list[str], list[str], list[str]]] = []  # (claim, answers, holding, others)
    all_sentences: list[tuple[str, str]] = []
    for article in data:
        for paragraph in article["paragraphs"]:
            text = paragraph["context"]
            sentences = [text[s.start : s.end] for s, _ in split_sentences(text)]
            all_sentences += [(article["title"], s) for s in sentences]
            for qa in paragraph["qas"]:
                answers = [a["text"] for a in qa["answers"]]
                if qa.get("is_impossible") or not answers:
                    continue
                holding = [s for s in sentences if contains_answer(s, answers)]
                others = [s for s in sentences if not contains_answer(s, answers)]
                if holding:
                    cases.append((f"{qa['question'].strip()} {answers[0].strip()}.", answers, holding, others))
    accepted = {"positive": 0, "hard": 0, "easy": 0}
    totals = {"positive": 0, "hard": 0, "easy": 0}
    for claim, answers, holding, others in cases:
        checks = [("positive", holding[0])]
        if others:
            checks.append(("hard", rng.choice(others)))
        checks.append(("easy", rng.choice(all_sentences)[1]))
        for kind, sentence in checks:
            if kind == "easy" and contains_answer(sentence, answers):
                continue
            totals[kind] += 1
            accepted[kind] += supports(claim, sentence)
    true_pos = accepted["positive"]
    false_pos = accepted["hard"] + accepted["easy"]
    return {
        "claims": len(cases),
        "precision": round(true_pos / max(true_pos + false_pos, 1), 4),
        "recall": round(true_pos / max(totals["positive"], 1), 4),
        "accepted_hard_negatives": round(accepted["hard"] / max(totals["hard"], 1), 4),
        "accepted_easy_negatives": round(accepted["easy"] / max(totals["easy"], 1), 4),
    }
