"""BM25 as pgvector sparse vectors: the PostgreSQL backend's top-k keyword leg.

A row's `bm25` column (`sparsevec`, HNSW inner-product index) holds, for each of its terms, the BM25
term-frequency part with length normalisation, `tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl))`.
A question's vector holds the IDF of each of its terms, read from `qa_term_df` in the answer's
snapshot; the inner product of the two is the row's BM25 score. Only the question side depends on the
corpus, so rows never need rewriting as it grows (`avgdl` is a fixed reference length per table,
recorded in `qa_meta`), and `ORDER BY bm25 <#> q LIMIT k` walks the HNSW graph instead of ranking
every row that shares a word with the question (what `ts_rank_cd` did).

Terms are `content_terms`' analysis (lower-cased words, light stemming, stopwords removed), the same
terms `qa_term_df` counts, so every query term's document frequency is exact. Term ids are a stable
hash into `DIMENSION` (no term table to keep in step; collisions are measured by
bench/pg_lexical.py).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from functools import lru_cache

from qa_service.lexical import STOPWORDS, terms

DIMENSION = 1 << 29  # below pgvector's sparsevec limit (10^9); ~0.1% of 10^6 distinct terms collide
K1, B = 1.2, 0.75
# Reference lengths in content terms (the SQuAD subset's means, rounded); fixed so that stored row
# vectors stay valid as the corpus changes.
AVGDL = {"qa_sentences": 12.0, "qa_passages": 60.0}
MAX_ROW_TERMS = 1000  # pgvector's HNSW indexes sparse vectors of at most 1,000 non-zero elements
MAX_QUERY_TERMS = 64


def analyse(text: str) -> list[str]:
    """The text's content terms, with repeats (the analysis `qa_term_df` counts)."""
    return [t for t in terms(text) if t not in STOPWORDS]


@lru_cache(maxsize=262144)
def term_id(term: str) -> int:
    """A term's dimension (0-based), stable across processes and versions."""
    digest = hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % DIMENSION


def _literal(weights: dict[int, float]) -> str:
    """pgvector's sparsevec text form (1-based indices, sorted)."""
    body = ",".join(f"{i + 1}:{w:.6g}" for i, w in sorted(weights.items()))
    return f"{{{body}}}/{DIMENSION}"


def row_vector(text: str, table: str) -> str | None:
    """A row's BM25 term-frequency vector (None for a text without content terms)."""
    counts = Counter(analyse(text))
    if not counts:
        return None
    norm = K1 * (1 - B + B * sum(counts.values()) / AVGDL[table])
    weights: dict[int, float] = {}
    for term, tf in counts.items():
        i = term_id(term)
        weights[i] = weights.get(i, 0.0) + tf * (K1 + 1) / (tf + norm)
    if len(weights) > MAX_ROW_TERMS:  # keep the heaviest: the rest could not be indexed at all
        weights = dict(sorted(weights.items(), key=lambda kv: -kv[1])[:MAX_ROW_TERMS])
    return _literal(weights)


def query_terms(text: str) -> list[str]:
    """A question's distinct content terms, in order, at most `MAX_QUERY_TERMS`."""
    return list(dict.fromkeys(analyse(text)))[:MAX_QUERY_TERMS]


def idf(df: int, total: int) -> float:
    """BM25's (always positive) inverse document frequency."""
    return math.log(1 + (max(total, df) - df + 0.5) / (df + 0.5))


def query_vector(words: list[str], df: dict[str, int], total: int) -> str | None:
    """The question's IDF vector: its inner product with a row vector is the row's BM25 score."""
    weights: dict[int, float] = {}
    for word in words:
        i = term_id(word)
        weights[i] = weights.get(i, 0.0) + idf(df.get(word, 0), total)
    return _literal(weights) if weights else None
