"""The MCP server over streamable HTTP at `/mcp`, behind the chat key and rate limit of the chat routes.

The route exists from `create_app`; the MCP server and its session manager are made and run by the
lifespan (`mcp_lifespan`), so each start of the app gets a fresh one. Stateless JSON mode: every
request stands alone, so any worker or replica can answer it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from ipaddress import ip_address

from fastapi import FastAPI
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from qa_service.api.deps import require_chat
from qa_service.api.errors import error_response
from qa_service.api.scopes import askable, visible
from qa_service.conversations import ConversationStore
from qa_service.errors import IndexNotFoundError, QAServiceError
from qa_service.keys.principal import Principal
from qa_service.mcp_server import ChatResources, build_mcp_server
from qa_service.settings import Settings

MCP_PATH = "/mcp"
# The caller of the MCP request being handled: the tools' collection checks read it (contextvars follow
# the request into the tasks the SDK starts for it).
_principal: ContextVar[Principal] = ContextVar("mcp_principal")


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        return False


def _transport_security(settings: Settings) -> TransportSecuritySettings:
    """Bound to loopback: refuse other Host and Origin headers (DNS rebinding). Bound elsewhere, the
    host name is the deployment's, and the chat key guards the endpoint."""
    if not _loopback(settings.host):
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *settings.cors_origins],
    )


@asynccontextmanager
async def mcp_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the MCP session manager for as long as the app runs."""

    def resolve() -> ChatResources:
        service = getattr(app.state, "service", None)
        if service is None:
            raise IndexNotFoundError("The service is starting; the index is not loaded yet.")
        conversations: ConversationStore = app.state.conversations
        principal = _principal.get()  # set by the endpoint for this request (tools run in its context)

        def authorize(name: str) -> None:
            askable(principal, service, name)

        return ChatResources(
            service,
            conversations,
            app.state.questions,
            authorize=authorize,
            visible=lambda collections: visible(principal, collections),
        )

    server = build_mcp_server(resolve)
    server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        max_request_body_size=app.state.settings.max_body_bytes,
        transport_security=_transport_security(app.state.settings),
    )
    async with server.session_manager.run():
        app.state.mcp_sessions = server.session_manager
        try:
            yield
        finally:
            app.state.mcp_sessions = None


class MCPEndpoint:
    """ASGI endpoint: the chat route checks (key, rate limit), then the SDK's session manager."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        app = request.app
        try:
            principal = await require_chat(request, app.state.settings)
            sessions = getattr(app.state, "mcp_sessions", None)
            if sessions is None:
                raise IndexNotFoundError("The MCP server is starting.")
        except QAServiceError as exc:
            await error_response(exc.http_status, exc.code, str(exc), exc.headers)(scope, receive, send)
            return
        token = _principal.set(principal)
        try:
            await sessions.handle_request(scope, receive, send)
        finally:
            _principal.reset(token)


def mcp_route() -> Route:
    return Route(MCP_PATH, endpoint=MCPEndpoint(), methods=["GET", "POST", "DELETE"], include_in_schema=False)
