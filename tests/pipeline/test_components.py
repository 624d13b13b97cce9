import pytest
from haystack import Document, Pipeline

from qa_service.lexical import content_terms, coverages, expected_answer_type, matches_answer_type
from qa_service.pipeline.answer import ABSTAIN_MESSAGE, AnswerBuilder, support_probability
from qa_service.pipeline.builders import build_indexing_pipeline, build_query_pipeline
from qa_service.service import QAService, TextSource
from qa_service.settings import AbstentionModel, Settings


def ranked(score: float, evidence: dict[str, float], text: str = "S.", k: int = 0) -> Document:
    return Document(
        id=f"d:s{k}",
        content=text,
        score=score,
        meta={"document_id": "d", "source": "d.txt", "start": 0, "end": len(text), "evidence": evidence},
    )


STRONG = {"late_interaction": 0.8, "coverage": 1.0, "dense_titled": 0.7}
WEAK = {"late_interaction": 0.3, "coverage": 0.0, "dense_titled": 0.1}


def test_lexical_features() -> None:
    assert content_terms("How many troops withdrew?") == {"many", "troop", "withdrew"}
    assert coverages(
        frozenset({"troop", "kherson"}), [frozenset({"troop"})], lambda t: 2.0 if t == "kherson" else 1.0
    ) == [1 / 3]
    assert expected_answer_type("In what year did it open?") == "date"
    assert expected_answer_type("How many troops?") == "number"
    assert expected_answer_type("Who led them?") == "person"
    assert matches_answer_type("number", "How many?", "They moved 20,000 troops.")
    assert not matches_answer_type("date", "When?", "No time here.")
    assert matches_answer_type("person", "Who met Rollo?", "Rollo met Charles.")


def test_coverages_weigh_each_question_term_once_and_score_each_sentence_alone() -> None:
    question = frozenset({"troop", "kherson", "withdrew"})
    sentences = [frozenset({"troop"}), frozenset(), frozenset({"kherson", "withdrew", "city"}), question]
    calls: list[str] = []

    def idf(term: str) -> float:
        calls.append(term)
        return {"troop": 1.0, "kherson": 3.0, "withdrew": 0.5}[term]

    got = coverages(question, sentences, idf)
    assert sorted(calls) == sorted(question)  # once a term, not once a term and sentence
    assert got == [coverages(question, [s], idf)[0] for s in sentences]  # no sentence sways another
    assert got == pytest.approx([1 / 4.5, 0.0, 3.5 / 4.5, 1.0])
    assert coverages(question, sentences, lambda term: 0.0) == [0.0] * 4  # no weight: no coverage


def test_answer_builder_abstains_below_threshold_and_cites_close_sentences() -> None:
    builder = AnswerBuilder(max_citations=3, citation_margin=1.0)
    strong, weak = support_probability(STRONG, builder.abstention), support_probability(WEAK, builder.abstention)
    assert strong > 2 * builder.abstention.threshold and weak < 0.6 * builder.abstention.threshold
    # A name or number of the question that the document never mentions counts against the answer:
    # the evidence of "How many troops withdrew from Kyiv?" against the Kherson sentence.
    kyiv = {"late_interaction": 0.70, "coverage": 0.15, "dense_titled": 0.69}
    assert support_probability(kyiv, builder.abstention) > builder.abstention.threshold
    assert support_probability({**kyiv, "ungrounded": 1.0}, builder.abstention) < builder.abstention.threshold
    out = builder.run([ranked(2.0, WEAK)])["answer"]
    assert out.abstained and out.answer == ABSTAIN_MESSAGE and out.citations == []
    docs = [
        ranked(3.0, STRONG, "First.", 0),
        ranked(2.5, STRONG, "Second.", 1),
        ranked(2.4, WEAK, "Weak.", 2),
        ranked(0.5, STRONG, "Far.", 3),
    ]
    answer = builder.run(docs)["answer"]
    assert answer.answer == "First. [1] Second. [2]"
    assert [c.text for c in answer.citations] == ["First.", "Second."]
    assert builder.run([])["answer"].abstained


def test_answer_builder_roundtrip() -> None:
    builder = AnswerBuilder(max_citations=2, abstention=AbstentionModel(threshold=0.7).model_dump())
    clone = AnswerBuilder.from_dict(builder.to_dict())
    assert clone.max_citations == 2 and clone.abstention.threshold == 0.7


