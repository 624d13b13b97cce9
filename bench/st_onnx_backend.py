"""sentence-transformers' own ONNX backend vs `qa_service.onnx_encoder`, with torch fp32 as the truth.

Measures, for the packaged all-MiniLM-L6-v2, offline and single-threaded: vector and token-vector
agreement with torch, one-question latency, 64-sentence batch throughput (encoders alternated in one
process), and first-start / cached-start cost. Prints a markdown table.

It needs Optimum, which the project does not install. `sentence-transformers[onnx]==6.2.0` is
unresolvable (it needs transformers>=5; optimum-onnx 0.1.0, the newest, needs transformers<4.58), and
`pip install --no-deps optimum-onnx==0.1.0 optimum==2.1.0` beside transformers 5.24 fails at import
(`cannot import name 'get_parameter_dtype' from 'transformers.modeling_utils'`). So the scratch venv
shadows the project's transformers / tokenizers / huggingface_hub with the versions pip picks:

    python3 -m venv /tmp/stonnx-tf4
    echo "import site; site.addsitedir('/work/main/.venv/lib/python3.11/site-packages')" \
        > /tmp/stonnx-tf4/lib/python3.11/site-packages/qa_main.pth
    /tmp/stonnx-tf4/bin/pip install optimum-onnx==0.1.0
    # -> optimum 2.1.0, optimum-onnx 0.1.0, transformers 4.57.6, tokenizers 0.22.2, huggingface_hub 0.36.2
    cd /work/main && nice -n 10 /tmp/stonnx-tf4/bin/python bench/st_onnx_backend.py | tee /tmp/st_onnx_report.md
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SQUAD = Path(os.environ.get("SQUAD", "/work/shared/eval/squad2-dev-subset.json"))
QCONFIGS = ["avx2", "avx512_vnni"]  # avx2 fits this CPU; avx512_vnni's QInt8 weights match our recipe


def texts(n_sentences: int = 300, n_questions: int = 200) -> tuple[list[str], list[str]]:
    data = json.loads(SQUAD.read_text())["data"]
    paragraphs = [p for article in data for p in article["paragraphs"]]
    sentences = list(dict.fromkeys(s.strip() for p in paragraphs for s in p["context"].split(". ") if len(s) > 3))
    step = max(1, len(sentences) // n_sentences)
    questions = list(dict.fromkeys(q["question"] for p in paragraphs for q in p["qas"]))
    return sentences[::step][:n_sentences], questions[:n_questions]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def st_tokens(model, batch: list[str]) -> list[np.ndarray]:
    """ST's per-token vectors, [CLS]/[SEP] dropped (as `embed_tokens` does)."""
    out = model.encode(batch, output_value="token_embeddings", batch_size=64, show_progress_bar=False)
    return [t.float().numpy()[1:-1] for t in out]


