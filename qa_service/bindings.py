"""Each collection's store with the indexer and query pipeline bound to it, built on first use."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from qa_service.indexer import Indexer
from qa_service.pipeline.builders import build_query_pipeline, query_embedder
from qa_service.pipeline.embedders import QueryEmbedder
from qa_service.pipeline.runner import GraphRunner
from qa_service.settings import Settings
from qa_service.store.collections import DEFAULT
from qa_service.store.protocol import CollectionCatalog, SentenceStore
from qa_service.store.records import Collection


@dataclass(frozen=True)
class Bound:
    """One collection's store, indexer and query pipeline (the encoder behind them is shared), and
    the pipeline's embedder, with which an answer reserves its question before it takes a slot."""

    collection: Collection
    store: SentenceStore
    indexer: Indexer
    query: GraphRunner
    embedder: QueryEmbedder


class Bindings:
    """Cached by collection id: a renamed collection keeps its pipeline, a re-created name gets a new
    one; every lookup reads the catalog, so a collection deleted elsewhere is not found."""

    def __init__(self, settings: Settings, catalog: CollectionCatalog, indexing: GraphRunner) -> None:
        self.settings, self.catalog, self.indexing = settings, catalog, indexing
        self._bound: dict[str, Bound] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Bound:
        if name == DEFAULT and DEFAULT in self._bound:  # never renamed nor deleted: no catalog read
            return self._bound[DEFAULT]
        found = self.catalog.get(name)
        bound = self._bound.get(found.id)
        if bound is None:
            with self._lock:
                bound = self._bound.get(found.id)
                if bound is None:
                    store = self.catalog.store_by_id(found.id)
                    indexer = Indexer(store, self.indexing, self.settings.index_batch_chars, found.id)
                    query = GraphRunner(build_query_pipeline(self.settings, store))
                    query.warm_up()  # the shared encoder: loaded once per process
                    embedder = query_embedder(query.pipeline)
                    bound = self._bound[found.id] = Bound(found, store, indexer, query, embedder)
        return bound

    def forget(self, collection_id: str) -> None:
        with self._lock:
            self._bound.pop(collection_id, None)

    def clear(self) -> None:
        with self._lock:
            self._bound = {k: v for k, v in self._bound.items() if k == DEFAULT}
