"""The PostgreSQL keyword leg: BM25 as sparse vectors under an HNSW inner-product index.

Ranking (a rarer term outranks a common one; a shorter row outranks a longer one with the same
matches), filters (`restrict`, scored exactly or through the index), collections (each searches only
its own schema), IDF read at query time, and the in-place upgrade of a pg-2 database (no `bm25`
column) to pg-3, for `public` and a collection schema, on a real PostgreSQL (tests/postgres_server.py).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from qa_service.indexer import TextSource
from qa_service.service import QAService
from qa_service.settings import Settings
from qa_service.store.postgres import bm25
from qa_service.store.postgres import keyword as pg_keyword
from qa_service.store.postgres.pool import Postgres

COMMON = [f"The falcon story number {i} is about a common falcon sighting." for i in range(6)]
RARE = "A single quetzal sighting happened near the river."


def _settings(tmp_path: Path, url: str, ranking: str = "bm25") -> Settings:
    return Settings(
        index_dir=tmp_path / "index",
        embedding_model="hash:64",
        store="pgvector",
        database_url=url,
        pgvector_keyword_ranking=ranking,  # type: ignore[arg-type]
    )


def _source(name: str, text: str) -> TextSource:
    return TextSource(source=name, text=text, origin=f"test:{name}")


def _texts(service: QAService, hits: list[tuple[str, float]], collection: str = "default") -> list[str]:
    rows = {r["id"]: r["text"] for r in service.store_of(collection).sentence_rows([i for i, _ in hits], False)}
    return [rows[i] for i, _ in hits]


def make_pg2(url: str, schema: str = "public") -> None:
    """A pg-2 collection from a pg-3 one: no `bm25` column or index, no BM25 meta keys."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("qa_sentences", "qa_passages"):
            conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN bm25").format(sql.Identifier(schema, table)))
        meta = sql.Identifier(schema, "qa_meta")
        conn.execute(sql.SQL("DELETE FROM {} WHERE key LIKE 'bm25_%%'").format(meta))
        conn.execute(sql.SQL("UPDATE {} SET value = 'pg-2' WHERE key = 'schema_version'").format(meta))


