"""`qa-service bench --parts collections`: the answer time of a small collection (the SQuAD subset's
paragraphs) alone in its index, then beside a collection of OTHER sentences (the realistic Zipfian
corpus, 100,000 by default) in the same index; the answers must be the same and the time within 20 %.

Collections are separate stores, so nothing of the big one is read by a question to the small one;
what can still cost is the process: memory, caches, the catalog look-up.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from qa_service.benchmark.zipf_corpus import ZipfCorpus
from qa_service.evaluation.squad import load_squad
from qa_service.service import QAService
from qa_service.settings import Settings

SMALL = "team"
TARGET_RATIO = 1.20


def _timed_answers(service: QAService, questions: list[str], rounds: int) -> tuple[dict[str, float], list[Any]]:
    for q in questions[:20]:  # warm-up
        service.ask(q, collection=SMALL)
    times, answers = [], []
    for _ in range(rounds):
        for q in questions:
            started = time.perf_counter()
            answer = service.ask(q, collection=SMALL)
            times.append(time.perf_counter() - started)
            answers.append([(c.document_id, c.start, c.end) for c in answer.citations])
    ms = np.array(times) * 1000
    figures = {
        "answers": len(times),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }
    return figures, answers


def run_collection_latency(
    squad: Path, workdir: Path, settings: dict[str, Any], others: int = 100_000, rounds: int = 2, log: Any = print
) -> dict[str, Any]:
    documents, squad_questions = load_squad(squad)
    questions = [q.text for q in squad_questions if not q.impossible]
    service = QAService(Settings(**{**settings, "index_dir": workdir / "index"}))
    service.warm_up()
    service.create_collection(SMALL)
    small = service.index_texts(documents, collection=SMALL)
    log(f"collections: {small.sentences} sentences in {SMALL!r}; answering {len(questions)} questions alone")
    alone, before = _timed_answers(service, questions, rounds)
    log(f"collections: indexing {others:,} other sentences into 'default'")
    started = time.perf_counter()
    big = service.index_texts(list(ZipfCorpus().documents(others)))
    index_seconds = time.perf_counter() - started
    beside, after = _timed_answers(service, questions, rounds)
    ratio = beside["p50_ms"] / alone["p50_ms"]
    return {
        "small_collection_sentences": small.sentences,
        "other_sentences": big.sentences,
        "other_index_seconds": round(index_seconds, 1),
        "alone": alone,
        "beside_others": beside,
        "p50_ratio": round(ratio, 3),
        "p95_ratio": round(beside["p95_ms"] / alone["p95_ms"], 3),
        "within_20_percent": bool(ratio <= TARGET_RATIO),
        "same_citations": before == after,
    }
