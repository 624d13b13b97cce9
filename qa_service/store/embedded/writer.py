"""One write of the embedded store: rows, the next generation's keyword and vector files, the pointer.

`write_generation` runs inside the store's SQLite write transaction. It writes the next generation's
tantivy directories and FAISS files beside the current ones, then the meta row that points at them: the
transaction's commit is the moment the generation exists, so a crash before it leaves the previous
generation whole (its files are then strays, removed on open).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa_service.store import token_codes
from qa_service.store.embedded import generations, lexical, vectors
from qa_service.store.embedded.database import Database
from qa_service.store.embedded.generations import VECTOR_PARTS_KEY, Snapshot
from qa_service.store.embedded.rows import delete_rows, insert_documents, keyword_texts
from qa_service.store.embedded.vectors import VectorIndex, fsync_dir
from qa_service.store.failpoints import failpoint
from qa_service.store.manifest import corpus_hash, updated_corpus_hash
from qa_service.store.records import SourceDocument
from qa_service.store.sentences import stack, unblob_many

CORPUS_HASH_KEY = "corpus_hash"  # the committed documents' `corpus_hash`, updated by each write


@dataclass(frozen=True)
class Layout:
    """What a write needs to know of its store."""

    index_dir: Path
    faiss_index: str
    dimension: int
    vector_storage: str  # float32 or float16: the width of the vectors SQLite keeps


def committed_corpus_hash(conn: sqlite3.Connection) -> str:
    """The committed corpus hash (kept up to date by every write; computed once for older indexes)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (CORPUS_HASH_KEY,)).fetchone()
    if row is not None:
        return str(row[0])
    return corpus_hash([r[0] for r in conn.execute("SELECT content_hash FROM documents")])


def write_generation(
    conn: sqlite3.Connection,
    layout: Layout,
    current: Snapshot,
    upserts: list[SourceDocument],
    deletes: list[str],
    sentence_deletes: list[int],
    rebuild: bool,
    search_params: Callable[[VectorIndex, VectorIndex], None],
) -> tuple[Snapshot, list[str]]:
    """Replaces/inserts `upserts` and deletes `deletes` (document ids) and `sentence_deletes` (row ids)
    on top of `current`, the committed generation; returns the next one (committed with `conn`'s
    transaction) and the deleted document ids that existed."""
    sentences, passages = current.sentences.copy(), current.passages.copy()
    gone_s, gone_p = list(sentence_deletes), []
    targets = list(dict.fromkeys([*deletes, *(d.id for d in upserts)]))
    for doc_id in targets:
        gone_s += [r[0] for r in conn.execute("SELECT id FROM sentences WHERE document_id = ?", (doc_id,))]
        gone_p += [r[0] for r in conn.execute("SELECT id FROM passages WHERE document_id = ?", (doc_id,))]
    gone_s = list(dict.fromkeys(gone_s))
    hashes = committed_corpus_hash(conn)
    delete_rows(conn, gone_s, gone_p)
    deleted, removed_hashes = [], []
    for d in targets:  # each delete returns the content hash the corpus hash loses
        gone = conn.execute("DELETE FROM documents WHERE id = ? RETURNING content_hash", (d,)).fetchall()
        removed_hashes += [r[0] for r in gone]
        if gone and d in deletes:
            deleted.append(d)
    failpoint("mid_write")
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (token_codes.META_KEY,)).fetchone()
    code = token_codes.settle(
        row[0] if row else None,
        lambda: conn.execute("SELECT 1 FROM sentences LIMIT 1").fetchone() is not None,
        token_codes.batch_code(upserts, layout.dimension),
    )
    new_s, new_p = insert_documents(conn, upserts, layout.vector_storage)
    generation = current.generation + 1
    texts_s, texts_p = keyword_texts(upserts)
    keywords = []
    for kind, gone, new, texts in (("sentences", gone_s, new_s, texts_s), ("passages", gone_p, new_p, texts_p)):
        base = layout.index_dir / f"{kind}-{current.generation}.tantivy" if current.generation > 0 else None
        target = layout.index_dir / f"{kind}-{generation}.tantivy"
        keywords.append(lexical.write_generation(base, target, gone, zip(new[0].tolist(), texts, strict=True)))
    failpoint("mid_keywords")
    sentences.remove(np.array(gone_s, dtype=np.int64))
    passages.remove(np.array(gone_p, dtype=np.int64))
    if rebuild or _needs_compaction(sentences) or _needs_compaction(passages):
        sentences, passages = rebuilt(conn, layout)
    else:
        sentences.add(*new_s)
        passages.add(*new_p)
    for index, path in zip((sentences, passages), generations.vector_paths(layout.index_dir, generation), strict=True):
        index.save(path)
    search_params(sentences, passages)
    fsync_dir(layout.index_dir)
    failpoint("before_commit")
    Database.write_meta(
        conn,
        {
            "generation": str(generation),
            "updated_at": str(time.time()),
            "faiss_index": layout.faiss_index,
            VECTOR_PARTS_KEY: json.dumps([sentences.parts, passages.parts]),
            CORPUS_HASH_KEY: updated_corpus_hash(hashes, [d.content_hash for d in upserts], removed_hashes),
        }
        | ({token_codes.META_KEY: code} if code else {}),
    )
    return Snapshot(generation, sentences, passages, keywords[0], keywords[1]), deleted


def rebuilt(conn: sqlite3.Connection, layout: Layout) -> tuple[VectorIndex, VectorIndex]:
    """Both vector indexes built afresh (as `layout.faiss_index`) from the vectors SQLite keeps."""
    built = []
    for table in ("sentences", "passages"):
        rows = list(conn.execute(f"SELECT id, embedding FROM {table} ORDER BY id"))
        ids = [r[0] for r in rows]
        built.append(
            vectors.build(
                layout.faiss_index,
                layout.dimension,
                *stack(ids, [unblob_many([r[1] for r in rows], layout.dimension)] if rows else []),
            )
        )
    return built[0], built[1]


def _needs_compaction(index: VectorIndex) -> bool:
    return len(index.tombstones) > max(1000, index.index.ntotal // 4)
