"""SQuAD 2.0 evaluation: index the paragraphs as documents, ask every question against the corpus."""

from __future__ import annotations

import json
import re
import string
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa_service.errors import InvalidInputError
from qa_service.evaluation.metrics import Outcome, auroc, rate, summarize
from qa_service.service import QAService, TextSource
from qa_service.settings import Settings


def normalize_answer(text: str) -> str:
    """SQuAD's official normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def contains_answer(sentence: str, answers: list[str]) -> bool:
    normalized = normalize_answer(sentence)
    return any(normalize_answer(a) and normalize_answer(a) in normalized for a in answers)


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    answers: list[str]
    impossible: bool
    source: str


def load_squad(path: Path) -> tuple[list[TextSource], list[Question]]:
    """Paragraphs as documents (article title as source) and every question with its article."""
    try:
        data = json.loads(path.read_text())["data"]
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInputError(f"{path} is not a SQuAD JSON file ({exc.__class__.__name__}).") from exc
    documents, questions = [], []
    for article in data:
        title = article["title"].replace("_", " ")
        for n, paragraph in enumerate(article["paragraphs"]):
            documents.append(
                TextSource(source=title, text=paragraph["context"], origin=f"squad:{title}:{n}", meta={"title": title})
            )
            for qa in paragraph["qas"]:
                questions.append(
                    Question(
                        qa["id"],
                        qa["question"],
                        [a["text"] for a in qa["answers"]],
                        bool(qa.get("is_impossible", False)),
                        title,
                    )
                )
    return documents, questions


def evaluate_squad(
    path: Path, settings: Settings, limit: int | None = None, collection: str = "default"
) -> dict[str, Any]:
    """Index the file's paragraphs into a temporary index (into `collection`, created there unless it is
    `default`) and ask every question against all of them.

    Besides the file's own (adversarial) unanswerable questions, every answerable question is asked
    again with its own article filtered out: the documents then do not hold the answer
    (`abstain_rate_offtopic`)."""
    documents, questions = load_squad(path)
    if limit is not None and limit < len(questions):
        # Spread over the whole file: the first N questions would all come from the first article.
        questions = [questions[int(i * len(questions) / limit)] for i in range(limit)]
    outcomes: list[Outcome] = []
    offtopic: list[Outcome] = []
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        service = QAService(settings.model_copy(update={"index_dir": Path(tmp)}))
        service.warm_up()
        if collection != "default":
            service.create_collection(collection)
        report = service.index_texts(documents, collection=collection)
        for question in questions:
            started = time.perf_counter()
            detailed = service.ask_detailed(question.text, collection=collection)
            latencies.append((time.perf_counter() - started) * 1000)
            answer = detailed.answer
            if question.impossible:
                outcomes.append(Outcome(False, answer.confidence, answer.abstained))
                continue
            top = [d.content or "" for d in detailed.ranked[:3]]
            hit1 = bool(top) and contains_answer(top[0], question.answers)
            hit3 = any(contains_answer(s, question.answers) for s in top)
            outcomes.append(Outcome(True, answer.confidence, answer.abstained, hit1, hit3))
            other = service.ask(
                question.text,
                filters={"field": "meta.source", "operator": "!=", "value": question.source},
                collection=collection,
            )
            offtopic.append(Outcome(False, other.confidence, other.abstained))
        service.close()

    metrics = summarize(outcomes)
    return {
        "questions": len(questions),
        "documents": len(documents),
        "sentences": report.sentences,
        **{k: v for k, v in metrics.items() if k != "thresholds"},
        "abstain_rate_offtopic": rate(sum(o.abstained for o in offtopic), len(offtopic)),
        "auroc_right_vs_offtopic": auroc([o.confidence for o in outcomes if o.hit1], [o.confidence for o in offtopic]),
        "p50_ms": round(float(np.percentile(latencies, 50)), 2) if latencies else 0.0,
        "p95_ms": round(float(np.percentile(latencies, 95)), 2) if latencies else 0.0,
        "index_seconds": round(report.seconds, 2),
        "model": settings.embedding_model,
        "thresholds": metrics["thresholds"],
    }
