"""The admin page (`/admin`, its script and style) and its JSON endpoints under `/v1/admin/`.

The page is static and strict: `script-src 'self'`, no inline script or style, nothing from other
origins. It signs in with the admin key (kept in the tab's sessionStorage) and uses these endpoints
and the document endpoints (`/v1/documents`), all behind the admin key.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from qa_service import admin_reports
from qa_service.admin_reports import MAX_DAYS, Period
from qa_service.api.admin_schemas import (
    AnalyticsOut,
    GapList,
    GapOut,
    QuestionList,
    QuestionOut,
    ReviewList,
    ReviewOut,
)
from qa_service.api.deps import AdminAuth, QuestionsDep, ServiceDep
from qa_service.api.routes.responses import errors
from qa_service.errors import IndexNotFoundError
from qa_service.question_log import QuestionLog

_WEB = resources.files("qa_service") / "web"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

page_router = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[AdminAuth])


@page_router.get("/admin", response_class=HTMLResponse)
def admin_page() -> HTMLResponse:
    return HTMLResponse((_WEB / "admin.html").read_text(encoding="utf-8"), headers=PAGE_HEADERS)


@page_router.get("/admin.js")
def admin_js() -> Response:
    body = (_WEB / "admin.js").read_bytes()
    return Response(body, media_type="text/javascript; charset=utf-8", headers=PAGE_HEADERS)


@page_router.get("/admin.css")
def admin_css() -> Response:
    return Response((_WEB / "admin.css").read_bytes(), media_type="text/css; charset=utf-8", headers=PAGE_HEADERS)


def _period(
    days: int = Query(30, ge=1, le=MAX_DAYS, description="The last N days, today included."),
    utc_offset_minutes: int = Query(0, ge=-840, le=840, description="The viewer's offset from UTC (days are theirs)."),
) -> Period:
    return Period.last_days(days, utc_offset_minutes)


PeriodDep = Annotated[Period, Depends(_period)]
Limit = Query(50, ge=1, le=200)


def _log(questions: QuestionLog | None) -> QuestionLog:
    if questions is None:
        raise IndexNotFoundError("The question log is not available yet (the service is starting).")
    return questions


@router.get(
    "/analytics",
    response_model=AnalyticsOut,
    responses=errors(401, 403, 422, 429, 503),
    summary="Questions per day, abstention rate, thumbs up/down and answer times over the last N days.",
)
async def analytics(questions: QuestionsDep, period: PeriodDep) -> AnalyticsOut:
    report = await run_in_threadpool(admin_reports.analytics, _log(questions), period)
    return AnalyticsOut.model_validate(asdict(report))


@router.get(
    "/questions",
    response_model=QuestionList,
    responses=errors(401, 403, 422, 429, 503),
    summary="The most recent questions of the period, newest first.",
)
async def recent_questions(questions: QuestionsDep, period: PeriodDep, limit: int = Limit) -> QuestionList:
    rows = await run_in_threadpool(admin_reports.recent_questions, _log(questions), period, limit)
    return QuestionList(questions=[QuestionOut.model_validate(asdict(q)) for q in rows])


@router.get(
    "/gaps",
    response_model=GapList,
    responses=errors(401, 403, 422, 429, 503),
    summary="Content gaps: refused questions of the period grouped by similarity, biggest group first.",
)
async def gaps(
    questions: QuestionsDep, service: ServiceDep, period: PeriodDep, limit: int = Query(20, ge=1, le=100)
) -> GapList:
    groups = await run_in_threadpool(admin_reports.content_gaps, _log(questions), period, service.embed, limit)
    return GapList(groups=[GapOut.model_validate(asdict(g)) for g in groups])


@router.get(
    "/reviews",
    response_model=ReviewList,
    responses=errors(401, 403, 422, 429, 503),
    summary="Thumbs-down answers of the period: question, answer, citations and comment, newest first.",
)
async def reviews(questions: QuestionsDep, period: PeriodDep, limit: int = Limit) -> ReviewList:
    rows = await run_in_threadpool(admin_reports.reviews, _log(questions), period, limit)
    return ReviewList(
        reviews=[
            ReviewOut(
                rated_at=r.rated_at,
                conversation_id=r.conversation_id,
                turn=r.turn,
                question=r.question,
                answer=r.answer.answer,
                abstained=r.answer.abstained,
                citations=r.answer.citations,
                comment=r.comment,
            )
            for r in rows
        ]
    )
