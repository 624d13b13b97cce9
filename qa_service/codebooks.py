"""Token codebooks: trained once per embedding model on a fixed text sample, shipped with the project.

A codebook is `token_codebooks/<model slug>.pq<M>.npy` ((M, 256, dimension / M) float32 centroids)
and a `.json` beside it: the model, M, the seed, the sample (file and sha256), how many token
vectors trained it, the recipe and the sha256 of the centroids (`ProductCodec.digest`), which every
index written with it records in its manifest. It is reproduced by

    python -m qa_service.codebooks ../shared/eval/squad2-dev-subset.json --m 48

(the SQuAD subset's contexts, the tuning set: never the validation file). Training is FAISS k-means
on one thread with a fixed seed and a fixed subsample, so the same inputs give the same bytes.

A model none ships for gets its own with `--model MODEL --out DIR`, and `QA_TOKEN_CODEBOOK_DIR=DIR`
makes the service look there first (`use_directory`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from qa_service.quantize import INT4, INT4_CODEC, INT8, Codec, ProductCodec, register

logger = logging.getLogger(__name__)

SHIPPED = Path(__file__).parent / "token_codebooks"
RECIPE = (
    "SQuAD contexts -> SentenceSplitter sentences embedded as 'title: sentence' (title tokens dropped, as "
    "indexing does) -> unit token vectors -> seeded subsample of at most max_tokens -> "
    "faiss.ProductQuantizer(d, M, 8) k-means, 25 iterations, one thread"
)


def slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", model.strip("/")).strip("_")


_extra: list[Path] = []  # QA_TOKEN_CODEBOOK_DIR folders, searched before the shipped one


def use_directory(directory: Path | None) -> None:
    """Search `directory` before the shipped codebooks from now on, in this process (its codebooks
    register at once, so that indexes written with them open and decode)."""
    if directory is None:
        return
    directory = Path(directory)
    if directory not in _extra:
        _extra.insert(0, directory)
    load_shipped(directory)


def _folders(directory: Path | None) -> list[Path]:
    return [directory] if directory is not None else [*_extra, SHIPPED]


def paths(model: str, m: int, directory: Path | None = None) -> tuple[Path, Path]:
    base = (directory or SHIPPED) / f"{slug(model)}.pq{m}"
    return base.with_suffix(base.suffix + ".npy"), base.with_suffix(base.suffix + ".json")


def load(model: str, m: int, directory: Path | None = None) -> ProductCodec | None:
    """The codebook for `model` with M sub-quantisers (registered for decoding), or None: from
    `directory`, or else the first of the `use_directory` folders and the shipped one that holds it."""
    found = [paths(model, m, folder) for folder in _folders(directory)]
    npy, meta = next(((n, j) for n, j in found if n.exists()), found[-1])
    if not npy.exists():
        return None
    codec = ProductCodec(np.load(npy).astype(np.float32))
    recorded = json.loads(meta.read_text())["sha256"] if meta.exists() else None
    if recorded != codec.digest:
        raise ValueError(f"{npy} does not match the hash its manifest records; reproduce it (qa_service.codebooks).")
    return register(codec)


def load_shipped(directory: Path | None = None) -> list[ProductCodec]:
    """Every codebook in `directory` (default: the shipped ones and the `use_directory` folders),
    registered so that blobs naming them decode."""
    out = []
    for folder in _folders(directory):
        for meta in sorted(folder.glob("*.json")):
            info = json.loads(meta.read_text())
            codec = load(info["model"], int(info["m"]), folder)
            if codec is not None:
                out.append(codec)
    return out


def resolve(code: str, model: str, dimension: int | None = None, directory: Path | None = None) -> Codec | None:
    """The codec `code` names for `model`: None for int8, and where `code` cannot store this model's
    tokens, which are then stored as int8 (logged): a PQ code without a shipped codebook, or a
    `dimension` the codec cannot hold (int4: odd or below 16). The one place that decides it, for
    the indexing embedder and for the query side's choice of abstention model alike."""
    if code == INT8:
        return None
    codec: Codec | None
    if code == INT4:
        codec = INT4_CODEC
    else:
        codec = load(model, int(code.removeprefix("pq")), directory)
        if codec is None:
            logger.warning(
                "No %s token codebook ships for %s (nor is one in QA_TOKEN_CODEBOOK_DIR); token vectors are stored "
                "as int8.",
                code,
                model,
            )
            return None
    if dimension is not None and not codec.supports(dimension):
        logger.warning("Token code %s cannot store %d-dimensional vectors; they are stored as int8.", code, dimension)
        return None
    return codec


