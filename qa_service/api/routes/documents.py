"""Document management (admin key): upload, list, read, delete. Queries keep answering meanwhile."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from qa_service.api.deps import AdminAuth, ServiceDep
from qa_service.api.routes.responses import errors
from qa_service.api.schemas import DocumentDetail, DocumentInfo, DocumentList, DocumentText
from qa_service.errors import InvalidInputError, QAServiceError
from qa_service.store.records import StoredDocument

router = APIRouter(tags=["documents"], dependencies=[AdminAuth])
DocumentId = Path(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")

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
                        }
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


def _info(doc: StoredDocument) -> DocumentInfo:
    return DocumentInfo(
        id=doc.id,
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
    responses=errors(401, 403, 413, 415, 422, 429, 503),
    summary="Upload a file (multipart `file`) or JSON {source, text}; indexed before the reply.",
)
async def upload(request: Request, service: ServiceDep) -> DocumentInfo:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=5)
        except (HTTPException, MultiPartException) as exc:
            raise InvalidInputError(f"Malformed multipart body: {getattr(exc, 'detail', exc)}") from exc
        file = form.get("file")
        if not isinstance(file, UploadFile) or not file.filename:
            raise InvalidInputError("Send the document as the multipart field 'file' with a file name.")
        data = await file.read()
        doc = await run_in_threadpool(service.add_document, file.filename, None, data)
    elif content_type.startswith("application/json"):
        try:
            body = DocumentText.model_validate_json(await request.body())
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            raise InvalidInputError(where) from exc
        doc = await run_in_threadpool(service.add_document, body.source, body.text)
    else:
        raise UnsupportedMediaTypeError("Send multipart/form-data with a 'file' field, or JSON {source, text}.")
    return _info(doc)


@router.get(
    "/v1/documents", response_model=DocumentList, responses=errors(401, 403, 429, 503), summary="Indexed documents."
)
async def list_documents(service: ServiceDep) -> DocumentList:
    docs = await run_in_threadpool(service.documents)
    return DocumentList(documents=[_info(d) for d in docs])


@router.get(
    "/v1/documents/{document_id}",
    response_model=DocumentDetail,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="One document with its full text (citation offsets index into it).",
)
async def get_document(service: ServiceDep, document_id: str = DocumentId) -> DocumentDetail:
    doc = await run_in_threadpool(service.document, document_id)
    text = await run_in_threadpool(service.document_text, document_id)
    return DocumentDetail(**_info(doc).model_dump(), text=text)


@router.delete(
    "/v1/documents/{document_id}",
    status_code=204,
    response_class=Response,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="Remove a document from the index.",
)
async def delete_document(service: ServiceDep, document_id: str = DocumentId) -> Response:
    await run_in_threadpool(service.delete_document, document_id)
    return Response(status_code=204)