def test_ranker_prefers_the_sentence_that_answers(fake_settings: Settings) -> None:
    # int8 tokens: the hashing encoder's three candidates differ by 0.005-0.014 in late interaction, which
    # the ranker z-scores over the candidates; int4's error on an exact word match (about 0.01) is as large
    # as those gaps. With the real model int4 ranks as int8 does (README, "Token codes": subset and B).
    service = QAService(fake_settings.model_copy(update={"token_code": "int8"}))
    service.index_texts(
        [TextSource("bridge.txt", "The bridge is painted red. The bridge opened in 1932. Tourists love the bridge.")]
    )
    detailed = service.ask_detailed("When did the bridge open?")
    assert detailed.ranked[0].content == "The bridge opened in 1932."
    evidence = detailed.ranked[0].meta["evidence"]
    assert evidence["answer_type"] == 1.0 and evidence["coverage"] == 1.0
    assert set(evidence) >= {"dense_sentence", "dense_titled", "dense_passage", "bm25_sentence", "late_interaction"}


def test_pipelines_serialize_and_load(fake_settings: Settings) -> None:
    service = QAService(fake_settings)
    query = build_query_pipeline(fake_settings, service.store)
    restored = Pipeline.loads(query.dumps())
    assert set(restored.to_dict()["components"]) == set(query.to_dict()["components"])
    indexing = Pipeline.loads(build_indexing_pipeline(fake_settings).dumps())
    assert "splitter" in indexing.to_dict()["components"]


def test_sentence_embedder_keeps_only_the_sentences_own_tokens() -> None:
    import numpy as np

    from qa_service.encoders import get_encoder
    from qa_service.pipeline.embedders import SentenceEmbedder
    from qa_service.quantize import token_unblob

    embedder = SentenceEmbedder(model="hash:32")
    docs = [
        Document(content="Troops left the city quickly.", meta={"title": "Kherson Retreat News"}),
        Document(content="No title here.", meta={}),
    ]
    out = embedder.run(docs)
    titled, untitled = (token_unblob(t, 32) for t in out["tokens"])
    assert titled.shape == (5, 32)  # "Kherson Retreat News:" tokens dropped, five sentence words left
    assert untitled.shape == (3, 32)
    encoder = get_encoder("hash:32")
    expected = encoder.embed_tokens(["Troops left the city quickly."])[0][0]
    assert np.allclose((titled * expected).sum(axis=1), 1.0, atol=0.01)  # the same words, in order
    # the pooled vector (dense retrieval) is the titled text's
    titled_vector = encoder.embed(["Kherson Retreat News: Troops left the city quickly."])[0]
    assert np.allclose(out["embeddings"][0], titled_vector, atol=1e-6)


def test_passage_vector_is_the_normalised_mean_of_its_sentences() -> None:
    import numpy as np

    from qa_service.indexer import passage_vectors

    vectors = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    out = passage_vectors(vectors, [0, 0, 1], 2)
    assert np.allclose(out, [[2**-0.5, 2**-0.5], [1, 0]])


def test_each_token_code_gets_the_abstention_model_fitted_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """An index in a PQ code is answered with the model fitted on that code; QA_ABSTENTION__* still
    wins field by field; int8 (and a code with no fitted model) keeps the defaults."""
    from qa_service import settings as settings_module

    fitted = {"bias": -2.5, "late_interaction": 3.5, "coverage": -0.1, "dense_titled": 0.7, "ungrounded": -1.2}
    monkeypatch.setitem(settings_module.ABSTENTION_BY_CODE, "pq96", {**fitted, "threshold": 0.3})
    plain = Settings()
    assert plain.abstention_for("int8") == AbstentionModel()
    assert plain.abstention_for("pq32:0123abcd") == AbstentionModel()  # no model fitted for pq32
    assert plain.abstention_for("pq48:0123abcd") == AbstentionModel(**settings_module.ABSTENTION_BY_CODE["pq48"])
    chosen = plain.abstention_for("pq96:0123abcd")
    assert chosen == AbstentionModel(**fitted, threshold=0.3)
    monkeypatch.setenv("QA_ABSTENTION__THRESHOLD", "0.45")
    assert Settings().abstention_for("pq96") == AbstentionModel(**fitted, threshold=0.45)
    assert Settings().abstention_for("int8") == AbstentionModel(threshold=0.45)


def test_an_empty_index_is_answered_with_the_model_of_the_code_it_will_hold(tmp_path: object) -> None:
    """Before anything is indexed, the pipeline takes the code indexing will write: QA_TOKEN_CODE, or
    int8 where no codebook ships for the model (the hashing encoder); int4 needs none."""
    from pathlib import Path

    from qa_service.pipeline.builders import index_code, open_store

    real = "sentence-transformers/all-MiniLM-L6-v2"
    cases = (
        ("hash:64", "pq96", "int8"),
        ("hash:64", "int8", "int8"),
        (real, "pq96", "pq96"),
        ("hash:64", "int4", "int4"),
    )
    for model, code, expected in cases:
        settings = Settings(
            index_dir=Path(str(tmp_path)) / f"{model[:4]}{code}", embedding_model=model, token_code=code
        )
        assert index_code(settings, open_store(settings)) == expected


