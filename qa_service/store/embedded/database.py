"""SQLite side of the index: documents, passages, sentences (with embeddings) and term frequencies."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

# 3: collections (a catalog at the index root; schema 2 indexes are upgraded in place)
# 4: keyword search on tantivy, per generation, instead of SQLite FTS5 (upgraded in place on open)
SCHEMA_VERSION = "4"
FTS_SCHEMA_VERSION = "3"
UPGRADABLE_VERSIONS = ("2", "3")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    origin TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    text TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    indexed_at REAL NOT NULL,
    sentence_count INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_origin ON documents(origin);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    passage_index INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_document ON passages(document_id);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    passage_id INTEGER NOT NULL REFERENCES passages(id) ON DELETE CASCADE,
    sentence_index INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL,
    embedding BLOB NOT NULL,
    tokens BLOB NOT NULL DEFAULT x''
);
CREATE INDEX IF NOT EXISTS sentences_document ON sentences(document_id);
CREATE INDEX IF NOT EXISTS sentences_passage ON sentences(passage_id);
CREATE TABLE IF NOT EXISTS term_df (term TEXT PRIMARY KEY, df INTEGER NOT NULL) WITHOUT ROWID;
"""


WAL_LIMIT = 4 * 1024 * 1024  # bytes of WAL kept between writes
# Pages of a new database, by its sentence rows' size. SQLite fills a leaf page until the next row does
# not fit. Rows of about 2 KB (pq48 tokens, float16 vectors) left about 30 % of a million-sentence
# store empty in 4 KiB pages (776,228 pages for 2.4 GB of rows): 16 KiB pages waste about half a row a
# page. Rows of 6 KB (int4) spill into overflow pages, which 4 KiB pages (SQLite's default) pack best
# (the subset's index: 7,120 KiB at 4 KiB, 8,184 at 16 KiB). An existing database keeps its size.
PAGE_SIZE = 4096
COMPACT_ROWS_PAGE_SIZE = 16384


def page_size_for(token_code: str) -> int:
    """The page size for a new database whose sentences will hold `token_code` tokens."""
    return COMPACT_ROWS_PAGE_SIZE if token_code.startswith("pq") else PAGE_SIZE


_BUSY_TIMEOUT_MS = 30_000


class Database:
    """One connection per thread (WAL: readers never block on the writer)."""

    def __init__(self, path: Path, page_size: int = PAGE_SIZE) -> None:
        self.path, self.page_size = path, page_size
        self._local = threading.local()
        self.write_lock = threading.RLock()
        with self.connection() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA page_size={self.page_size}")  # takes effect only while the file is still empty
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")  # a reset WAL shrinks back to this
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        yield conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back on any exception (or by SQLite after a crash)."""
        with self.write_lock, self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def release_wal(self) -> bool:
        """After a large write: copy the WAL into the database and truncate it, so the disk does not
        keep a second copy of what a bulk write wrote (SQLite keeps a WAL file at its largest size).
        Never waits: if a reader still uses the WAL, the next write's reset truncates it to
        `WAL_LIMIT` instead. True when it was truncated."""
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            if wal.stat().st_size <= WAL_LIMIT:
                return False
        except OSError:
            return False
        with self.write_lock, self.connection() as conn:
            if conn.in_transaction:
                return False
            conn.execute("PRAGMA busy_timeout=0")
            try:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            except sqlite3.OperationalError:
                busy = 1
            finally:
                conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        return not busy

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- meta -----------------------------------------------------------------------------------
    def read_meta(self) -> dict[str, str]:
        with self.connection() as conn:
            return {row["key"]: row["value"] for row in conn.execute("SELECT key, value FROM meta")}

    @staticmethod
    def read_value(conn: sqlite3.Connection, key: str) -> str:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return str(row[0])

    @staticmethod
    def write_meta(conn: sqlite3.Connection, values: dict[str, str]) -> None:
        conn.executemany(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            list(values.items()),
        )

    # --- reads ----------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self.connection() as conn:
            return list(conn.execute(sql, params))

    def sentences_by_ids(self, ids: list[int], vectors: bool = True) -> list[sqlite3.Row]:
        """Sentence rows with their source; `vectors` adds the embedding and token blobs."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        blobs = "s.embedding, s.tokens, " if vectors else ""
        return self.query(
            f'SELECT s.id, s.document_id, s.passage_id, s.sentence_index, s.start, s."end", s.text, '
            f"{blobs}d.source FROM sentences s JOIN documents d ON d.id = s.document_id WHERE s.id IN ({marks})",
            ids,
        )

    def embeddings(self, table: Literal["sentences", "passages"], ids: list[int]) -> dict[int, bytes]:
        """The stored vector blob of each of `ids` found in `table`, by id."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.query(f"SELECT id, embedding FROM {table} WHERE id IN ({marks})", ids)
        return {row["id"]: row["embedding"] for row in rows}

    def term_frequencies(self, terms: list[str]) -> dict[str, int]:
        """Sentence frequency of each term."""
        if not terms:
            return {}
        marks = ",".join("?" * len(terms))
        rows = self.query(f"SELECT term, df FROM term_df WHERE term IN ({marks})", terms)
        return {row["term"]: int(row["df"]) for row in rows}

    @staticmethod
    def count_terms(conn: sqlite3.Connection, texts: list[str], delta: int) -> None:
        """Maintain sentence frequencies of content terms (used for IDF-weighted coverage)."""
        from qa_service.lexical import content_terms

        counts: dict[str, int] = {}
        for text in texts:
            for term in content_terms(text):
                counts[term] = counts.get(term, 0) + delta
        conn.executemany(
            "INSERT INTO term_df(term, df) VALUES (?, ?) ON CONFLICT(term) DO UPDATE SET df = df + excluded.df",
            list(counts.items()),
        )
        if delta < 0:
            conn.execute("DELETE FROM term_df WHERE df <= 0")
