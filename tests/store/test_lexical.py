"""The embedded store's keyword leg (tantivy, one index per generation): analysis as SQLite FTS5's
`porter unicode61` did it, `restrict`, deletes and replaces, the snapshot pin, crash safety and the
in-place upgrade of an index whose keyword search was FTS5."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qa_service.store.embedded.database import SCHEMA_VERSION
from qa_service.store.embedded.document_store import FaissSQLiteDocumentStore
from qa_service.store.embedded.lexical import query_terms
from tests.store.test_document_store import open_store, source

CORPUS = {
    "a": ["Otters are holding hands while they sleep.", "The river runs quickly past the café."],
    "b": ["Runners ran the marathon in organized groups.", "Connections between stations were improved."],
    "c": ["A naïve approach rarely works.", "Cats purr when they are happy."],
}
# Questions whose words the two stemmers (porter, and tantivy's Snowball English) treat alike.
QUESTIONS = [
    "Who is holding hands?",
    "How do rivers run?",
    "Which runners ran?",
    "What connection was improved?",
    "cafe naive cats",
    "organization of groups",
    "happy sleeping otters",
]


def _store(path: Path) -> FaissSQLiteDocumentStore:
    store = open_store(path)
    store.apply([source(k, v) for k, v in CORPUS.items()], [])
    return store


def _texts(store: FaissSQLiteDocumentStore, hits: list[tuple[int, float]]) -> set[str]:
    return {r["text"] for r in store.sentence_rows([i for i, _ in hits], vectors=False)}


def _fts5_matches(store: FaissSQLiteDocumentStore, question: str) -> set[str]:
    """What the schema-3 FTS5 table (porter unicode61, quoted OR of the content words) matched."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61')")
    db.executemany("INSERT INTO t(text) VALUES (?)", [(s,) for v in CORPUS.values() for s in v])
    from qa_service.store.keywords import keyword_terms

    match = " OR ".join(f'"{w}"' for w in keyword_terms(question))
    return {r[0] for r in db.execute("SELECT text FROM t WHERE t MATCH ?", (match,))}