def main() -> None:
    import onnxruntime as ort
    import sentence_transformers
    import torch
    import transformers
    from optimum.version import __version__ as optimum_version
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    from qa_service.encoders import resolve_model_path
    from qa_service.onnx_encoder import OnnxEncoder
    from qa_service.settings import DEFAULT_MODEL

    torch.set_num_threads(1)
    model_dir = Path(resolve_model_path(DEFAULT_MODEL))
    work = Path(tempfile.mkdtemp(prefix="st-onnx-"))
    st_dir = work / "st-model"  # ST writes onnx/ into the model directory: use a copy, not site-packages
    shutil.copytree(model_dir, st_dir)
    sentences, questions = texts()

    def session_options() -> ort.SessionOptions:
        options = ort.SessionOptions()  # as ours: 1 intra-op thread, no spinning
        options.intra_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return options

    def st_onnx(file_name: str | None = None) -> SentenceTransformer:
        kwargs = {"session_options": session_options(), "provider": "CPUExecutionProvider"}
        if file_name:
            kwargs["file_name"] = file_name
        return SentenceTransformer(str(st_dir), backend="onnx", device="cpu", model_kwargs=kwargs)

    starts: dict[str, str] = {}
    encoders: dict[str, object] = {}
    encoders["torch fp32"], t = timed(lambda: SentenceTransformer(str(model_dir), device="cpu"))
    starts["torch fp32"] = f"load {t:.1f} s"
    ours_cache = work / "ours-cache"
    for name, quantize in [("ours onnx fp32", False), ("ours onnx-int8", True)]:
        _, first = timed(lambda q=quantize: OnnxEncoder(DEFAULT_MODEL, ours_cache, quantize=q, threads=1))
        encoders[name], again = timed(lambda q=quantize: OnnxEncoder(DEFAULT_MODEL, ours_cache, quantize=q, threads=1))
        step = "quantise, reusing the cached fp32" if quantize else "export"
        starts[name] = f"first {first:.1f} s ({step}; cached in cache_dir), later {again:.1f} s"
    exported, t_export = timed(st_onnx)
    again_export = timed(st_onnx)[1]
    _, t_save = timed(lambda: exported.save_pretrained(str(st_dir)))
    encoders["ST onnx fp32"], t_cached = timed(lambda: st_onnx("onnx/model.onnx"))
    starts["ST onnx fp32"] = (
        f"export {t_export:.1f} s, again {again_export:.1f} s (not cached) + save_pretrained {t_save:.1f} s; "
        f"from saved {t_cached:.1f} s"
    )
    for qconfig in QCONFIGS:
        _, t_q = timed(lambda c=qconfig: export_dynamic_quantized_onnx_model(exported, c, str(st_dir)))
        file_name = next((st_dir / "onnx").glob(f"model_*_{qconfig}.onnx")).name
        encoders[f"ST {qconfig} int8"], t_load = timed(lambda f=file_name: st_onnx(f"onnx/{f}"))
        starts[f"ST {qconfig} int8"] = f"+ quantise {t_q:.1f} s ({file_name}); from saved {t_load:.1f} s"

    def embed(name: str, batch: list[str]) -> np.ndarray:
        enc = encoders[name]
        if isinstance(enc, OnnxEncoder):
            return enc.embed(batch, batch_size=64)
        return enc.encode(batch, batch_size=64, normalize_embeddings=True, show_progress_bar=False)

    def tokens(name: str, batch: list[str]) -> list[np.ndarray]:
        enc = encoders[name]
        return [t for t, _ in enc.embed_tokens(batch)] if isinstance(enc, OnnxEncoder) else st_tokens(enc, batch)

    truth = embed("torch fp32", sentences)
    truth_tokens = tokens("torch fp32", sentences)
    rows: dict[str, dict[str, str]] = {name: {} for name in encoders}
    for name in encoders:
        cos = cosines(embed(name, sentences), truth)
        rows[name]["vec cos mean / min"] = f"{cos.mean():.5f} / {cos.min():.5f}"
        try:
            got = tokens(name, sentences)
            same = [g.shape == w.shape for g, w in zip(got, truth_tokens, strict=True)]
            tok = np.concatenate([cosines(g, w) for g, w, s in zip(got, truth_tokens, same, strict=True) if s])
            rows[name]["token cos mean / min"] = f"{tok.mean():.5f} / {tok.min():.5f} ({sum(same)}/{len(same)} rows)"
        except Exception as exc:
            rows[name]["token cos mean / min"] = f"failed: {exc.__class__.__name__}: {exc}"[:120]

    latencies: dict[str, list[float]] = {name: [] for name in encoders}
    for name in encoders:  # warm-up
        embed(name, questions[:5])
    for question in questions:
        for name in encoders:
            latencies[name].append(timed(lambda n=name, q=question: embed(n, [q]))[1])
    spent = dict.fromkeys(encoders, 0.0)
    rounds = 3
    batches = [sentences[i : i + 64] for i in range(0, len(sentences), 64)]
    for _ in range(rounds):
        for batch in batches:
            for name in encoders:
                spent[name] += timed(lambda n=name, b=batch: embed(n, b))[1]
    base_latency = statistics.median(latencies["ours onnx-int8"])
    base_rate = rounds * len(sentences) / spent["ours onnx-int8"]
    for name in encoders:
        latency = statistics.median(latencies[name])
        rate = rounds * len(sentences) / spent[name]
        rows[name]["1 question, median ms (x ours int8)"] = f"{latency * 1e3:.2f} ({latency / base_latency:.2f}x)"
        rows[name]["batch 64, sent/s (x ours int8)"] = f"{rate:.0f} ({rate / base_rate:.2f}x)"
        rows[name]["start"] = starts[name]

    print(
        f"sentence-transformers {sentence_transformers.__version__}, optimum {optimum_version}, "
        f"transformers {transformers.__version__}, onnxruntime {ort.__version__}, torch {torch.__version__}; "
        f"{len(sentences)} sentences, {len(questions)} questions, 1 thread, HF_HUB_OFFLINE=1\n"
    )
    columns = list(next(iter(rows.values())))
    print("| encoder | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(row[c] for c in columns) + " |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
