"""`qa-service bench`: ours and the reference pipeline, side by side, in one run on one machine."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa_service.benchmark import report as report_module
from qa_service.benchmark.corpus import synthetic_documents, write_sentence_corpus
from qa_service.benchmark.environment import ours_env, recorded, reference_env
from qa_service.benchmark.loadgen import run_load
from qa_service.benchmark.servers import free_port, running
from qa_service.evaluation.squad import evaluate_squad, load_squad
from qa_service.service import TextSource
from qa_service.settings import Settings


@dataclass
class BenchConfig:
    out_dir: Path
    squad: Path
    seeds: Path
    reference_python: Path | None  # the reference venv's python; None skips the reference
    synthetic_sentences: int = 20_000
    concurrency: tuple[int, ...] = (1, 8, 32, 64)
    requests_per_level: int = 1200
    warmup: int = 50
    eval_limit: int | None = None  # None: every question
    scale_sentences: int = 0  # 0 skips the scale test
    settings: dict[str, Any] = field(default_factory=dict)  # QA settings overrides for our side
    scale_settings: dict[str, Any] = field(default_factory=dict)  # overrides for the scale test only
    parts: tuple[str, ...] = ("compare", "eval", "scale")
    unbatched: bool = True  # also serve ours with micro-batching off (QA_EMBED_BATCH_WINDOW_MS=0)
    workers: int = 2  # also measure ours with this many worker processes (1: skip)
    log: Any = print


def _machine() -> str:
    return f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}"


def _json_child(command: list[str], out: Path, log_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs `command` (in `env`, default this process's environment) and reads the JSON it wrote to `out`."""
    with log_path.open("wb") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} failed ({done.returncode}):\n{log_path.read_text()[-3000:]}")
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _http(url: str, bodies: list[dict[str, Any]], cfg: BenchConfig, headers: dict[str, str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for c in cfg.concurrency:
        count = min(len(bodies), cfg.requests_per_level + cfg.warmup)
        result = run_load(url, bodies[:count], concurrency=c, warmup=cfg.warmup, headers=headers)
        cfg.log(f"  c={c}: {result.throughput_rps} req/s, p50 {result.p50_ms} ms, p95 {result.p95_ms} ms")
        results[str(c)] = result.as_dict()
    return results


def _our_env(cfg: BenchConfig, index_dir: Path, work: Path) -> dict[str, str]:
    env = {f"QA_{k.upper()}": str(v) for k, v in cfg.settings.items()}
    env.update(
        {
            "QA_INDEX_DIR": str(index_dir),
            "QA_STATE_DB": str(work / "state.sqlite"),
            "QA_RATE_LIMIT_PER_MINUTE": "100000000",
            "QA_RATE_LIMIT_BURST": "100000",
        }
    )
    return env


def run_ours(cfg: BenchConfig, work: Path, questions: list[str]) -> dict[str, Any]:
    # Conversations and the question log of earlier runs: each run writes about 15,000 of each, and a
    # run should not measure inserts into every earlier run's (the file had reached 200 MB).
    for stale in work.glob("state.sqlite*"):
        stale.unlink()
    cfg.log("ours: indexing and in-process latency")
    config = {
        "workdir": str(work / "index"),
        "settings": cfg.settings,
        "squad": str(cfg.squad),
        "seeds": str(cfg.seeds),
        "synthetic": cfg.synthetic_sentences,
        "warmup": 20,
    }
    (work / "measure.json").write_text(json.dumps(config))
    measured = _json_child(
        [sys.executable, "-m", "qa_service.benchmark.measure", str(work / "measure.json"), str(work / "measured.json")],
        work / "measured.json",
        work / "measure.log",
    )
    for corpus in ("squad", "seeds", "synthetic"):
        if corpus in measured:
            measured[corpus]["index_kib"] = round(measured[corpus]["index_bytes"] / 1024, 1)
    cfg.log(f"  {json.dumps(measured)}")
    cfg.log("ours: HTTP")
    port = free_port()
    command = [sys.executable, "-m", "qa_service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = _our_env(cfg, work / "index" / "squad", work)
    bodies = [{"message": q} for q in questions]
    with running(command, port, "/readyz", work / "server.log", env) as server:
        http = _http(server.base_url + "/v1/chat", bodies, cfg, {})
        http["server_peak_rss_mb"] = server.peak_rss_mb()
    result = {"measure": measured, "http": http, "environment": {"variables": recorded(ours_env(overrides=env))}}
    if cfg.unbatched and "embed_batch_window_ms" not in cfg.settings:
        cfg.log("ours: HTTP, micro-batching off (QA_EMBED_BATCH_WINDOW_MS=0)")
        port = free_port()
        command = [*command[:-1], str(port)]
        unbatched_env = {**env, "QA_EMBED_BATCH_WINDOW_MS": "0"}
        with running(command, port, "/readyz", work / "server-unbatched.log", unbatched_env) as server:
            result["http_unbatched"] = _http(server.base_url + "/v1/chat", bodies, cfg, {})
    if cfg.workers > 1:
        cfg.log(f"ours: HTTP, {cfg.workers} worker processes")
        port = free_port()
        command = [*command[:-1], str(port), "--workers", str(cfg.workers)]
        with running(command, port, "/readyz", work / "server-workers.log", env) as server:
            server.wait_for_workers(cfg.workers)
            workers = _http(server.base_url + "/v1/chat", bodies, cfg, {})
            workers["server_peak_rss_mb"] = server.peak_rss_mb()
            workers["workers"] = cfg.workers
        result["http_workers"] = workers
    return result


def run_reference(cfg: BenchConfig, work: Path, documents: list[TextSource], questions: list[str]) -> dict[str, Any]:
    assert cfg.reference_python is not None
    script = Path(__file__).resolve().parents[2] / "bench" / "reference" / "reference.py"
    corpus = work / "squad-sentences.jsonl"
    write_sentence_corpus(documents, corpus)
    (work / "questions.txt").write_text("\n".join(q.replace("\n", " ") for q in questions) + "\n")
    python = str(cfg.reference_python)
    env = reference_env()  # library defaults: none of the thread caps qa_service sets for itself
    cfg.log("reference: indexing and in-process latency")
    squad = _json_child(
        [
            python,
            str(script),
            "measure",
            "--corpus",
            str(corpus),
            "--queries",
            str(work / "questions.txt"),
            "--workdir",
            str(work / "squad"),
            "--warmup",
            "20",
            "--out",
            str(work / "squad.json"),
        ],
        work / "squad.json",
        work / "squad.log",
        env,
    )
    measured: dict[str, Any] = {"squad": squad, "peak_rss_mb": squad.get("peak_rss_mb")}
    squad["index_kib"] = round(squad["index_bytes"] / 1024, 1) if squad.get("index_bytes") else None
    if cfg.synthetic_sentences:
        synthetic_corpus = work / "synthetic-sentences.jsonl"
        write_sentence_corpus(list(synthetic_documents(cfg.synthetic_sentences)), synthetic_corpus)
        measured["synthetic"] = _json_child(
            [
                python,
                str(script),
                "measure",
                "--corpus",
                str(synthetic_corpus),
                "--workdir",
                str(work / "synthetic"),
                "--out",
                str(work / "synthetic.json"),
            ],
            work / "synthetic.json",
            work / "synthetic.log",
            env,
        )
    cfg.log(f"  {json.dumps(measured)}")
    cfg.log("reference: HTTP")
    port = free_port()
    runtime = work / "server-runtime.json"
    runtime.unlink(missing_ok=True)  # not an earlier run's
    command = [python, str(script), "serve", "--corpus", str(corpus), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--runtime-out", str(runtime)]
    with running(command, port, "/health", work / "server.log", base_env=env) as server:
        http = _http(server.base_url + "/query", [{"question": q} for q in questions], cfg, {})
        http["server_peak_rss_mb"] = server.peak_rss_mb()
    environment: dict[str, Any] = {"variables": recorded(env), "measure_threads": squad.get("runtime")}
    environment["server_threads"] = json.loads(runtime.read_text()) if runtime.exists() else None
    return {"measure": measured, "http": http, "environment": environment}


def run_benchmark(cfg: BenchConfig) -> dict[str, Path]:
    """Runs the parts asked for; parts not run keep their results from an earlier report in `out_dir`
    (the scale test alone takes tens of minutes)."""
    work = cfg.out_dir / "work"
    (work / "ours").mkdir(parents=True, exist_ok=True)
    previous = cfg.out_dir / "report.json"
    report: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {}
    report.update({"machine": _machine(), "settings": cfg.settings, "concurrency": list(cfg.concurrency)})
    if "compare" in cfg.parts:
        documents, squad_questions = load_squad(cfg.squad)
        questions = [q.text for q in squad_questions]
        report["ours"] = run_ours(cfg, work / "ours", questions)
        report.pop("reference", None)
        if cfg.reference_python is not None:
            (work / "reference").mkdir(parents=True, exist_ok=True)
            report["reference"] = run_reference(cfg, work / "reference", documents, questions)
    if "eval" in cfg.parts:
        cfg.log("eval: SQuAD subset")
        report["eval"] = evaluate_squad(cfg.squad, Settings(**cfg.settings), limit=cfg.eval_limit)
    if "collections" in cfg.parts:
        from qa_service.benchmark.collection_latency import run_collection_latency

        report["collections"] = run_collection_latency(cfg.squad, work / "collections", cfg.settings, log=cfg.log)
    if "scale" in cfg.parts and cfg.scale_sentences:
        from qa_service.benchmark.scale import run_scale

        cfg.log(f"scale: {cfg.scale_sentences:,} synthetic sentences")
        overrides = {**cfg.settings, **cfg.scale_settings}
        report["scale"] = run_scale(cfg.scale_sentences, work / "scale", overrides, cfg.squad, cfg.log)
        report["scale"]["settings"] = overrides
    return report_module.write(report, cfg.out_dir)
