"""The benchmark report: one JSON file, a markdown table of ours vs the reference, and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qa_service.benchmark.environment import THREAD_CAPS

# (label, path into a side's results, higher is better)
ROWS: list[tuple[str, tuple[str, ...], bool]] = [
    ("HTTP throughput at c=8 (req/s)", ("http", "8", "throughput_rps"), True),
    ("HTTP p50 at c=8 (ms)", ("http", "8", "p50_ms"), False),
    ("HTTP p95 at c=8 (ms)", ("http", "8", "p95_ms"), False),
    ("HTTP p99 at c=8 (ms)", ("http", "8", "p99_ms"), False),
    ("HTTP throughput at c=1 (req/s)", ("http", "1", "throughput_rps"), True),
    ("HTTP p95 at c=1 (ms)", ("http", "1", "p95_ms"), False),
    ("HTTP throughput at c=32 (req/s)", ("http", "32", "throughput_rps"), True),
    ("HTTP p95 at c=32 (ms)", ("http", "32", "p95_ms"), False),
    ("HTTP throughput at c=64 (req/s)", ("http", "64", "throughput_rps"), True),
    ("HTTP p95 at c=64 (ms)", ("http", "64", "p95_ms"), False),
    *(
        row
        for c in ("1", "8", "32", "64")
        for row in (
            (f"HTTP throughput at c={c}, micro-batching off (req/s)", ("http_unbatched", c, "throughput_rps"), True),
            (f"HTTP p95 at c={c}, micro-batching off (ms)", ("http_unbatched", c, "p95_ms"), False),
        )
    ),
    *(
        row
        for c in ("8", "1", "32", "64")
        for row in (
            (f"HTTP throughput at c={c}, worker processes (req/s)", ("http_workers", c, "throughput_rps"), True),
            (f"HTTP p95 at c={c}, worker processes (ms)", ("http_workers", c, "p95_ms"), False),
        )
    ),
    ("In-process p50, SQuAD (ms)", ("measure", "squad", "query_p50_ms"), False),
    ("In-process p95, SQuAD (ms)", ("measure", "squad", "query_p95_ms"), False),
    ("In-process p50, seeds (ms)", ("measure", "seeds", "query_p50_ms"), False),
    ("In-process p95, seeds (ms)", ("measure", "seeds", "query_p95_ms"), False),
    ("Indexing, SQuAD (sentences/s)", ("measure", "squad", "sentences_per_s"), True),
    ("Indexing, synthetic (sentences/s)", ("measure", "synthetic", "sentences_per_s"), True),
    ("Indexing until saved, SQuAD (sentences/s)", ("measure", "squad", "saved_sentences_per_s"), True),
    ("Indexing until saved, synthetic (sentences/s)", ("measure", "synthetic", "saved_sentences_per_s"), True),
    ("Index on disk, SQuAD (KiB)", ("measure", "squad", "index_kib"), False),
    ("Peak RSS, in-process run (MiB)", ("measure", "peak_rss_mb"), False),
    ("Peak RSS, HTTP server (MiB)", ("http", "server_peak_rss_mb"), False),
]


def _reference_path(path: tuple[str, ...]) -> tuple[str, ...]:
    """Where the reference's figure for a row of ours is: its one server is what our worker
    processes are measured against (the reference has no workers option)."""
    return ("http", *path[1:]) if path[0] == "http_workers" else path


def _node(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    """What `path` leads to in `data`, or None where it stops short."""
    node: Any = data
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _get(data: dict[str, Any], path: tuple[str, ...]) -> float | None:
    if path[-1] == "saved_sentences_per_s":
        return _saved_rate(_node(data, path[:-1]))
    node = _node(data, path)
    return float(node) if isinstance(node, int | float) else None


def _saved_rate(measured: Any) -> float | None:
    """Sentences a second until the index is on disk: ours commits before `index_texts` returns; the
    reference's FAISS store is saved afterwards (`save_seconds`), and is lost on restart until then."""
    if not isinstance(measured, dict):
        return None
    seconds = (measured.get("index_seconds") or 0) + (measured.get("save_seconds") or 0)
    return measured["sentences"] / seconds if seconds and measured.get("sentences") else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


THREAD_COUNTS = ("cpu_count", "torch_num_threads", "torch_num_interop_threads", "faiss_omp_max_threads")