def test_analysis_matches_fts5_porter_unicode61(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for question in QUESTIONS:
        assert _texts(store, store.keyword_sentences(question, 10)) == _fts5_matches(store, question), question
    assert query_terms("The running of the Cafés") == ["run", "cafe"]  # stopwords out, stemmed, folded
    assert store.keyword_sentences("the of and what is", 10) == []  # stopwords only: no query


def test_query_text_is_never_parsed_as_tantivy_syntax(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.keyword_sentences("text:otters", 5)  # a field prefix is just two words
    assert store.keyword_sentences("id:1 OR *", 5) == []
    assert store.keyword_sentences('otter~2 AND "hands', 5)
    assert store.keyword_sentences("[1 TO 9] {a} ^ +- !", 5) == []


def test_restrict_admits_only_the_given_rows(tmp_path: Path) -> None:
    store = _store(tmp_path)
    everything = store.keyword_sentences("runs ran runners", 10)
    assert len(everything) == 2
    allowed = [everything[1][0]]
    assert [i for i, _ in store.keyword_sentences("runs ran runners", 10, restrict=allowed)] == allowed
    assert store.keyword_sentences("runs ran runners", 10, restrict=[]) == []
    scores = dict(everything)
    restricted = store.keyword_sentences("runs ran runners", 10, restrict=allowed)
    assert restricted[0][1] == pytest.approx(scores[allowed[0]])  # the filter adds nothing to the score
    passages = store.keyword_passages("marathon", 5)
    assert len(passages) == 1 and store.keyword_passages("marathon", 5, restrict=[passages[0][0] + 99]) == []
    assert store.keyword_passages("b.txt", 5)  # passages are searched under their source name too


def test_deletes_and_replaces_are_visible_in_the_next_search(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert store.keyword_sentences("otters", 5)
    store.apply([source("a", ["Badgers dig tunnels."])], [])  # re-upload of `a`
    assert store.keyword_sentences("otters", 5) == [] and store.keyword_passages("otters", 5) == []
    assert _texts(store, store.keyword_sentences("badgers", 5)) == {"Badgers dig tunnels."}
    store.apply([], ["a"])
    assert store.keyword_sentences("badgers", 5) == []
    store.delete_documents(["c:s1"])  # one sentence
    assert store.keyword_sentences("cats purr", 5) == [] and store.keyword_sentences("naive", 5)
    reopened = open_store(tmp_path)
    assert reopened.keyword_sentences("badgers cats", 5) == []
    assert {p.name for p in tmp_path.glob("*.tantivy")} == {
        f"sentences-{reopened.generation}.tantivy",
        f"passages-{reopened.generation}.tantivy",
    }


def test_a_snapshot_searches_the_keywords_of_its_generation(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.snapshot():
        before = store.keyword_sentences("otters", 5)
        thread = threading.Thread(target=lambda: store.apply([source("a", ["Badgers dig."])], []))
        thread.start()
        thread.join()
        assert store.keyword_sentences("otters", 5) == before and store.keyword_sentences("badgers", 5) == []
        assert _texts(store, before) == {"Otters are holding hands while they sleep."}
    assert store.keyword_sentences("otters", 5) == [] and store.keyword_sentences("badgers", 5)


def test_a_reader_in_another_process_picks_up_the_new_keywords(tmp_path: Path) -> None:
    reader, writer = _store(tmp_path), open_store(tmp_path)
    writer.apply([source("d", ["Penguins swim well."])], [])
    with reader.snapshot():
        assert _texts(reader, reader.keyword_sentences("penguins", 5)) == {"Penguins swim well."}


_WRITE = """
import sys
from pathlib import Path
from tests.store.test_document_store import open_store, source
open_store(Path(sys.argv[1])).apply([source("a", ["Badgers dig tunnels."]), source("d", ["Penguins swim."])], [])
"""


@pytest.mark.parametrize("failpoint", ["mid_write", "mid_keywords", "before_commit", "after_commit"])
def test_a_crash_leaves_keywords_and_rows_of_one_generation(tmp_path: Path, failpoint: str) -> None:
    _store(tmp_path).db.close()
    env = {**os.environ, "QA_FAILPOINT": failpoint}
    proc = subprocess.run([sys.executable, "-c", _WRITE, str(tmp_path)], env=env, cwd=Path.cwd(), check=False)
    assert proc.returncode == -signal.SIGKILL
    store = open_store(tmp_path)  # loads: keyword document counts equal the committed rows'
    committed = failpoint == "after_commit"
    assert store.generation == (2 if committed else 1)
    assert bool(store.keyword_sentences("penguins badgers", 5)) == committed
    assert bool(store.keyword_sentences("otters", 5)) != committed
    hits = store.keyword_sentences("otters badgers penguins runners cats naive connections river", 50)
    assert len(store.sentence_rows([i for i, _ in hits])) == len(hits)  # every hit names a stored row
    assert len(hits) == store.count_documents()  # and every stored row that matches is hit
    assert {p.name for p in tmp_path.iterdir() if ".tantivy" in p.name} == {
        f"sentences-{store.generation}.tantivy",
        f"passages-{store.generation}.tantivy",
    }
    store.apply([source("e", ["Lions roar."])], [])  # and the next write builds on it
    assert store.keyword_sentences("lions", 5)


def _make_schema_3(path: Path) -> None:
    """Turn an index into what schema 3 wrote: FTS5 tables filled from the rows, no tantivy."""
    for directory in path.glob("*.tantivy"):
        for entry in directory.iterdir():
            entry.unlink()
        directory.rmdir()
    db = sqlite3.connect(path / "store.sqlite")
    db.executescript(
        "CREATE VIRTUAL TABLE sentences_fts USING fts5(text, tokenize='porter unicode61');"
        "CREATE VIRTUAL TABLE passages_fts USING fts5(text, tokenize='porter unicode61');"
        "INSERT INTO sentences_fts(rowid, text) SELECT id, text FROM sentences;"
        "INSERT INTO passages_fts(rowid, text) SELECT p.id, d.source || char(10) || "
        'substr(d.text, p.start + 1, p."end" - p.start) FROM passages p JOIN documents d ON d.id = p.document_id;'
        "UPDATE meta SET value = '3' WHERE key = 'schema_version';"
    )
    db.commit()
    db.close()


def test_an_fts5_index_is_upgraded_in_place(tmp_path: Path) -> None:
    store = _store(tmp_path)
    expected = {q: (store.keyword_sentences(q, 10), store.keyword_passages(q, 10)) for q in QUESTIONS}
    generation = store.generation
    store.db.close()
    _make_schema_3(tmp_path)

    upgraded = open_store(tmp_path)
    assert upgraded.manifest().schema_version == SCHEMA_VERSION == "4"
    assert upgraded.generation == generation  # nothing else changed
    for question, (sentences, passages) in expected.items():
        assert upgraded.keyword_sentences(question, 10) == sentences
        assert upgraded.keyword_passages(question, 10) == passages
    tables = {r[0] for r in upgraded.db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert not {"sentences_fts", "passages_fts"} & tables  # dropped: nothing writes them any more
    upgraded.apply([], ["a"])
    assert upgraded.keyword_sentences("otters", 5) == []


def test_an_upgrade_killed_midway_is_redone_on_the_next_open(tmp_path: Path) -> None:
    _store(tmp_path).db.close()
    _make_schema_3(tmp_path)
    script = "import sys; from pathlib import Path; from tests.store.test_document_store import open_store; "
    script += "open_store(Path(sys.argv[1]))"
    env = {**os.environ, "QA_FAILPOINT": "mid_upgrade"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, cwd=Path.cwd(), check=False)
    assert proc.returncode == -signal.SIGKILL
    db = sqlite3.connect(tmp_path / "store.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "3"
    db.close()
    store = open_store(tmp_path)
    assert store.manifest().schema_version == "4" and store.keyword_sentences("otters", 5)
    assert not list(tmp_path.glob("*.staging"))
