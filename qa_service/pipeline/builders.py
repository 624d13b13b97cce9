"""Plain functions that build the collection catalog (stores) and the Haystack pipelines from settings."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypedDict

from haystack import Pipeline

from qa_service import codebooks
from qa_service.encoders import Encoder, get_encoder
from qa_service.ingest.splitter import SentenceSplitter
from qa_service.pipeline.answer import AnswerBuilder
from qa_service.pipeline.embedders import QueryEmbedder, SentenceEmbedder
from qa_service.pipeline.grounding import GroundingChecker
from qa_service.pipeline.joiners import RowIdJoiner
from qa_service.pipeline.ranker import SentenceRanker
from qa_service.pipeline.retrievers import DenseSentenceRetriever, KeywordSentenceRetriever, PassageSentenceRetriever
from qa_service.quantize import INT8
from qa_service.settings import Settings
from qa_service.store.collections import DEFAULT
from qa_service.store.protocol import CollectionCatalog, SentenceStore

if TYPE_CHECKING:
    from qa_service.generation.generator import CitedAnswerGenerator


class EncoderArgs(TypedDict):
    model: str
    device: str
    backend: str
    cache_dir: str
    threads: int | None


def _encoder_args(settings: Settings) -> EncoderArgs:
    """The encoder the settings describe, as the embedding components take it."""
    return EncoderArgs(
        model=settings.embedding_model,
        device=settings.device,
        backend=settings.encoder_backend,
        cache_dir=str(settings.model_cache_dir),
        threads=settings.encoder_threads,
    )


def encoder_for(settings: Settings) -> Encoder:
    """The shared encoder the settings describe (loaded once per process)."""
    args = _encoder_args(settings)
    return get_encoder(args["model"], args["device"], args["backend"], args["cache_dir"], args["threads"])


def open_catalog(settings: Settings, create: bool = True) -> CollectionCatalog:
    """Open (or create) the collections of `settings.store`; the model is loaded to learn its dimension."""
    codebooks.use_directory(settings.token_codebook_dir)  # before any index that names one of them opens
    encoder = encoder_for(settings)
    if settings.store == "pgvector":
        from haystack.utils import Secret

        from qa_service.store.postgres.catalog import PostgresCatalog

        url = settings.database_url.get_secret_value() if settings.database_url else ""
        # From the environment (the usual case), pipelines serialise with a reference, not the password.
        from_env = os.environ.get("QA_DATABASE_URL") == url
        return PostgresCatalog(
            connection_string=Secret.from_env_var("QA_DATABASE_URL") if from_env else Secret.from_token(url),
            model=settings.embedding_model,
            dimension=encoder.dimension,
            pool_size=settings.database_pool_size,
            ef_search=settings.pgvector_ef_search,
            language=settings.pgvector_language,
            create=create,
            timeout=settings.database_timeout_seconds,
            keyword_ranking=settings.pgvector_keyword_ranking,
            bulk_min_chars=settings.pgvector_bulk_min_chars,
            maintenance_work_mem=settings.pgvector_maintenance_work_mem,
        )
    from qa_service.store.embedded.catalog import EmbeddedCatalog
    from qa_service.store.embedded.database import page_size_for

    return EmbeddedCatalog(
        index_dir=settings.index_dir,
        model=settings.embedding_model,
        dimension=encoder.dimension,
        faiss_index=settings.faiss_index,
        nprobe=settings.faiss_nprobe,
        ef_search=settings.faiss_ef_search,
        passage_ef_search=settings.faiss_passage_ef_search,
        refine=settings.faiss_refine,
        vector_storage=settings.vector_storage,
        page_size=page_size_for(settings.token_code),
        create=create,
    )


def open_store(settings: Settings, create: bool = True) -> SentenceStore:
    """The store of collection `default` (benchmarks and tools that address one store)."""
    return open_catalog(settings, create).store(DEFAULT)


def build_indexing_pipeline(settings: Settings) -> Pipeline:
    """documents -> sentences + passages (with offsets) -> sentence embeddings and token vectors.

    Passages are not embedded: their vector is the mean of their sentences' (see `Indexer`).
    """
    codebooks.use_directory(settings.token_codebook_dir)
    pipeline = Pipeline()
    pipeline.add_component("splitter", SentenceSplitter(passage_max_words=settings.passage_max_words))
    pipeline.add_component(
        "sentence_embedder",
        SentenceEmbedder(
            batch_size=settings.embed_batch_size, token_code=settings.token_code, **_encoder_args(settings)
        ),
    )
    pipeline.connect("splitter.sentences", "sentence_embedder.documents")
    return pipeline


def index_code(settings: Settings, store: SentenceStore) -> str:
    """The code of the store's token vectors; for an empty store, the code indexing will write
    (QA_TOKEN_CODE, or int8 where it cannot store this model's tokens: `codebooks.resolve` decides)."""
    code = store.token_code
    if code:
        return code
    if codebooks.resolve(settings.token_code, settings.embedding_model, store.dimension) is None:
        return INT8
    return settings.token_code


def build_query_pipeline(settings: Settings, store: SentenceStore) -> Pipeline:
    """query -> (dense sentences | BM25 sentences | passage sentences) -> join -> rank -> ground -> answer."""
    k = settings.sentence_candidates
    pipeline = Pipeline()
    pipeline.add_component(
        "query_embedder", QueryEmbedder(batch_window_ms=settings.embed_batch_window_ms, **_encoder_args(settings))
    )
    # The ranker reads the candidates' rows (with their vectors) itself: the retrievers pass row ids.
    pipeline.add_component("dense", DenseSentenceRetriever(store, top_k=k, ids_only=True))
    pipeline.add_component("keyword", KeywordSentenceRetriever(store, top_k=k, ids_only=True))
    pipeline.add_component(
        "passages", PassageSentenceRetriever(store, top_k=settings.passage_candidates, ids_only=True)
    )
    pipeline.add_component("joiner", RowIdJoiner())
    pipeline.add_component(
        "ranker",
        SentenceRanker(store, weights=settings.weights.model_dump()),
    )
    pipeline.add_component("grounding", GroundingChecker(store, check=settings.max_citations))
    pipeline.add_component(
        "answer_builder",
        AnswerBuilder(
            max_citations=settings.max_citations,
            citation_margin=settings.citation_margin,
            abstention=settings.abstention_for(index_code(settings, store)).model_dump(),
        ),
    )
    pipeline.connect("query_embedder.vector", "dense.query_vector")
    pipeline.connect("query_embedder.vector", "passages.query_vector")
    pipeline.connect("query_embedder.vector", "ranker.query_vector")
    pipeline.connect("query_embedder.tokens", "ranker.query_tokens")
    for name in ("dense", "keyword", "passages"):
        pipeline.connect(f"{name}.row_ids", "joiner.row_ids")
    pipeline.connect("joiner.row_ids", "ranker.row_ids")
    pipeline.connect("ranker.documents", "grounding.documents")
    pipeline.connect("grounding.documents", "answer_builder.documents")
    return pipeline


def query_embedder(pipeline: Pipeline) -> QueryEmbedder:
    """The query pipeline's embedder (the service reserves questions with it before an answer slot)."""
    embedder = pipeline.get_component("query_embedder")
    assert isinstance(embedder, QueryEmbedder)
    return embedder


def build_generator(settings: Settings) -> CitedAnswerGenerator | None:
    """The generative answerer when an LLM server is configured (QA_LLM_BASE_URL), else None."""
    if not settings.llm_base_url:
        return None
    from qa_service.generation.generator import CitedAnswerGenerator

    return CitedAnswerGenerator(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        prompts_dir=str(settings.prompts_dir),
        sources=settings.llm_sources,
        max_sentences=settings.llm_max_sentences,
        max_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout_seconds,
    )
