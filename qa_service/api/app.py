"""App factory: `create_app(settings)`; the lifespan owns the QAService (model + index)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from qa_service import __version__
from qa_service.api.errors import install_error_handlers
from qa_service.api.routes import router
from qa_service.conversations import ConversationStore
from qa_service.settings import Settings


def create_app(settings: Settings | None = None, load_service: bool = True) -> FastAPI:
    """Build the app. `load_service=False` leaves `app.state.service` to the caller (tests)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.conversations = ConversationStore()
        if load_service:
            from qa_service.service import QAService

            service = await run_in_threadpool(QAService, settings)
            await run_in_threadpool(service.warm_up)
            app.state.service = service
        yield
        loaded = getattr(app.state, "service", None)
        if loaded is not None and hasattr(loaded, "store"):
            loaded.store.db.close()

    app = FastAPI(
        title="qa-service",
        version=__version__,
        lifespan=lifespan,
        description="Answers questions from your documents with sentence-level citations.",
    )
    install_error_handlers(app)
    app.include_router(router)
    return app
