"""App factory: `create_app(settings)`; the lifespan owns the QAService (model + index) and the state DB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from qa_service import __version__, collection_refs
from qa_service.api.admission import AnswerAdmission
from qa_service.api.errors import install_error_handlers
from qa_service.api.mcp_http import mcp_lifespan, mcp_route
from qa_service.api.middleware import REQUEST_ID_HEADER, BodySizeLimitMiddleware, RequestContextMiddleware
from qa_service.api.observability import Metrics
from qa_service.api.routes import keys, router
from qa_service.api.security import RateLimiter
from qa_service.keys import open_key_store
from qa_service.settings import Settings
from qa_service.shared_state import open_state


def create_app(settings: Settings | None = None, load_service: bool = True) -> FastAPI:
    """Build the app. `load_service=False` leaves `app.state.service` to the caller (tests)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        shared = await run_in_threadpool(open_state, settings)
        app.state.conversations = shared.conversations
        app.state.questions = shared.questions
        app.state.shared = shared
        app.state.keys = await run_in_threadpool(open_key_store, settings)
        if settings.store == "pgvector":  # one bucket per client across replicas
            app.state.limiter = shared.limiter
        if load_service:
            from qa_service.service import QAService

            service = await run_in_threadpool(QAService, settings)
            await run_in_threadpool(service.warm_up)
            await run_in_threadpool(collection_refs.reconcile, service, app.state.keys, shared)
            app.state.service = service
            if settings.slack_bot_token is not None and settings.slack_signing_secret is not None:
                from qa_service.slack.bot import build_slack_app

                app.state.slack = build_slack_app(
                    settings,
                    service,
                    shared.conversations,
                    seen=shared.slack_events,
                    questions=shared.questions,
                    channels=shared.slack_channels,
                )
        async with mcp_lifespan(app):
            yield
        app.state.keys.close()
        shared.close()
        loaded = getattr(app.state, "service", None)
        if loaded is not None and hasattr(loaded, "catalog"):
            loaded.close()

    app = FastAPI(
        title="qa-service",
        version=__version__,
        lifespan=lifespan,
        description="Answers questions from your documents with sentence-level citations.",
    )
    app.state.settings = settings
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    app.state.admission = AnswerAdmission(settings.answer_thread_limit())
    app.state.auth_failures = RateLimiter(settings.auth_failures_per_minute, settings.auth_failures_burst)

    def index_size() -> tuple[int, int]:
        service = getattr(app.state, "service", None)
        if service is None or not hasattr(service, "counts"):
            return 0, 0
        documents, sentences, _ = service.counts()
        return documents, sentences

    app.state.metrics = Metrics(index_size)
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(keys.router)
    app.router.routes.append(mcp_route())  # MCP over streamable HTTP, for AI agents
    # Outermost last: request context wraps everything, so even 413s and CORS preflights are logged.
    app.add_middleware(
        BodySizeLimitMiddleware,
        limit=settings.max_body_bytes,
        upload_limit=settings.max_upload_bytes,
        upload_paths=("/v1/documents",),
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER],
        )
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    return app
