"""Document management (admin keys, and manager keys in their collections): upload, list, read, delete,
in one collection (`collection`, default `default`). Queries keep answering meanwhile."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from qa_service.api.deps import ManagerAuth, ManagerDep, ServiceDep
from qa_service.api.routes.responses import errors
from qa_service.api.schemas import DocumentDetail, DocumentInfo, DocumentList, DocumentText
from qa_service.api.scopes import manageable
from qa_service.errors import InvalidInputError, QAServiceError
from qa_service.store.collections import DEFAULT, NAME_RULE, validate_name
from qa_service.store.records import StoredDocument

router = APIRouter(tags=["documents"], dependencies=[ManagerAuth])
DocumentId = Path(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
# Any string reaches the handler, so that a bad name gets the naming rule (422).
CollectionQuery = Query(DEFAULT, max_length=200, description=f"The collection ({NAME_RULE}).")

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".txt .md .html .pdf .docx .pptx .xlsx .csv",
                        },
                        "collection": {"type": "string", "default": DEFAULT, "description": "Target collection."},
                    },
                }
            },
            "application/json": {"schema": DocumentText.model_json_schema()},
        },
    }
}


class UnsupportedMediaTypeError(QAServiceError):
    code = "unsupported_media_type"
    http_status = 415


def _info(doc: StoredDocument, collection: str) -> DocumentInfo:
    return DocumentInfo(
        id=doc.id,
        collection=collection,
        source=doc.source,
        sentences=doc.sentence_count,
        content_hash=doc.content_hash,
        indexed_at=doc.indexed_at,
    )


@router.post(
    "/v1/documents",
    response_model=DocumentInfo,
    status_code=201,
    openapi_extra=_UPLOAD_BODY,
    responses=errors(401, 403, 404, 413, 415, 422, 429, 503),
    summary="Upload a file (multipart `file`, optional field `collection`) or JSON {source, text, collection?}; "
    "indexed before the reply.",
)
async def upload(request: Request, service: ServiceDep, principal: ManagerDep) -> DocumentInfo:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=5)
        except (HTTPException, MultiPartException) as exc:
            raise InvalidInputError(f"Malformed multipart body: {getattr(exc, 'detail', exc)}") from exc
        file = form.get("file")
        if not isinstance(file, UploadFile) or not file.filename:
            raise InvalidInputError("Send the document as the multipart field 'file' with a file name.")
        collection = form.get("collection", DEFAULT)
        if not isinstance(collection, str):
            raise InvalidInputError("The multipart field 'collection' must be a plain text field.")
        await run_in_threadpool(manageable, principal, service, validate_name(collection))
        data = await file.read()
        doc = await run_in_threadpool(service.add_document, file.filename, None, data, collection)
    elif content_type.startswith("application/json"):
        try:
            body = DocumentText.model_validate_json(await request.body())
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            raise InvalidInputError(where) from exc
        collection = validate_name(body.collection)
        await run_in_threadpool(manageable, principal, service, collection)
        doc = await run_in_threadpool(service.add_document, body.source, body.text, None, collection)
    else:
        raise UnsupportedMediaTypeError("Send multipart/form-data with a 'file' field, or JSON {source, text}.")
    return _info(doc, collection)


@router.get(
    "/v1/documents",
    response_model=DocumentList,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="The documents of a collection.",
)
async def list_documents(service: ServiceDep, principal: ManagerDep, collection: str = CollectionQuery) -> DocumentList:
    await run_in_threadpool(manageable, principal, service, validate_name(collection))
    docs = await run_in_threadpool(service.documents, collection)
    return DocumentList(documents=[_info(d, collection) for d in docs])


@router.get(
    "/v1/documents/{document_id}",
    response_model=DocumentDetail,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="One document with its full text (citation offsets index into it).",
)
async def get_document(
    service: ServiceDep, principal: ManagerDep, document_id: str = DocumentId, collection: str = CollectionQuery
) -> DocumentDetail:
    await run_in_threadpool(manageable, principal, service, validate_name(collection))
    doc = await run_in_threadpool(service.document, document_id, collection)
    text = await run_in_threadpool(service.document_text, document_id, collection)
    return DocumentDetail(**_info(doc, collection).model_dump(), text=text)


@router.delete(
    "/v1/documents/{document_id}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="Remove a document from its collection.",
)
async def delete_document(
    service: ServiceDep, principal: ManagerDep, document_id: str = DocumentId, collection: str = CollectionQuery
) -> Response:
    await run_in_threadpool(manageable, principal, service, validate_name(collection))
    await run_in_threadpool(service.delete_document, document_id, collection)
    return Response(status_code=204)
