"""Sentence selection: scores candidate sentences from several kinds of evidence.

Evidence per candidate (all from the one embedding model, no extra download):
- dense similarity of the question to the sentence, alone and with its title, and to its passage;
- BM25 of the sentence and of its passage;
- late interaction (mean over question tokens of the best-matching sentence token, ColBERT-style);
- IDF-weighted coverage of the question's content terms;
- whether the sentence holds the kind of thing asked for (a date, a number, a name).
Each feature is z-scored over the candidates and combined with `RankerWeights`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict

from qa_service.encoders import Encoder, get_encoder
from qa_service.lexical import content_terms, coverage, expected_answer_type, matches_answer_type, smoothed_idf
from qa_service.settings import RankerWeights
from qa_service.store.document_store import FaissSQLiteDocumentStore
from qa_service.store.rows import row_to_document, unblob

EVIDENCE = (
    "dense_sentence",
    "dense_titled",
    "dense_passage",
    "bm25_sentence",
    "bm25_passage",
    "coverage",
    "late_interaction",
    "answer_type",
)


class TokenCache:
    """Bounded LRU of per-sentence (token vectors, pooled vector), keyed by sentence row id."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(self, keys: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        with self._lock:
            found = {}
            for key in keys:
                if key in self._items:
                    self._items.move_to_end(key)
                    found[key] = self._items[key]
            return found

    def put(self, key: int, value: tuple[np.ndarray, np.ndarray]) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


def _zscore(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return (values - values.mean()) / std if std > 1e-9 else np.zeros_like(values)


@component
class SentenceRanker:
    """Ranks candidate sentences and keeps the best `top_k`; each output document carries
    `meta["evidence"]` (raw feature values)."""

    def __init__(
        self,
        document_store: FaissSQLiteDocumentStore,
        model: str,
        device: str = "cpu",
        weights: dict[str, float] | None = None,
        token_cache_size: int = 4096,
        top_k: int = 10,
    ) -> None:
        self.document_store, self.model, self.device = document_store, model, device
        self.weights = RankerWeights(**(weights or {}))
        self.token_cache_size = token_cache_size
        self.top_k = top_k
        self._cache = TokenCache(token_cache_size)
        self._encoder: Encoder | None = None

    def warm_up(self) -> None:
        if self._encoder is None:
            self._encoder = get_encoder(self.model, self.device)

    def _token_vectors(self, ids: list[int], texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        assert self._encoder is not None
        cached = self._cache.get_many(ids)
        missing = [(i, t) for i, t in zip(ids, texts, strict=True) if i not in cached]
        if missing:
            for (i, _), value in zip(missing, self._encoder.embed_tokens([t for _, t in missing]), strict=True):
                cached[i] = value
                self._cache.put(i, value)
        return [cached[i] for i in ids]

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, query_vector: np.ndarray, query_tokens: np.ndarray, documents: list[Document]
    ) -> dict[str, list[Document]]:
        self.warm_up()
        ids = list(dict.fromkeys(int(d.meta["row_id"]) for d in documents))
        store = self.document_store
        rows = [r for r in store.sentence_rows(ids)]
        if not rows:
            return {"documents": []}
        ids = [int(r["id"]) for r in rows]
        q = np.asarray(query_vector, dtype=np.float32)
        tokens = self._token_vectors(ids, [r["text"] for r in rows])
        passages = store.passage_vectors(list({int(r["passage_id"]) for r in rows}))
        bm25_s = dict(store.keyword_sentences(query, len(ids), restrict=ids))
        bm25_p = dict(store.keyword_passages(query, len(passages), restrict=list(passages)))
        q_terms = content_terms(query)
        sentence_terms = [content_terms(r["text"]) for r in rows]
        df, total = store.db.term_frequencies(sorted(q_terms)), store.sentence_count
        answer_type = expected_answer_type(query)
        features = {
            "dense_sentence": np.array([pooled @ q for _, pooled in tokens]),
            "dense_titled": np.array([unblob(r["embedding"]) @ q for r in rows]),
            "dense_passage": np.array([passages[int(r["passage_id"])] @ q for r in rows]),
            "bm25_sentence": np.array([bm25_s.get(i, 0.0) for i in ids]),
            "bm25_passage": np.array([bm25_p.get(int(r["passage_id"]), 0.0) for r in rows]),
            "coverage": np.array(
                [coverage(q_terms, t, lambda w: smoothed_idf(df.get(w, 0), max(total, 1))) for t in sentence_terms]
            ),
            "late_interaction": np.array(
                [float((query_tokens @ tok.T).max(axis=1).mean()) if len(tok) else 0.0 for tok, _ in tokens]
            ),
            "answer_type": np.array([float(matches_answer_type(answer_type, query, r["text"])) for r in rows]),
        }
        weights = self.weights.model_dump()
        score = sum(weights[name] * (_zscore(v) if name != "answer_type" else v) for name, v in features.items())
        order = np.argsort(-np.asarray(score), kind="stable")
        ranked = []
        for i in order[: self.top_k]:
            doc = row_to_document(rows[i], score=float(score[i]))
            doc.meta["evidence"] = {name: float(values[i]) for name, values in features.items()}
            ranked.append(doc)
        return {"documents": ranked}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            document_store=self.document_store.to_dict(),
            model=self.model,
            device=self.device,
            weights=self.weights.model_dump(),
            token_cache_size=self.token_cache_size,
            top_k=self.top_k,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SentenceRanker:
        params = data["init_parameters"]
        params["document_store"] = FaissSQLiteDocumentStore.from_dict(params["document_store"])
        return default_from_dict(cls, data)
