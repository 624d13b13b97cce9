"""The generations of an embedded index on disk, and the snapshot of one in memory.

Generation `g` is two FAISS files (`sentences-g.faiss`, `passages-g.faiss`, each with its delta and
tombstones: `qa_service.store.embedded.vectors`) and two tantivy directories (`sentences-g.tantivy`,
`passages-g.tantivy`: `qa_service.store.embedded.lexical`). SQLite's `meta.generation` names the
committed one; the files of any other generation are garbage once no writer holds the write
transaction (`cleanup`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qa_service.errors import IndexMismatchError
from qa_service.store.embedded import lexical
from qa_service.store.embedded.database import FTS_SCHEMA_VERSION, SCHEMA_VERSION, Database
from qa_service.store.embedded.lexical import KeywordIndex
from qa_service.store.embedded.rows import drop_fts, keyword_rows
from qa_service.store.embedded.vectors import VectorIndex
from qa_service.store.failpoints import failpoint

logger = logging.getLogger(__name__)

_GENERATION_FILE = re.compile(r"^(sentences|passages)-(\d+)\.(faiss|tantivy)(\.staging)?")
VECTOR_PARTS_KEY = "vector_parts"  # the committed generation's [delta, tombstones] counts (VectorIndex.parts)


@dataclass(frozen=True)
class Snapshot:
    generation: int
    sentences: VectorIndex
    passages: VectorIndex
    sentence_keywords: KeywordIndex
    passage_keywords: KeywordIndex


def vector_paths(index_dir: Path, generation: int) -> tuple[Path, Path]:
    return (index_dir / f"sentences-{generation}.faiss", index_dir / f"passages-{generation}.faiss")


def keyword_paths(index_dir: Path, generation: int) -> tuple[Path, Path]:
    return (index_dir / f"sentences-{generation}.tantivy", index_dir / f"passages-{generation}.tantivy")


def empty(spec: str, dimension: int, generation: int) -> Snapshot:
    sentences = VectorIndex.create(spec, dimension)
    passages = VectorIndex.create(spec, dimension)
    return Snapshot(generation, sentences, passages, KeywordIndex.empty(), KeywordIndex.empty())


def load(
    db: Database,
    index_dir: Path,
    generation: int,
    spec: str,
    dimension: int,
    held: Snapshot | None,
    rows: Callable[[], tuple[int, int]],
) -> Snapshot:
    """Generation `generation` of `index_dir`, its FAISS bases taken from `held` where the files are
    the same; refused unless it holds exactly `rows()` (sentences, passages: the committed row counts,
    read once the files are loaded)."""
    if generation == 0:
        snapshot = empty(spec, dimension, 0)
    else:
        s_path, p_path = vector_paths(index_dir, generation)
        if not s_path.exists() or not p_path.exists():
            raise IndexMismatchError(
                f"The index in {index_dir} is missing its vector files for generation {generation}; "
                "re-index into an empty directory."
            )
        k_s, k_p = keyword_paths(index_dir, generation)
        parts = json.loads(db.read_meta().get(VECTOR_PARTS_KEY) or "null") or [None, None]
        snapshot = Snapshot(
            generation,
            VectorIndex.load(s_path, spec, held.sentences if held else None, parts[0]),
            VectorIndex.load(p_path, spec, held.passages if held else None, parts[1]),
            KeywordIndex.load(k_s),
            KeywordIndex.load(k_p),
        )
    sentences, passages = rows()
    if {snapshot.sentences.size, snapshot.sentence_keywords.size} != {sentences} or {
        snapshot.passages.size,
        snapshot.passage_keywords.size,
    } != {passages}:
        raise IndexMismatchError(
            f"The index in {index_dir} is inconsistent ({snapshot.sentences.size} vectors for "
            f"{sentences} sentences); re-index into an empty directory."
        )
    return snapshot


def cleanup(db: Database, index_dir: Path) -> None:
    """Remove vector files of every generation but the committed one. Writers save a generation's
    files only inside the write transaction, so under it any other file is garbage: an older
    generation, or one a crashed writer never committed (another process's newer files are safe)."""
    with db.transaction() as conn:
        committed = int(Database.read_value(conn, "generation"))
        for path in index_dir.iterdir():
            match = _GENERATION_FILE.match(path.name)
            if match and (int(match.group(2)) != committed or match.group(4)):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)


def upgrade_keywords(db: Database, index_dir: Path) -> None:
    """Upgrade in place: an index whose keyword search was SQLite FTS5 (schema 3, or one the
    catalog moved on from schema 2) gets the tantivy directories of its committed generation built
    from its rows, and its FTS5 tables dropped (nothing writes them any more, so they would go stale,
    and they are a large part of the file), all before the schema version says 4, in one transaction."""
    with db.transaction() as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or row[0] not in (FTS_SCHEMA_VERSION, SCHEMA_VERSION):
            return  # new, or refused by check_schema_version
        generation = int(Database.read_value(conn, "generation"))
        if generation > 0:
            for path, texts in zip(keyword_paths(index_dir, generation), keyword_rows(conn), strict=True):
                if row[0] != SCHEMA_VERSION or not path.is_dir():
                    logger.info("Building the keyword index %s", path)
                    lexical.build(path, texts)
        failpoint("mid_upgrade")
        drop_fts(conn)
        if row[0] != SCHEMA_VERSION:
            logger.info("Upgraded the index in %s from schema %s to %s", index_dir, row[0], SCHEMA_VERSION)
            Database.write_meta(conn, {"schema_version": SCHEMA_VERSION})


def check_schema_version(found: str | None, where: Path) -> None:
    """IndexMismatchError unless `found` is this version's schema (older ones are upgraded by the
    catalog before the store opens: `qa_service.store.embedded.catalog`)."""
    if found == SCHEMA_VERSION:
        return
    if found is not None and found.isdigit() and int(found) > int(SCHEMA_VERSION):
        raise IndexMismatchError(
            f"The index in {where} has schema {found!r}, written by a newer qa-service; this version reads "
            f"schema {SCHEMA_VERSION!r}. Upgrade qa-service, or re-index into an empty directory."
        )
    raise IndexMismatchError(
        f"The index in {where} has schema {found!r}; this version reads {SCHEMA_VERSION!r}. "
        "Re-index into an empty directory."
    )
