"""The report: ratios ours/reference in the table, both lines in the plot, partial reports."""

from __future__ import annotations

import json
from pathlib import Path

from qa_service.benchmark.report import markdown, write


def _side(rps: float, p95: float) -> dict[str, object]:
    levels = {str(c): {"throughput_rps": rps * c**0.5, "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 1.2}
              for c in (1, 8, 32, 64)}  # fmt: skip
    return {"http": levels, "measure": {"squad": {"sentences_per_s": rps * 10}, "peak_rss_mb": 300.0}}


def test_table_has_both_sides_and_their_ratio() -> None:
    report = {"ours": _side(100, 20), "reference": _side(25, 80)}
    table = markdown(report)
    row = next(line for line in table.splitlines() if line.startswith("| HTTP throughput at c=8 (req/s)"))
    assert row.split("|")[2].strip() == "283" and row.split("|")[3].strip() == "70.7"
    assert row.split("|")[4].strip() == "4.00×"
    assert "| Peak RSS, HTTP server (MiB) | – | – | – |" in table  # missing figures are shown as such
    assert "| HTTP throughput at c=64 (req/s) | 800 | 200 | 4.00× |" in table


def test_scale_only_report_and_files(tmp_path: Path) -> None:
    report = {"scale": {"sentences": 1000, "recall_at_10": 0.97, "settings": {"faiss_index": "HNSW32"}}}
    table = markdown(report)
    assert "| recall_at_10 | 0.97 |" in table and "ours / reference" not in table
    paths = write({"ours": _side(100, 20), "reference": _side(25, 80), **report}, tmp_path)
    assert json.loads(paths["json"].read_text())["scale"]["sentences"] == 1000
    png = paths["plot"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_report_records_each_sides_environment(tmp_path: Path) -> None:
    ours = {**_side(100, 20), "environment": {"variables": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}}}
    reference = {
        **_side(25, 80),
        "environment": {
            "variables": {"OMP_NUM_THREADS": None, "HF_HUB_OFFLINE": "1"},
            "measure_threads": {"cpu_count": 2, "torch_num_threads": 2},
            "server_threads": {"cpu_count": 2, "torch_num_threads": 2, "faiss_omp_max_threads": 2},
        },
    }
    paths = write({"ours": ours, "reference": reference}, tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert saved["reference"]["environment"]["measure_threads"]["torch_num_threads"] == 2
    assert saved["ours"]["environment"]["variables"]["OMP_NUM_THREADS"] == "1"
    table = paths["markdown"].read_text()
    assert "- ours: OMP_NUM_THREADS=1" in table
    assert "- reference: no thread caps (library defaults)" in table
    assert "reference server: cpu_count 2, torch_num_threads 2, faiss_omp_max_threads 2" in table


def test_micro_batching_off_rows_compare_with_the_reference() -> None:
    """Ours served with QA_EMBED_BATCH_WINDOW_MS=0 gets its own rows (the reference has none)."""
    ours = {**_side(100, 20), "http_unbatched": _side(50, 40)["http"]}
    table = markdown({"ours": ours, "reference": _side(25, 80)})
    assert "| HTTP throughput at c=1, micro-batching off (req/s) | 50.0 | – | – |" in table
    assert "| HTTP p95 at c=64, micro-batching off (ms) | 40.0 | – | – |" in table
    assert "| HTTP throughput at c=64 (req/s) | 800 | 200 | 4.00× |" in table


def test_worker_rows_compare_with_the_reference_server_at_every_level() -> None:
    """Our worker processes against the reference's one server (it has no workers option)."""
    ours = {**_side(100, 20), "http_workers": _side(200, 10)["http"]}
    table = markdown({"ours": ours, "reference": _side(25, 80)})
    assert "| HTTP throughput at c=8, worker processes (req/s) | 566 | 70.7 | 8.00× |" in table
    assert "| HTTP throughput at c=32, worker processes (req/s) | 1,131 | 141 | 8.00× |" in table
    assert "| HTTP p95 at c=64, worker processes (ms) | 10.0 | 80.0 | 0.12× |" in table


def test_indexing_until_saved_adds_the_reference_save_time() -> None:
    """Ours is on disk when indexing returns; the reference's store is saved afterwards."""
    ours = {"http": {}, "measure": {"squad": {"sentences": 700, "index_seconds": 2.0}}}
    reference = {"http": {}, "measure": {"squad": {"sentences": 700, "index_seconds": 5.0, "save_seconds": 2.0}}}
    table = markdown({"ours": ours, "reference": reference})
    assert "| Indexing until saved, SQuAD (sentences/s) | 350 | 100 | 3.50× |" in table
    assert "| Indexing until saved, synthetic (sentences/s) | – | – | – |" in table
