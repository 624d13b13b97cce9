"""`qa-service bench --parts collections`: the answer time of a small collection (the SQuAD subset's
paragraphs) alone in its index, against the same collection in an index that also holds a collection
of OTHER sentences (the realistic Zipfian corpus, 100,000 by default). The answers must be the same
and the time within 20 %.

The second index is a copy of the first with the other sentences added, so the small collection's
files are the same. Each index is measured in a fresh child process, alternately, twice: measuring in
the process that has just indexed 100,000 sentences times its heap and caches, not the index.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
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


def _questions(squad: Path) -> list[str]:
    return [q.text for q in load_squad(squad)[1] if not q.impossible]


def measure(squad: Path, settings: dict[str, Any], rounds: int) -> dict[str, Any]:
    """In this process: answer every answerable question `rounds` times from collection SMALL."""
    questions = _questions(squad)
    service = QAService(Settings(**settings), create_index=False)
    service.warm_up()
    for q in questions[:20]:
        service.ask(q, collection=SMALL)
    times, answers = [], []
    for _ in range(rounds):
        for q in questions:
            started = time.perf_counter()
            answer = service.ask(q, collection=SMALL)
            times.append(time.perf_counter() - started)
            answers.append([[c.document_id, c.start, c.end] for c in answer.citations])
    ms = np.array(times) * 1000
    return {
        "answers": len(times),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "citations": answers,
    }


def _child(squad: Path, settings: dict[str, Any], rounds: int, out: Path) -> dict[str, Any]:
    config = out.with_suffix(".config.json")
    config.write_text(json.dumps({"squad": str(squad), "settings": settings, "rounds": rounds}, default=str))
    subprocess.run([sys.executable, "-m", "qa_service.benchmark.collection_latency", str(config), str(out)], check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_collection_latency(
    squad: Path,
    workdir: Path,
    settings: dict[str, Any],
    others: int = 100_000,
    rounds: int = 2,
    log: Any = print,
) -> dict[str, Any]:
    documents = load_squad(squad)[0]
    alone_dir, beside_dir = workdir / "alone", workdir / "beside"
    for stale in (alone_dir, beside_dir):
        shutil.rmtree(stale, ignore_errors=True)
    service = QAService(Settings(**{**settings, "index_dir": alone_dir}))
    service.create_collection(SMALL)
    small = service.index_texts(documents, collection=SMALL)
    service.close()
    shutil.copytree(alone_dir, beside_dir)
    log(f"collections: {small.sentences} sentences in {SMALL!r}; indexing {others:,} other sentences beside them")
    service = QAService(Settings(**{**settings, "index_dir": beside_dir}))
    started = time.perf_counter()
    big = service.index_texts(list(ZipfCorpus().documents(others)))
    index_seconds = time.perf_counter() - started
    service.close()
    runs: dict[str, list[dict[str, Any]]] = {"alone": [], "beside": []}
    for n in range(2):  # alternately, so that drift of the machine hits both alike
        for label, directory in (("alone", alone_dir), ("beside", beside_dir)):
            log(f"collections: measuring {label} ({n + 1}/2)")
            out = workdir / f"{label}-{n}.json"
            runs[label].append(_child(squad, {**settings, "index_dir": str(directory)}, rounds, out))

    def summary(label: str) -> dict[str, Any]:
        return {
            "answers": sum(r["answers"] for r in runs[label]),
            "p50_ms": round(float(np.median([r["p50_ms"] for r in runs[label]])), 2),
            "p95_ms": round(float(np.median([r["p95_ms"] for r in runs[label]])), 2),
            "runs_p50_ms": [r["p50_ms"] for r in runs[label]],
        }

    alone, beside = summary("alone"), summary("beside")
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
        "same_citations": all(r["citations"] == runs["alone"][0]["citations"] for r in runs["alone"] + runs["beside"]),
    }


def main() -> None:
    config, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
    result = measure(Path(config["squad"]), config["settings"], int(config["rounds"]))
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
