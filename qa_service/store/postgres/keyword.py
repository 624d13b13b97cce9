"""The keyword searches of the PostgreSQL backend, as SQL.

`bm25_search` is the hot path: the question's BM25 IDF vector against each row's stored `bm25`
sparse vector (store/postgres/bm25.py), scoring only the rows that hold one of the question's rare
terms (MaxScore pruning, exact when its bound holds) or the ranker's few candidates, never every row
that shares a word with the question; the HNSW inner-product index over `bm25` fills in when the
bound does not hold (past a filter pgvector's iterative scan, `hnsw.iterative_scan`, set on every
pooled connection, goes on until k rows pass). `ts_rank_cd_search` is the previous leg, kept as the
reference of bench/pg_lexical.py (QA_PGVECTOR_KEYWORD_RANKING=ts_rank_cd).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from qa_service.store.keywords import keyword_terms
from qa_service.store.postgres import bm25
from qa_service.store.postgres.pool import Postgres

EXACT_RESTRICT = 2000  # a search restricted to at most this many rows scores them exactly
CANDIDATE_BUDGET = 5000  # rows that the selective terms' posting lists may hold together


@dataclass(frozen=True)
class BM25Query:
    """A question as the BM25 leg sees it: its text, content terms and their document frequencies
    (`qa_term_df`, read in the answer's snapshot) over `total` sentences."""

    text: str
    words: list[str]
    df: dict[str, int]
    total: int

    @property
    def vector(self) -> str | None:
        return bm25.query_vector(self.words, self.df, self.total)

    def split(self, budget: int) -> tuple[list[str], float]:
        """The surface words of the selective terms (rarest first, while their posting lists fit
        `budget` rows together; what the tsvector GIN index matches) and the highest score a row
        holding none of them can reach (each other term's IDF times the term-frequency part's
        bound, k1 + 1)."""
        surface: dict[str, list[str]] = {}
        for word in keyword_terms(self.text):
            for term in bm25.analyse(word)[:1]:
                surface.setdefault(term, []).append(word)
        selective: list[str] = []
        rows = 0
        for term in sorted((w for w in dict.fromkeys(self.words) if w in surface), key=lambda w: self.df.get(w, 0)):
            rows += self.df.get(term, 0)
            if rows > budget:
                break
            selective.append(term)
        rest = [w for w in self.words if w not in selective]
        bound = sum(bm25.idf(self.df.get(w, 0), self.total) for w in rest) * (bm25.K1 + 1)
        return [w for term in selective for w in surface[term]], bound


def _rows(db: Postgres, query: sql.Composable, params: tuple[Any, ...]) -> list[tuple[str, float]]:
    return [(r["id"], float(r["score"])) for r in db.rows(query, params)]


def bm25_search(
    db: Postgres, table: sql.Composable, language: sql.Composable, q: BM25Query, k: int, restrict: list[str] | None
) -> list[tuple[str, float]]:
    """(id, BM25 score) of the best `k` rows with a positive score, best first.

    Restricted to a few rows: exactly those, by primary key. Otherwise MaxScore-style: the rows
    holding one of the question's selective (rare) terms, found through the GIN index and scored
    exactly; if the k-th of them scores at least what a row without any selective term could reach,
    that is the exact top k. If not (every term common, or too few matches), the HNSW index over
    `bm25` adds its best rows (approximate: graph search over sparse vectors)."""
    vector = q.vector
    if vector is None or (restrict is not None and not restrict):
        return []
    scored = sql.SQL("SELECT id, -(bm25 <#> %s::sparsevec) AS score FROM {table}").format(table=table)
    if restrict is not None and len(restrict) <= EXACT_RESTRICT:
        query = (
            sql.SQL("SELECT id, score FROM (")
            + scored
            + sql.SQL(" WHERE id = ANY(%s)) s WHERE score > 0 ORDER BY score DESC, id LIMIT %s")
        )
        return _rows(db, query, (vector, restrict, k))
    only = sql.SQL(" AND id = ANY(%s)") if restrict is not None else sql.SQL("")
    allowed: tuple[Any, ...] = (restrict,) if restrict is not None else ()
    words, bound = q.split(CANDIDATE_BUDGET)
    hits: list[tuple[str, float]] = []
    if words:
        query = (
            sql.SQL("SELECT id, score FROM (")
            + scored
            + sql.SQL(" WHERE keywords @@ websearch_to_tsquery({lang}, %s)").format(lang=language)
            + only
            + sql.SQL(") s WHERE score > 0 ORDER BY score DESC, id LIMIT %s")
        )
        hits = _rows(db, query, (vector, " or ".join(words), *allowed, k))
        if bound == 0 or (len(hits) == k and hits[-1][1] >= bound):
            return hits
    where = sql.SQL(" WHERE true") + only
    query = (
        sql.SQL("SELECT id, score FROM (")
        + scored
        + where
        + sql.SQL(" ORDER BY bm25 <#> %s::sparsevec LIMIT %s) hits WHERE score > 0")
    )
    merged = dict(hits)
    merged.update(_rows(db, query, (vector, *allowed, vector, k)))
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def ts_rank_cd_search(
    db: Postgres, table: sql.Composable, language: sql.Composable, text: str, k: int, restrict: list[str] | None
) -> list[tuple[str, float]]:
    """Full-text search for any of the text's words, ranked by ts_rank_cd over the stored `keywords`
    tsvector (GIN): it ranks every matching row."""
    words = keyword_terms(text)
    if not words or (restrict is not None and not restrict):
        return []
    query = sql.SQL(
        "SELECT id, ts_rank_cd(keywords, q) AS score "
        "FROM {table}, websearch_to_tsquery({lang}, %s) AS q WHERE keywords @@ q"
    ).format(lang=language, table=table)
    params: list[Any] = [" or ".join(words)]
    if restrict is not None:
        query += sql.SQL(" AND id = ANY(%s)")
        params.append(restrict)
    query += sql.SQL(" ORDER BY score DESC, id LIMIT %s")
    params.append(k)
    return [(r["id"], float(r["score"])) for r in db.rows(query, params)]