def sample_tokens(texts: list[tuple[str, str]], encoder: Any, batch_size: int = 64) -> np.ndarray:
    """Unit token vectors of `(title, text)` pairs' sentences, as indexing computes them."""
    from haystack import Document

    from qa_service.ingest.splitter import SentenceSplitter
    from qa_service.pipeline.embedders import embedding_text, title_prefix

    docs = [
        Document(content=text, meta={"title": title, "source": title, "document_id": f"d{i}"})
        for i, (title, text) in enumerate(texts)
    ]
    sentences = SentenceSplitter().run(docs)["sentences"]
    prefixes = sorted({title_prefix(d) for d in sentences} - {""})
    skip = dict(zip(prefixes, encoder.token_counts(prefixes), strict=True))
    out = []
    encoded = encoder.embed_tokens([embedding_text(d) for d in sentences], batch_size)
    for doc, (tokens, _) in zip(sentences, encoded, strict=True):
        k = skip.get(title_prefix(doc), 0)
        out.append(tokens[k:] if len(tokens) > k else tokens)
    return np.concatenate(out).astype(np.float32)


def train(tokens: np.ndarray, m: int, seed: int = 1234, max_tokens: int = 200_000) -> ProductCodec:
    import faiss

    rng = np.random.default_rng(seed)
    if len(tokens) > max_tokens:
        tokens = tokens[np.sort(rng.choice(len(tokens), max_tokens, replace=False))]
    d = tokens.shape[1]
    pq = faiss.ProductQuantizer(d, m, 8)
    pq.cp.seed = seed
    pq.cp.niter = 25
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        pq.train(np.ascontiguousarray(tokens, dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(threads)
    centroids = faiss.vector_to_array(pq.centroids).reshape(m, 256, d // m).astype(np.float32)
    return ProductCodec(centroids)


def build(
    squad: Path,
    model: str,
    m: int,
    out_dir: Path | None = None,
    seed: int = 1234,
    max_tokens: int = 200_000,
    backend: str = "onnx-int8",
    limit: int | None = None,
) -> dict[str, Any]:
    """Train and write the codebook for `model` from the contexts of a SQuAD file; returns its manifest."""
    from qa_service.encoders import get_encoder
    from qa_service.evaluation.squad import load_squad
    from qa_service.settings import DEFAULT_MODEL, Settings

    sources, _ = load_squad(squad)
    sources = sources[:limit] if limit else sources
    encoder = get_encoder(model, "cpu", backend, str(Settings().model_cache_dir), None)
    tokens = sample_tokens([(s.meta.get("title", ""), s.text) for s in sources], encoder)
    codec = train(tokens, m, seed, max_tokens)
    out_dir = out_dir or SHIPPED
    out_dir.mkdir(parents=True, exist_ok=True)
    npy, meta = paths(model, m, out_dir)
    np.save(npy, codec.centroids)
    info = {
        "model": model,
        "m": m,
        "nbits": 8,
        "dimension": codec.dimension,
        "encoder_backend": backend,
        "seed": seed,
        "max_tokens": max_tokens,
        "sample": squad.name,
        "sample_sha256": hashlib.sha256(squad.read_bytes()).hexdigest(),
        "paragraphs": len(sources),
        "tokens": int(min(len(tokens), max_tokens)),
        "recipe": RECIPE,
        "command": f"python -m qa_service.codebooks {squad.name} --m {m}"
        + (f" --model {model}" if model != DEFAULT_MODEL else "")
        + (f" --max-tokens {max_tokens}" if max_tokens != 200_000 else ""),
        "sha256": codec.digest,
    }
    meta.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return info


def main(argv: list[str] | None = None) -> None:
    from qa_service.settings import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description="Train a token codebook (product quantiser) for a model.")
    parser.add_argument("squad", type=Path, help="SQuAD-format file whose contexts are the sample (the tuning set)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--m", type=int, default=48, help="sub-quantisers (bytes per token)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--max-tokens", type=int, default=200_000)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--limit", type=int, default=None, help="only the first N paragraphs")
    parser.add_argument("--out", type=Path, default=None, help="default: the shipped folder")
    args = parser.parse_args(argv)
    info = build(args.squad, args.model, args.m, args.out, args.seed, args.max_tokens, args.backend, args.limit)
    print(json.dumps(info, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