def test_dense_evidence_is_the_exact_late_interaction_and_pooled_cosine() -> None:
    """Per sentence: titled cosine, the cosine of its tokens' normalised sum, and late interaction
    (mean over question tokens of the best sentence token), checked against a loop over sentences;
    one sentence is stored without tokens (its titled vector stands in as its only token)."""
    import numpy as np

    from qa_service.pipeline.ranker import SentenceRanker
    from qa_service.quantize import INT4_CODEC, token_unblob
    from qa_service.store.sentences import blob, unblob

    rng = np.random.default_rng(4)

    def unit(x: np.ndarray) -> np.ndarray:
        return np.asarray(x / np.linalg.norm(x, axis=-1, keepdims=True), dtype=np.float32)

    q, question = unit(rng.standard_normal(32)), unit(rng.standard_normal((5, 32)))
    rows, expected = [], []
    for n in (7, 1, 0, 12):
        titled = blob(unit(rng.standard_normal(32)), "float16")
        stored = INT4_CODEC.encode(unit(rng.standard_normal((n, 32)))) if n else b""
        rows.append({"embedding": titled, "tokens": stored})
        own = token_unblob(stored, 32) if n else unblob(titled, 32)[None]
        expected.append((unblob(titled, 32) @ q, unit(own.sum(axis=0)) @ q, (question @ own.T).max(axis=1).mean()))
    got = SentenceRanker._dense_evidence(rows, q, question)
    assert np.allclose(np.array(got).T, np.array(expected), atol=1e-5)


def test_retrievers_can_pass_row_ids_alone(fake_settings: Settings) -> None:
    """`ids_only` (the service's pipeline): the same hits and scores, without reading the rows."""
    from qa_service.pipeline.builders import encoder_for
    from qa_service.pipeline.retrievers import (
        DenseSentenceRetriever,
        KeywordSentenceRetriever,
        PassageSentenceRetriever,
    )

    service = QAService(fake_settings)
    service.index_texts(
        [TextSource("bridge.txt", "The bridge is painted red. The bridge opened in 1932. Tourists love the bridge.")]
    )
    vector = encoder_for(fake_settings).embed(["When did the bridge open?"])[0]
    store = service.store
    for kind, args in (
        (DenseSentenceRetriever, {"query_vector": vector}),
        (KeywordSentenceRetriever, {"query": "bridge opened"}),
        (PassageSentenceRetriever, {"query_vector": vector}),
    ):
        full, light = kind(store, 3), kind(store, 3, ids_only=True)  # type: ignore[abstract]
        rich, bare = full.run(**args), light.run(**args)
        assert set(rich) == {"documents"} and set(bare) == {"row_ids"}  # one output each, as declared
        assert set(full.__haystack_output__._sockets_dict) == {"documents"}  # type: ignore[attr-defined]
        assert set(light.__haystack_output__._sockets_dict) == {"row_ids"}  # type: ignore[attr-defined]
        assert rich["documents"] and [d.meta["row_id"] for d in rich["documents"]] == bare["row_ids"]
        assert all(d.content for d in rich["documents"])
        assert kind.from_dict(light.to_dict()).ids_only is True


def test_row_id_joiner_keeps_each_id_once_in_first_seen_order() -> None:
    from qa_service.pipeline.joiners import RowIdJoiner

    assert RowIdJoiner().run(row_ids=[[5, 3], [], [3, 9, 5], [1]]) == {"row_ids": [5, 3, 9, 1]}
    assert RowIdJoiner().run(row_ids=[]) == {"row_ids": []}


def test_ranker_ranks_row_ids_as_it_ranks_the_documents_that_carry_them(fake_settings: Settings) -> None:
    """The service's pipeline hands the ranker bare row ids; a pipeline of whole documents still works."""
    from qa_service.pipeline.builders import encoder_for
    from qa_service.pipeline.ranker import SentenceRanker

    service = QAService(fake_settings)
    service.index_texts(
        [TextSource("bridge.txt", "The bridge is painted red. The bridge opened in 1932. Tourists love the bridge.")]
    )
    question = "When did the bridge open?"
    vector = encoder_for(fake_settings).embed([question])[0]
    tokens, _ = encoder_for(fake_settings).embed_tokens([question])[0]
    store = service.store
    ids = [r["id"] for r in store.sentence_rows(store.sentences_of_passages([0, 1, 2, 3]), vectors=False)]
    assert len(ids) == 3
    ranker = SentenceRanker(store)
    by_ids = ranker.run(question, vector, tokens, row_ids=ids + ids[:1])["documents"]
    documents = [Document(id=f"row:{i}", meta={"row_id": i}) for i in reversed(ids)]
    by_documents = ranker.run(question, vector, tokens, documents=documents)["documents"]
    assert [(d.content, d.score) for d in by_ids] == [(d.content, d.score) for d in by_documents]
    assert len(by_ids) == 3 and any("1932" in (d.content or "") for d in by_ids)
    assert ranker.run(question, vector, tokens)["documents"] == []
