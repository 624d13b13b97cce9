"""A smoke run of `qa-service bench` on a tiny corpus: every stage runs and the report is complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SEEDS

SQUAD = ROOT.parent / "shared" / "eval" / "squad2-dev-subset.json"
REFERENCE_PYTHON = ROOT / ".bench" / "reference-venv" / "bin" / "python"


def _tiny_squad(path: Path) -> Path:
    data = json.loads(SQUAD.read_text())
    article = data["data"][0]
    article["paragraphs"] = article["paragraphs"][:3]
    path.write_text(json.dumps({"version": data.get("version", "v2.0"), "data": [article]}))
    return path


@pytest.mark.slow
@pytest.mark.integration
def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "report"
    command = [
        sys.executable, "-m", "qa_service.cli", "bench",
        "--squad", str(_tiny_squad(tmp_path / "squad.json")),
        "--out", str(out),
        "--synthetic", "300",
        "--requests", "10",
        "--warmup", "5",
        "--concurrency", "1,4",
        "--scale", "3000",
        "--setting", "embedding_model=hash:64",
        "--setting", "faiss_index=HNSW16",
        "--scale-setting", "token_code=pq16",
    ]  # fmt: skip
    if REFERENCE_PYTHON.exists():
        command += ["--reference-python", str(REFERENCE_PYTHON)]
    # an earlier run's state database (here one no server could open): every run starts without it
    (out / "work" / "ours").mkdir(parents=True)
    (out / "work" / "ours" / "state.sqlite").write_bytes(b"not a database" * 1000)
    done = subprocess.run(
        command, cwd=tmp_path, env={**os.environ, "QA_SEEDS_DIR": str(SEEDS)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    ours = report["ours"]
    for level in ("1", "4"):
        assert ours["http"][level]["requests"] == 10 and ours["http"][level]["errors"] == 0
    assert ours["http_workers"]["4"]["requests"] == 10 and ours["http_workers"]["4"]["errors"] == 0
    assert ours["http_unbatched"]["4"]["requests"] == 10 and ours["http_unbatched"]["4"]["errors"] == 0
    assert ours["measure"]["squad"]["sentences_per_s"] > 0
    assert ours["measure"]["seeds"]["query_p50_ms"] > 0
    assert ours["measure"]["synthetic"]["sentences"] == 300
    assert report["eval"]["questions"] > 0
    scale = report["scale"]
    assert scale["sentences_loaded"] == 3000
    assert scale["deleted_document_gone"] and scale["updated_document_found"]
    assert 0.5 <= scale["recall_at_10"] <= 1.0
    assert scale["token_code"].startswith("pq16:")  # with the codebook the bench trained for hash:64
    markdown = (out / "report.md").read_text()
    assert "| HTTP throughput at c=8 (req/s)" in markdown and "recall_at_10" in markdown
    assert "| HTTP throughput at c=4, micro-batching off" not in markdown  # rows are the standard levels
    assert "| HTTP throughput at c=1, micro-batching off (req/s) | " in markdown
    png = (out / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    if REFERENCE_PYTHON.exists():
        assert report["reference"]["http"]["4"]["errors"] == 0


def test_collection_latency_part_measures_alone_and_beside_others(tmp_path: Path) -> None:
    from qa_service.benchmark.collection_latency import run_collection_latency
    from qa_service.benchmark.report import markdown

    figures = run_collection_latency(
        _tiny_squad(tmp_path / "squad.json"),
        tmp_path / "work",
        {"embedding_model": "hash:64"},
        others=2_000,
        rounds=1,
        log=lambda *_: None,
    )
    assert figures["other_sentences"] >= 2_000 and figures["small_collection_sentences"] > 0
    assert figures["alone"]["answers"] == figures["beside_others"]["answers"] > 0
    assert figures["same_citations"] is True  # the other collection changes nothing of these answers
    assert figures["p50_ratio"] == round(figures["beside_others"]["p50_ms"] / figures["alone"]["p50_ms"], 3)
    assert "beside 2," in markdown({"collections": figures})
