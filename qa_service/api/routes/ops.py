"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from qa_service.api.blocking import bounded_wait
from qa_service.api.deps import MetricsDep, ServiceDep, SettingsDep
from qa_service.api.routes.responses import errors
from qa_service.api.schemas import Health, Ready
from qa_service.errors import DatabaseUnavailableError

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health, responses=errors(503), summary="Liveness and index size.")
async def healthz(request: Request, service: ServiceDep, settings: SettingsDep) -> Health:
    """Alive as long as the process answers: the index size (all collections) comes from the store
    within QA_DATABASE_TIMEOUT_SECONDS, else (a stalled database) the last size seen."""
    try:
        documents, sentences, _ = await bounded_wait(service.counts, seconds=settings.database_timeout_seconds)
        request.app.state.last_counts = (documents, sentences)
    except DatabaseUnavailableError:
        documents, sentences = getattr(request.app.state, "last_counts", (0, 0))
    return Health(documents=documents, sentences=sentences, model=service.store.model)


@router.get("/readyz", response_model=Ready, responses=errors(503), summary="Ready when the index is loaded.")
async def readyz(service: ServiceDep, settings: SettingsDep) -> Ready:
    def generation() -> int:
        return service.store.generation

    return Ready(generation=await bounded_wait(generation, seconds=settings.database_timeout_seconds))


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics.",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
