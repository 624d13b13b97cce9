"""The keyword searches of the PostgreSQL backend, as SQL.

`bm25_search` is the hot path: the question's BM25 IDF vector against each row's stored `bm25`
sparse vector (store/postgres/bm25.py). Unrestricted, or restricted to many rows, it walks the HNSW
inner-product index (`ORDER BY bm25 <#> q LIMIT k`; past a filter pgvector's iterative scan,
`hnsw.iterative_scan`, set on every pooled connection, goes on until k rows pass); restricted to a
few rows (the ranker's candidates) it scores exactly those by primary key. Neither ranks every row
that shares a word with the question. `ts_rank_cd_search` is the previous leg, kept as the
reference of bench/pg_lexical.py (QA_PGVECTOR_KEYWORD_RANKING=ts_rank_cd).
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from qa_service.store.keywords import keyword_terms
from qa_service.store.postgres.pool import Postgres

EXACT_RESTRICT = 2000  # a search restricted to at most this many rows scores them exactly


def bm25_search(
    db: Postgres, table: sql.Composable, vector: str | None, k: int, restrict: list[str] | None
) -> list[tuple[str, float]]:
    """(id, BM25 score) of the best `k` rows with a positive score, best first."""
    if vector is None or (restrict is not None and not restrict):
        return []
    params: tuple[Any, ...]
    if restrict is not None and len(restrict) <= EXACT_RESTRICT:
        query = sql.SQL(
            "SELECT id, score FROM (SELECT id, -(bm25 <#> %s::sparsevec) AS score FROM {table} "
            "WHERE id = ANY(%s)) scored WHERE score > 0 ORDER BY score DESC, id LIMIT %s"
        ).format(table=table)
        params = (vector, restrict, k)
    else:
        where = sql.SQL(" WHERE id = ANY(%s)") if restrict is not None else sql.SQL("")
        query = (
            sql.SQL("SELECT id, score FROM (SELECT id, -(bm25 <#> %s::sparsevec) AS score FROM {table}").format(
                table=table
            )
            + where
            + sql.SQL(" ORDER BY bm25 <#> %s::sparsevec LIMIT %s) hits WHERE score > 0 ORDER BY score DESC, id")
        )
        params = (vector, *((restrict,) if restrict is not None else ()), vector, k)
    return [(r["id"], float(r["score"])) for r in db.rows(query, params)]


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
