"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from qa_service.api.deps import MetricsDep, ServiceDep
from qa_service.api.routes.responses import errors
from qa_service.api.schemas import Health, Ready

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health, responses=errors(503), summary="Liveness and index size.")
def healthz(service: ServiceDep) -> Health:
    documents, sentences, _ = service.store.counts()
    return Health(documents=documents, sentences=sentences, model=service.store.model)


@router.get("/readyz", response_model=Ready, responses=errors(503), summary="Ready when the index is loaded.")
def readyz(service: ServiceDep) -> Ready:
    return Ready(generation=service.store.generation)


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics.",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
