"""The keyword leg of the embedded store: tantivy (BM25, block-max WAND top-k), one index per generation.

Layout: beside `sentences-G.faiss` and `passages-G.faiss`, generation G has two tantivy directories,
`sentences-G.tantivy/` and `passages-G.tantivy/`, whose documents are (row id, text) of the SQLite rows
of that generation. A writer builds generation G+1 *inside* its SQLite write transaction and *before* it
commits the generation pointer: it hard-links the immutable segment files of generation G into a new
directory (`meta.json` and `.managed.json` are copied: tantivy replaces them by rename), opens a writer
there, deletes the gone row ids, adds the new rows, commits, waits for merges and fsyncs. Generation G's
directory is never written, so:

- a crash at any point leaves generation G whole: the pointer still names G, and the directories of the
  uncommitted G+1 are garbage that the next open removes (like its FAISS files);
- keyword hits can never name a row that the committed SQLite generation lacks, nor miss one it has: both
  were written from the same rows in the same transaction (an open checks the document counts);
- a reader pinned to G (`snapshot()`) searches G's own `Searcher`, opened once per generation and kept in
  that generation's in-memory snapshot; removing an old directory does not disturb a searcher that still
  has its files open (POSIX unlink), and a reader never reloads a searcher to a newer state.

Analysis matches the SQLite FTS5 `porter unicode61` tables it replaces: split on non-alphanumerics,
lowercase, fold diacritics to ASCII, English (Snowball, "porter2") stemming. A query is the OR of the
question's content words (`keyword_terms`: stopwords dropped), each analysed with the same analyzer and
turned into term queries; user text is never parsed as tantivy query syntax.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import tantivy

from qa_service.errors import IndexMismatchError
from qa_service.store.embedded.vectors import fsync_dir
from qa_service.store.keywords import keyword_terms

TOKENIZER = "qa_porter"
_ID, _TEXT = "id", "text"
_WRITER_HEAP = 64_000_000  # bytes; one indexing thread (the 2-core target machine embeds on the other)
_COPIED = {"meta.json", ".managed.json"}  # rewritten by rename: copied so the old generation keeps its own


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field(_ID, stored=False, indexed=True, fast=True)
    builder.add_text_field(_TEXT, stored=False, tokenizer_name=TOKENIZER, index_option="freq")
    return builder.build()


SCHEMA = _schema()


def _analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(40))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )


ANALYZER = _analyzer()


def query_terms(text: str) -> list[str]:
    """The indexed terms a keyword query for `text` looks for (any of them), distinct, in order."""
    found: dict[str, None] = {}
    for word in keyword_terms(text):
        for token in ANALYZER.analyze(word):
            found[token] = None
    return list(found)


def _open_index(path: Path) -> tantivy.Index:
    try:
        index = tantivy.Index.open(str(path))
    except (ValueError, OSError) as exc:
        raise IndexMismatchError(f"The keyword index {path} cannot be opened: {exc}") from exc
    index.register_tokenizer(TOKENIZER, ANALYZER)
    return index


class KeywordIndex:
    """One generation's keyword index over sentences or passages (read only)."""

    def __init__(self, searcher: tantivy.Searcher | None) -> None:
        self._searcher = searcher

    @classmethod
    def empty(cls) -> KeywordIndex:
        return cls(None)

    @classmethod
    def load(cls, path: Path) -> KeywordIndex:
        if not path.is_dir():
            raise IndexMismatchError(f"The keyword index {path} is missing.")
        index = _open_index(path)
        index.config_reader("Manual")
        index.reload()
        return cls(index.searcher())

    @property
    def size(self) -> int:
        return 0 if self._searcher is None else int(self._searcher.num_docs)

    def search(self, text: str, limit: int, restrict: list[int] | None = None) -> list[tuple[int, float]]:
        """BM25 top-`limit` (row id, score), higher = better; `restrict`: only these row ids."""
        if self._searcher is None or limit <= 0 or (restrict is not None and not restrict):
            return []
        terms = query_terms(text)
        if not terms:
            return []
        query = tantivy.Query.boolean_query(
            [(tantivy.Occur.Should, tantivy.Query.term_query(SCHEMA, _TEXT, t, "freq")) for t in terms]
        )
        if restrict is not None:
            allowed = tantivy.Query.const_score_query(tantivy.Query.term_set_query(SCHEMA, _ID, restrict), 0.0)
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, allowed)])
        hits = self._searcher.search(query, limit, count=False).hits
        ids = self._searcher.fast_field_values(_ID, [address for _, address in hits])
        return [(int(i), float(score)) for (score, _), i in zip(hits, ids, strict=True) if i is not None]


def write_generation(
    base: Path | None, target: Path, deletes: Iterable[int], adds: Iterable[tuple[int, str]]
) -> KeywordIndex:
    """Build `target` as `base` (None: empty) less `deletes` plus `adds`; `base` is only read. Returns
    the new generation's searcher. The caller commits the generation pointer after this returns."""
    if target.exists():
        shutil.rmtree(target)  # a crashed writer's uncommitted attempt at this generation
    target.mkdir(parents=True)
    if base is not None:
        for entry in base.iterdir():
            if entry.name.endswith(".lock"):
                continue
            if entry.name in _COPIED:
                shutil.copyfile(entry, target / entry.name)
            else:
                os.link(entry, target / entry.name)
        index = _open_index(target)
    else:
        index = tantivy.Index(SCHEMA, path=str(target), reuse=False)
        index.register_tokenizer(TOKENIZER, ANALYZER)
    writer = index.writer(_WRITER_HEAP, 1)
    try:
        for row_id in deletes:
            writer.delete_documents_by_term(_ID, int(row_id))
        for row_id, text in adds:
            writer.add_document(tantivy.Document(**{_ID: int(row_id), _TEXT: text}))
        writer.commit()
    except BaseException:
        writer.rollback()
        raise
    finally:
        writer.wait_merging_threads()  # merges done and their meta written before the generation commits
    fsync_tree(target)
    index.config_reader("Manual")
    index.reload()
    return KeywordIndex(index.searcher())


def fsync_tree(path: Path) -> None:
    """fsync every file of a directory and the directory itself (hard links included)."""
    for entry in path.iterdir():
        if entry.is_file():
            fd = os.open(entry, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build(target: Path, rows: Iterable[tuple[int, str]]) -> None:
    """Build `target` from scratch (an index upgraded from FTS5): written beside it, then renamed in,
    so a crash midway leaves no half-built directory under the final name."""
    staging = target.with_name(target.name + STAGING_SUFFIX)
    write_generation(None, staging, [], rows)
    if target.exists():
        shutil.rmtree(target)
    os.rename(staging, target)
    fsync_dir(target.parent)


STAGING_SUFFIX = ".staging"
