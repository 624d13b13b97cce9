"""Bulk loads into an empty collection: search indexes built once, after the rows.

Row by row, every inserted sentence updates two HNSW graphs (its vector and its BM25 sparse vector)
and a full-text GIN index, and every passage one more HNSW graph. Measured at 20,000 sentences with
the index set of the time (two more GIN indexes and a passage BM25 graph): 121 sentences/s row by row,
against 1,200 for the rows alone and about 25 s to build every index afterwards (README, "Capacity").
So a large upload into an empty collection drops those indexes first, commits its batches as usual,
and builds the indexes in one transaction at the end.

What a crash leaves: the committed batches, without their search indexes. Answers stay right (the
planner scans instead) but slow, and every process opening the collection re-creates the missing
indexes (`schema.create_schema`). A process that opens the collection while another bulk-loads it does
the same: correct, but the rest of that load then maintains the indexes row by row.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from psycopg import Connection, sql

from qa_service.store.postgres.schema import PASSAGES, SENTENCES

logger = logging.getLogger(__name__)

# The indexes a row insert maintains at a cost worth deferring; B-tree indexes (ids, document and
# passage look-ups) stay, since the load itself reads them.
_DEFERRED = re.compile(r"\bUSING (hnsw|gin)\b", re.IGNORECASE)
_CREATE = re.compile(r"^CREATE INDEX (?!IF NOT EXISTS)", re.IGNORECASE)


def search_indexes(conn: Connection[Any], schema: str) -> list[tuple[str, str]]:
    """(name, definition) of the collection's HNSW and GIN indexes on sentences and passages."""
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = ANY(%s) ORDER BY indexname",
        (schema, [SENTENCES, PASSAGES]),
    ).fetchall()
    return [(name, definition) for name, definition in rows if _DEFERRED.search(definition)]


def drop_search_indexes(conn: Connection[Any], schema: str) -> list[str]:
    """Drop them (in the caller's transaction) and return the statements that re-create them."""
    found = search_indexes(conn, schema)
    for name, _ in found:
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {index}").format(index=sql.Identifier(schema, name)))
    return [_CREATE.sub("CREATE INDEX IF NOT EXISTS ", definition) for _, definition in found]


def build_search_indexes(conn: Connection[Any], statements: list[str], maintenance_work_mem: str) -> None:
    """Build the dropped indexes, in the caller's transaction (all of them or none)."""
    conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (maintenance_work_mem,))
    for statement in statements:
        logger.info("Building %s", statement)
        conn.execute(statement)  # definitions read from pg_indexes
