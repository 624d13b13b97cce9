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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from haystack import Document, component, default_from_dict, default_to_dict

from qa_service.lexical import content_terms, coverages, expected_answer_type, matches_answer_type, smoothed_idf
from qa_service.quantize import decode_blobs
from qa_service.settings import RankerWeights
from qa_service.store.protocol import SentenceStore, store_from_dict
from qa_service.store.sentences import row_to_document, unblob_many

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


def _zscore(values: np.ndarray) -> np.ndarray:
    std = values.std()
    return (values - values.mean()) / std if std > 1e-9 else np.zeros_like(values)


@component
class SentenceRanker:
    """Ranks candidate sentences and keeps the best `top_k`; each output document carries
    `meta["evidence"]` (raw feature values)."""

    def __init__(
        self,
        document_store: SentenceStore,
        weights: dict[str, float] | None = None,
        top_k: int = 10,
    ) -> None:
        self.document_store = document_store
        self.weights = RankerWeights(**(weights or {}))
        self.top_k = top_k

    @staticmethod
    def _dense_evidence(
        rows: Sequence[Mapping[str, Any]], q: np.ndarray, query_tokens: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(titled cosine, sentence-only cosine, late interaction) for every row, in a few matrix ops.

        A sentence's tokens (stored at indexing) give its late interaction (mean over question tokens
        of the best sentence token) and, pooled, its sentence-only vector. Sentences written without
        tokens (through the DocumentStore protocol) use their titled vector as their only token.
        """
        d = len(q)
        titled = unblob_many([r["embedding"] for r in rows], d)
        blobs = [r["tokens"] for r in rows]
        if all(blobs):
            tokens, lengths = decode_blobs(blobs, d)
        else:
            stored, counts = decode_blobs([b for b in blobs if b], d)
            parts, at, k = [], 0, 0
            for i, b in enumerate(blobs):
                if b:
                    parts.append(stored[at : at + counts[k]])
                    at, k = at + counts[k], k + 1
                else:
                    parts.append(titled[i : i + 1])
            lengths = np.array([len(p) for p in parts])
            tokens = np.concatenate(parts)
        ends = np.cumsum(lengths)
        offsets = ends - lengths
        # One sum per sentence: `np.add.reduceat(tokens, offsets, axis=0)` took 1.4 ms for 70 sentences
        # of 30 tokens against 0.3 ms for these slices (measured).
        own = np.stack([tokens[a:b].sum(axis=0) for a, b in zip(offsets.tolist(), ends.tolist(), strict=True)])
        own /= np.maximum(np.linalg.norm(own, axis=1, keepdims=True), 1e-12)
        # (tokens x question) rather than (question x tokens): with a handful of question rows,
        # OpenBLAS's sgemm took 10-20 ms for what this orientation does in 0.4 ms (measured).
        similarity = (tokens @ query_tokens.T).T
        late = np.maximum.reduceat(similarity, offsets, axis=1).mean(axis=0)
        return titled @ q, own @ q, late

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        query_vector: np.ndarray,
        query_tokens: np.ndarray,
        documents: list[Document] | None = None,
        row_ids: list[int] | None = None,
    ) -> dict[str, list[Document]]:
        """Ranks the candidates: `row_ids` (from `ids_only` retrievers) or `documents` (their
        `meta["row_id"]`); the ranker reads their rows itself."""
        if row_ids is not None:
            ids = list(dict.fromkeys(row_ids))
        else:
            ids = list(dict.fromkeys(d.meta["row_id"] for d in documents or []))
        store = self.document_store
        rows = store.sentence_rows(ids)
        if not rows:
            return {"documents": []}
        ids = [r["id"] for r in rows]
        q = np.asarray(query_vector, dtype=np.float32)
        dense_titled, dense_sentence, late_interaction = self._dense_evidence(rows, q, query_tokens)
        passages = store.passage_vectors(list({r["passage_id"] for r in rows}))
        bm25_s = dict(store.keyword_sentences(query, len(ids), restrict=ids))
        bm25_p = dict(store.keyword_passages(query, len(passages), restrict=list(passages)))
        q_terms = content_terms(query)
        sentence_terms = [content_terms(r["text"]) for r in rows]
        df, total = store.term_frequencies(sorted(q_terms)), store.sentence_count
        answer_type = expected_answer_type(query)
        features = {
            "dense_sentence": dense_sentence,
            "dense_titled": dense_titled,
            "dense_passage": np.array([passages[r["passage_id"]] @ q for r in rows]),
            "bm25_sentence": np.array([bm25_s.get(i, 0.0) for i in ids]),
            "bm25_passage": np.array([bm25_p.get(r["passage_id"], 0.0) for r in rows]),
            "coverage": np.array(
                coverages(q_terms, sentence_terms, lambda w: smoothed_idf(df.get(w, 0), max(total, 1)))
            ),
            "late_interaction": late_interaction,
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
            weights=self.weights.model_dump(),
            top_k=self.top_k,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SentenceRanker:
        params = data["init_parameters"]
        params["document_store"] = store_from_dict(params["document_store"])
        return default_from_dict(cls, data)
