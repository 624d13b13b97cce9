"""Collections: create, rename or make public/private, delete with their documents (admin keys); list and
read the ones a key may ask (any key, or none for public collections).

Renames and deletes also update what refers to the collection (`qa_service.collection_refs`)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from qa_service import collection_refs
from qa_service.api.collection_schemas import CollectionCreate, CollectionInfo, CollectionList, CollectionUpdate
from qa_service.api.deps import AdminAuth, ChatAuth, KeysDep, PrincipalDep, ServiceDep, SharedDep
from qa_service.api.routes.responses import errors
from qa_service.api.scopes import askable, visible
from qa_service.service import QAService
from qa_service.store.collections import validate_name
from qa_service.store.records import Collection

router = APIRouter(tags=["collections"])
# Any string reaches the handler, so that a bad name gets the naming rule (422), not a bare 404.
CollectionPath = Path(..., min_length=1, max_length=200, description="Collection name.")


def collection_info(service: QAService, collection: Collection) -> CollectionInfo:
    documents, sentences, _ = service.store_of(collection.name).counts()
    return CollectionInfo(
        id=collection.id,
        name=collection.name,
        public=collection.public,
        created_at=collection.created_at,
        documents=documents,
        sentences=sentences,
    )


@router.post(
    "/v1/collections",
    dependencies=[AdminAuth],
    response_model=CollectionInfo,
    status_code=201,
    responses=errors(401, 403, 409, 422, 429, 503),
    summary="Create an empty collection (private unless `public`).",
)
async def create_collection(body: CollectionCreate, service: ServiceDep) -> CollectionInfo:
    created = await run_in_threadpool(service.create_collection, body.name, body.public)
    return await run_in_threadpool(collection_info, service, created)


@router.get(
    "/v1/collections",
    response_model=CollectionList,
    responses=errors(401, 403, 429, 503),
    dependencies=[ChatAuth],
    summary="The collections this key may ask (an admin key: all), with their document and sentence counts.",
)
async def list_collections(service: ServiceDep, principal: PrincipalDep) -> CollectionList:
    def listed() -> list[CollectionInfo]:
        return [collection_info(service, c) for c in visible(principal, service.collections())]

    return CollectionList(collections=await run_in_threadpool(listed))


@router.get(
    "/v1/collections/{name}",
    response_model=CollectionInfo,
    responses=errors(401, 403, 404, 422, 429, 503),
    dependencies=[ChatAuth],
    summary="One collection this key may ask.",
)
async def get_collection(service: ServiceDep, principal: PrincipalDep, name: str = CollectionPath) -> CollectionInfo:
    validate_name(name)
    found = await run_in_threadpool(askable, principal, service, name)
    return await run_in_threadpool(collection_info, service, found)


@router.patch(
    "/v1/collections/{name}",
    response_model=CollectionInfo,
    responses=errors(401, 403, 404, 409, 422, 429, 503),
    dependencies=[AdminAuth],
    summary="Rename a collection and/or make it public or private (`default` cannot be renamed).",
)
async def update_collection(
    body: CollectionUpdate, service: ServiceDep, keys: KeysDep, shared: SharedDep, name: str = CollectionPath
) -> CollectionInfo:
    validate_name(name)

    updated = await run_in_threadpool(collection_refs.rename, service, keys, shared, name, body.name, body.public)
    return await run_in_threadpool(collection_info, service, updated)


@router.delete(
    "/v1/collections/{name}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 409, 422, 429, 503),
    dependencies=[AdminAuth],
    summary="Delete a collection with all its documents, conversations and feedback (`default` cannot be deleted).",
)
async def delete_collection(
    service: ServiceDep, keys: KeysDep, shared: SharedDep, name: str = CollectionPath
) -> Response:
    validate_name(name)

    await run_in_threadpool(collection_refs.delete, service, keys, shared, name)
    return Response(status_code=204)
