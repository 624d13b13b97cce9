"""In-process measurements of our service, run in a child process so its peak RSS is its own.

`python -m qa_service.benchmark.measure CONFIG.json OUT.json` writes the same fields as the
reference's `reference.py measure`: indexing throughput, query latency, index size and memory.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from qa_service.benchmark.corpus import SEED_QUESTIONS, synthetic_documents
from qa_service.evaluation.squad import load_squad
from qa_service.service import QAService, TextSource
from qa_service.settings import Settings


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latencies(service: QAService, questions: list[str], warmup: int) -> dict[str, float]:
    for q in questions[:warmup]:
        service.ask(q)
    times = []
    for q in questions[warmup:]:
        started = time.perf_counter()
        service.ask(q)
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    return {
        "queries": len(times),
        "query_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "query_p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


def index_corpus(settings: Settings, documents: list[TextSource]) -> tuple[QAService, dict[str, Any]]:
    """Indexes `documents` into a fresh `settings.index_dir`: an index left by an earlier run would be
    reused as it is (nothing to add), and measure neither indexing nor the settings asked for."""
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    service = QAService(settings)
    service.warm_up()
    started = time.perf_counter()
    report = service.index_texts(documents)
    seconds = time.perf_counter() - started
    return service, {
        "sentences": report.sentences,
        "index_seconds": round(seconds, 2),
        "sentences_per_s": round(report.sentences / seconds, 1) if seconds else 0.0,
        "index_bytes": directory_bytes(settings.index_dir),
    }


def measure(config: dict[str, Any]) -> dict[str, Any]:
    """config: workdir, settings (overrides), squad (path), seeds (dir), synthetic (sentences), warmup."""
    workdir = Path(config["workdir"])
    base = Settings(**config.get("settings", {}))
    warmup = int(config.get("warmup", 20))
    result: dict[str, Any] = {"model": base.embedding_model, "encoder_backend": base.encoder_backend}

    documents, questions = load_squad(Path(config["squad"]))
    service, squad = index_corpus(base.model_copy(update={"index_dir": workdir / "squad"}), documents)
    squad.update(latencies(service, [q.text for q in questions], warmup))
    result["squad"] = squad
    result["rss_after_index_mb"] = round(rss_mb(), 1)

    seeds = [
        TextSource(source=p.name, text=p.read_text(), origin=str(p))
        for p in sorted(Path(config["seeds"]).glob("*.txt"))
    ]
    seed_service, seed = index_corpus(base.model_copy(update={"index_dir": workdir / "seeds"}), seeds)
    questions_seeds = SEED_QUESTIONS * max(1, 400 // len(SEED_QUESTIONS))
    seed.update(latencies(seed_service, questions_seeds, warmup))
    result["seeds"] = seed

    if config.get("synthetic"):
        synthetic = list(synthetic_documents(int(config["synthetic"])))
        _, result["synthetic"] = index_corpus(base.model_copy(update={"index_dir": workdir / "synthetic"}), synthetic)
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps(measure(config), indent=2))


if __name__ == "__main__":
    main()
