"""The embeddable widget, its demo page, and the public citation-context route it uses."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qa_service.api.deps import ChatAuth, ServiceDep
from qa_service.api.routes.responses import errors
from qa_service.api.schemas import CitationContext
from qa_service.store.collections import DEFAULT, validate_name

router = APIRouter()
_WEB = resources.files("qa_service") / "web"


@router.get("/widget.js", include_in_schema=False)
def widget_js() -> Response:
    return Response(
        (_WEB / "widget.js").read_bytes(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
def demo_page() -> HTMLResponse:
    return HTMLResponse((_WEB / "demo.html").read_text(encoding="utf-8"))


@router.get(
    "/v1/documents/{document_id}/context",
    response_model=CitationContext,
    dependencies=[ChatAuth],
    tags=["chat"],
    responses=errors(401, 404, 422, 429, 503),
    summary="The text around a cited sentence (only indexed sentence spans are served).",
)
async def citation_context(
    service: ServiceDep,
    document_id: str = Path(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"),
    start: int = Query(..., ge=0, le=2**40),
    end: int = Query(..., ge=0, le=2**40),
    collection: str = Query(DEFAULT, max_length=200, description="The collection of the cited document."),
) -> CitationContext:
    validate_name(collection)
    source, before, sentence, after = await run_in_threadpool(
        service.citation_context, document_id, start, end, 400, collection
    )
    return CitationContext(document_id=document_id, source=source, before=before, sentence=sentence, after=after)