@pytest.fixture
def service(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    svc = QAService(_settings(tmp_path, database_url))
    yield svc
    svc.close()


@pytest.fixture(params=["maxscore", "hnsw"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of the top-k search: rare terms' rows (GIN) with the bound, or the HNSW index alone."""
    if request.param == "hnsw":
        monkeypatch.setattr(pg_keyword, "CANDIDATE_BUDGET", -1)  # no term is selective
    return str(request.param)


def test_a_rarer_term_outranks_a_common_one(service: QAService, path: str) -> None:
    service.index_texts([_source(f"f{i}.txt", t) for i, t in enumerate([*COMMON, RARE])])
    hits = service.store.keyword_sentences("falcon or quetzal sighting", 10)
    assert _texts(service, hits)[0] == RARE
    assert len(hits) == 7  # every row sharing a term, none that shares none
    assert all(score > 0 for _, score in hits)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


def test_a_shorter_sentence_outranks_a_longer_one_with_the_same_match(service: QAService, path: str) -> None:
    short = "Ocelots hunt alone."
    long = "Ocelots hunt in forests, grasslands, mangrove swamps and marshes across many countries of the south."
    service.index_texts([_source("a.txt", long), _source("b.txt", short)])
    hits = service.store.keyword_sentences("ocelots", 10)
    assert _texts(service, hits) == [short, long]
    assert hits[0][1] > hits[1][1]


def test_scores_are_bm25_with_the_idf_of_the_current_corpus(service: QAService) -> None:
    service.index_texts([_source("q.txt", RARE)])
    (key, before), *_ = service.store.keyword_sentences("quetzal", 1)
    service.index_texts([_source(f"more{i}.txt", f"Another quetzal flew by on day {i}.") for i in range(5)])
    after = dict(service.store.keyword_sentences("quetzal", 10))[key]
    assert after < before  # the term got commoner: the same stored row scores less, nothing rewritten
    total = service.store.sentence_count
    df = service.store.term_frequencies(["quetzal"])["quetzal"]
    tf_part = (bm25.K1 + 1) / (1 + bm25.K1 * (1 - bm25.B + bm25.B * len(bm25.analyse(RARE)) / 12.0))
    assert after == pytest.approx(bm25.idf(df, total) * tf_part, rel=1e-4)


@pytest.mark.parametrize("exact_limit", [pg_keyword.EXACT_RESTRICT, 0])  # scored by key / through the index
def test_restrict_is_honoured(service: QAService, monkeypatch: pytest.MonkeyPatch, exact_limit: int, path: str) -> None:
    monkeypatch.setattr(pg_keyword, "EXACT_RESTRICT", exact_limit)
    service.index_texts([_source(f"f{i}.txt", t) for i, t in enumerate([*COMMON, RARE])])
    everything = service.store.keyword_sentences("falcon quetzal", 10)
    allowed = [i for i, _ in everything[3:5]]
    hits = service.store.keyword_sentences("falcon quetzal", 10, restrict=allowed)
    assert sorted(i for i, _ in hits) == sorted(allowed)
    assert service.store.keyword_sentences("falcon quetzal", 10, restrict=[]) == []


def test_a_filtered_keyword_retrieval_returns_only_allowed_rows(service: QAService) -> None:
    from qa_service.pipeline.retrievers import KeywordSentenceRetriever

    service.index_texts([_source(f"f{i}.txt", t) for i, t in enumerate([*COMMON, RARE])])
    retriever = KeywordSentenceRetriever(service.store, top_k=10)
    filters = {"field": "meta.source", "operator": "==", "value": "f6.txt"}
    docs = retriever.run(query="falcon quetzal", filters=filters)["documents"]
    assert [d.content for d in docs] == [RARE]


def test_passages_are_searched_too(service: QAService) -> None:
    service.index_texts([_source("q.txt", RARE), _source("f.txt", COMMON[0])])
    hits = service.store.keyword_passages("quetzal", 5)
    (quetzal,) = [d.id for d in service.documents() if d.source == "q.txt"]
    assert [i for i, _ in hits] == [f"{quetzal}:p0"]


def test_each_collection_searches_only_its_own_rows(service: QAService, path: str) -> None:
    service.create_collection("birds")
    service.index_texts([_source("q.txt", RARE)], collection="birds")
    service.index_texts([_source("f.txt", COMMON[0])])
    assert service.store_of("birds").keyword_sentences("quetzal falcon", 5)
    assert _texts(service, service.store_of("birds").keyword_sentences("quetzal falcon", 5), "birds") == [RARE]
    assert _texts(service, service.store.keyword_sentences("quetzal falcon", 5)) == [COMMON[0]]


def test_ts_rank_cd_stays_available_as_the_reference(tmp_path: Path, database_url: str) -> None:
    svc = QAService(_settings(tmp_path, database_url, "ts_rank_cd"))
    svc.index_texts([_source(f"f{i}.txt", t) for i, t in enumerate([*COMMON, RARE])])
    assert RARE in _texts(svc, svc.store.keyword_sentences("quetzal", 5))
    svc.close()


def test_a_pg2_database_and_its_collections_are_upgraded_in_place(tmp_path: Path, database_url: str) -> None:
    settings = _settings(tmp_path, database_url)
    svc = QAService(settings)
    svc.create_collection("birds")
    svc.index_texts([_source(f"f{i}.txt", t) for i, t in enumerate([*COMMON, RARE])])
    svc.index_texts([_source("q.txt", RARE)], collection="birds")
    question = "Where was the quetzal sighting?"
    keyword = {c: svc.store_of(c).keyword_sentences(question, 10) for c in ("default", "birds")}
    answer = svc.ask(question).model_dump_json()
    schema = svc.store_of("birds").schema
    svc.close()
    make_pg2(database_url)
    make_pg2(database_url, schema)

    upgraded = QAService(settings, create_index=False)
    assert upgraded.store.manifest().schema_version == "pg-3"
    assert upgraded.ask(question).model_dump_json() == answer
    for collection, hits in keyword.items():
        store = upgraded.store_of(collection)
        again = store.keyword_sentences(question, 10)
        assert [i for i, _ in again] == [i for i, _ in hits]
        assert [s for _, s in again] == pytest.approx([s for _, s in hits])
        assert store.manifest().schema_version == "pg-3"
    with psycopg.connect(database_url, autocommit=True) as conn:
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%%_bm25'")}
    assert indexes == {"qa_sentences_bm25"}  # passages are keyword-scored by id only
    upgraded.index_texts([_source("more.txt", "A quetzal nests in tall trees.")], collection="birds")
    assert len(upgraded.store_of("birds").keyword_sentences("quetzal", 10)) == 2
    upgraded.close()


def test_answers_never_rank_with_ts_rank_cd(service: QAService, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("ts_rank_cd in the hot path")

    monkeypatch.setattr(pg_keyword, "ts_rank_cd_search", refuse)
    service.index_texts([_source(f"f{i}.txt", t) for i, t in enumerate([*COMMON, RARE])])
    assert service.ask("Where was the quetzal sighting?").model_dump_json()


def test_the_top_k_query_can_walk_the_hnsw_index(service: QAService, database_url: str) -> None:
    service.index_texts([_source(f"f{i}.txt", t) for i, t in enumerate([*COMMON, RARE])])
    words = bm25.query_terms("quetzal falcon")
    vector = bm25.query_vector(words, service.store.term_frequencies(words), service.store.sentence_count)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")  # a 7-row table is scanned otherwise
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT id FROM public.qa_sentences ORDER BY bm25 <#> %s::sparsevec LIMIT 10", (vector,)
            )
        )
    assert "qa_sentences_bm25" in plan


def test_an_index_made_before_the_full_text_indexes_were_trimmed_is_trimmed_when_opened(
    tmp_path: Path, database_url: str
) -> None:
    svc = QAService(_settings(tmp_path, database_url))
    svc.index_texts([_source(f"f{i}.txt", t) for i, t in enumerate([*COMMON, RARE])])
    answer = svc.ask("Where was the quetzal sighting?").model_dump_json()
    svc.close()
    with psycopg.connect(database_url, autocommit=True) as conn:  # what the previous version had
        conn.execute("DROP INDEX qa_sentences_keyword")
        conn.execute("DROP INDEX qa_passages_keyword")
        conn.execute("CREATE INDEX qa_sentences_keyword ON qa_sentences USING GIN (to_tsvector('english', content))")
        conn.execute("CREATE INDEX qa_sentences_keywords ON qa_sentences USING GIN (keywords)")
        conn.execute("CREATE INDEX qa_passages_keyword ON qa_passages USING GIN (to_tsvector('english', content))")
        conn.execute("CREATE INDEX qa_passages_keywords ON qa_passages USING GIN (keywords)")
        conn.execute("CREATE INDEX qa_passages_bm25 ON qa_passages USING hnsw (bm25 sparsevec_ip_ops)")
    Postgres.close_shared(database_url)
    reopened = QAService(_settings(tmp_path, database_url), create_index=False)
    with psycopg.connect(database_url, autocommit=True) as conn:
        found = dict(
            conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('qa_sentences', 'qa_passages') "
                "AND indexdef ~ 'USING (gin|hnsw)'"
            ).fetchall()
        )
    assert {name: d.split(" USING ", 1)[1] for name, d in found.items()} == {
        "qa_sentences_hnsw": "hnsw (embedding vector_cosine_ops)",
        "qa_sentences_bm25": "hnsw (bm25 sparsevec_ip_ops)",
        "qa_sentences_keyword": "gin (keywords)",  # the earlier qa_sentences_keywords, renamed
        "qa_passages_hnsw": "hnsw (embedding vector_cosine_ops)",
    }
    assert reopened.ask("Where was the quetzal sighting?").model_dump_json() == answer
    assert RARE in _texts(reopened, reopened.store.keyword_sentences("quetzal", 5))
    reopened.close()