def environment_lines(report: dict[str, Any]) -> list[str]:
    """Which thread caps each side ran with, and the thread counts the reference reported using."""
    lines = []
    for side, label in (("ours", "ours"), ("reference", "reference")):
        env = report.get(side, {}).get("environment")
        if not env:
            continue
        variables = env.get("variables", {})
        caps = ", ".join(f"{k}={v}" for k, v in variables.items() if v is not None and k in THREAD_CAPS)
        lines.append(f"- {label}: {caps or 'no thread caps (library defaults)'}")
        for key in ("measure_threads", "server_threads"):
            threads = env.get(key) or {}
            counts = ", ".join(f"{k} {threads[k]}" for k in THREAD_COUNTS if k in threads)
            if counts:
                lines.append(f"  - {label} {key.split('_')[0]}: {counts}")
    return ["", "Environment:", "", *lines] if lines else []


def markdown(report: dict[str, Any]) -> str:
    ours, ref = report.get("ours", {}), report.get("reference", {})
    lines = []
    if ours:
        lines += ["| metric | ours | reference | ours / reference |", "| --- | ---: | ---: | ---: |"]
        for label, path, _higher in ROWS:
            a, b = _get(ours, path), _get(ref, _reference_path(path))
            ratio = f"{a / b:.2f}×" if a is not None and b else "–"
            lines.append(f"| {label} | {_fmt(a)} | {_fmt(b)} | {ratio} |")
        lines += environment_lines(report)
    if "eval" in report:
        e = report["eval"]
        lines += [
            "",
            "| SQuAD 2.0 subset (ours) | value |",
            "| --- | ---: |",
            *(
                f"| {k} | {e[k]} |"
                for k in (
                    "top1_sentence_hit",
                    "top3_sentence_hit",
                    "answered_rate_answerable",
                    "abstain_rate_unanswerable",
                    "abstain_rate_offtopic",
                )
                if k in e
            ),
        ]
    if "collections" in report:
        c = report["collections"]
        lines += [
            "",
            f"| a collection of {c['small_collection_sentences']} sentences, answer time | p50 ms | p95 ms |",
            "| --- | ---: | ---: |",
            f"| alone in its index | {c['alone']['p50_ms']} | {c['alone']['p95_ms']} |",
            f"| beside {c['other_sentences']:,} other sentences | {c['beside_others']['p50_ms']} "
            f"| {c['beside_others']['p95_ms']} |",
            f"| ratio (target ≤ 1.20) | {c['p50_ratio']} | {c['p95_ratio']} |",
            "",
            f"Same citations alone and beside: {c['same_citations']}.",
        ]
    if "scale" in report:
        s = report["scale"]
        lines += [
            "",
            "| scale test | value |",
            "| --- | ---: |",
            *(f"| {k} | {v} |" for k, v in s.items() if not isinstance(v, dict)),
        ]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Latency (p50 and p95) and throughput against concurrency, ours and the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = (
        ("ours", "http", "tab:blue", "qa-service"),
        ("ours", "http_workers", "tab:green", "qa-service, worker processes"),
        ("ours", "http_unbatched", "tab:purple", "qa-service, micro-batching off"),
        ("reference", "http", "tab:orange", "reference (Haystack tutorial pipeline)"),
    )
    for side, key, style, label in series:
        http = report.get(side, {}).get(key, {})
        levels = sorted(int(c) for c in http if c.isdigit())
        if not levels:
            continue
        if key == "http_workers":
            label = f"{label} ({http.get('workers', '?')})"
        left.plot(levels, [http[str(c)]["p50_ms"] for c in levels], "o-", color=style, label=f"{label} p50")
        left.plot(levels, [http[str(c)]["p95_ms"] for c in levels], "s--", color=style, label=f"{label} p95")
        right.plot(levels, [http[str(c)]["throughput_rps"] for c in levels], "o-", color=style, label=label)
    for ax, ylabel in ((left, "latency (ms)"), (right, "throughput (requests/s)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    left.set_yscale("log")
    fig.suptitle(f"HTTP on loopback, {report.get('machine', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md", "plot": out_dir / "latency.png"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(markdown(report))
    plot(report, paths["plot"])
    return paths
