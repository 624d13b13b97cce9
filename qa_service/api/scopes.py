"""Which collection a request may use: the principal's scope is checked BEFORE the collection is looked
up, so a caller outside a collection's scope learns nothing of what exists (one 403 for every case),
and only callers whose scope names a collection can be told it does not exist (404).

These run catalog look-ups (SQLite or PostgreSQL): call them from a worker thread (`run_in_threadpool`).
"""

from __future__ import annotations

from collections.abc import Callable

from qa_service.errors import CollectionNotFoundError, NotFoundError
from qa_service.keys.principal import Principal
from qa_service.service import QAService
from qa_service.store.records import Collection


def _public_of(service: QAService) -> Callable[[str], bool | None]:
    def public_of(name: str) -> bool | None:
        try:
            return service.collection(name).public
        except CollectionNotFoundError:
            return None

    return public_of


def askable(principal: Principal, service: QAService, name: str) -> Collection:
    """The collection `name` if `principal` may ask it; ForbiddenError (403) otherwise, whether or not
    it exists; CollectionNotFoundError (404) only for a principal whose scope names it."""
    principal.require_ask(name, _public_of(service))
    return service.collection(name)


def manageable(principal: Principal, service: QAService, name: str) -> Collection:
    """The collection `name` if `principal` may manage its documents (403 otherwise, decided from the
    scope alone; then 404 if it does not exist)."""
    principal.require_manage(name)
    return service.collection(name)


def visible(principal: Principal, collections: list[Collection]) -> list[Collection]:
    """The collections `principal` may ask, of `collections` (what listings show it)."""
    return [c for c in collections if principal.can_ask(c.name, c.public)]


def owning(principal: Principal, service: QAService, collection_id: str, what: str) -> Collection:
    """The collection (by id) a stored conversation belongs to, if `principal` may ask it; otherwise
    NotFoundError saying `what` was not found (a conversation id of another collection is as unknown)."""
    for collection in service.collections():
        if collection.id == collection_id and principal.can_ask(collection.name, collection.public):
            return collection
    raise NotFoundError(what)
