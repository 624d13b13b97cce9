"""The embeddable widget, its demo page, and the public citation-context route it uses."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Path, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qa_service.api.deps import ChatAuth, PrincipalDep, ServiceDep
from qa_service.api.routes.responses import errors
from qa_service.api.schemas import CitationContext
from qa_service.api.scopes import askable
from qa_service.store.collections import NAME_PATTERN

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
def demo_page(collection: str = Query("default", pattern=NAME_PATTERN)) -> HTMLResponse:
    """The demo page; `?collection=NAME` makes its widget ask that collection (`data-collection`)."""
    page = (_WEB / "demo.html").read_text(encoding="utf-8")
    if collection != "default":  # the pattern admits no quote or markup
        page = page.replace('<script src="/widget.js"', f'<script src="/widget.js" data-collection="{collection}"', 1)
    return HTMLResponse(page)


@router.get(
    "/v1/documents/{document_id}/context",
    response_model=CitationContext,
    dependencies=[ChatAuth],
    tags=["chat"],
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="The text around a cited sentence (only indexed sentence spans are served).",
)
async def citation_context(
    service: ServiceDep,
    principal: PrincipalDep,
    document_id: str = Path(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"),
    start: int = Query(..., ge=0, le=2**40),
    end: int = Query(..., ge=0, le=2**40),
    collection: str = Query("default", min_length=1, max_length=64, pattern=NAME_PATTERN),
) -> CitationContext:
    await run_in_threadpool(askable, principal, service, collection)
    source, before, sentence, after = await run_in_threadpool(
        lambda: service.citation_context(document_id, start, end, collection=collection)
    )
    return CitationContext(document_id=document_id, source=source, before=before, sentence=sentence, after=after)
