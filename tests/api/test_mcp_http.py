"""MCP over streamable HTTP at /mcp, through the SDK's client, behind the chat key and rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from qa_service.api.app import create_app
from qa_service.service import QAService, TextSource
from qa_service.settings import Settings
from tests.api.conftest import ADMIN, ADMIN_HEADERS, CHAT
from tests.conftest import serve_in_thread
from tests.test_mcp_server import OTTERS, check_tool_results, exercise_tools


def _serve(settings: Settings, **limits: int) -> Iterator[str]:
    QAService(settings).index_texts([TextSource("otters.txt", OTTERS)])
    keys = {"chat_api_key": SecretStr(CHAT), "admin_api_key": SecretStr(ADMIN)}
    with serve_in_thread(create_app(settings.model_copy(update={**keys, **limits}))) as url:
        yield url + "/mcp"


@pytest.fixture
def mcp_url(fake_settings: Settings) -> Iterator[str]:
    yield from _serve(fake_settings)


@pytest.fixture
def limited_url(fake_settings: Settings) -> Iterator[str]:
    yield from _serve(fake_settings, rate_limit_burst=5, rate_limit_per_minute=1)  # no refill during the test


def _client(url: str, key: str | None) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return Client(streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=60)))


def test_http_transport_lists_and_runs_every_tool(mcp_url: str) -> None:
    async def run() -> dict[str, Any]:
        async with _client(mcp_url, CHAT) as client:
            return await exercise_tools(client)

    check_tool_results(asyncio.run(run()))
    logged = httpx.get(mcp_url.replace("/mcp", "/v1/admin/questions"), headers=ADMIN_HEADERS).json()["questions"]
    assert [q["question"] for q in logged] == ["Where do they float?", "Do sea otters hold hands while they sleep?"]


def test_a_bad_argument_over_http_is_a_tool_error(mcp_url: str) -> None:
    async def run() -> Any:
        async with _client(mcp_url, CHAT) as client:
            return await client.call_tool("search", {"query": "otters", "limit": 0})

    result = asyncio.run(run())
    assert result.is_error and "limit" in result.content[0].text


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_without_the_chat_key_mcp_is_refused(mcp_url: str, key: str | None) -> None:
    async def run() -> None:
        async with _client(mcp_url, key) as client:
            await client.list_tools()

    refused = False
    try:
        asyncio.run(run())
    except* MCPError:  # the SDK client cannot connect
        refused = True
    assert refused
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"} if key else {}
    raw = httpx.post(mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
    assert raw.status_code == 401 and raw.json()["error"]["code"] == "unauthorized"


def test_mcp_requests_count_against_the_rate_limit(limited_url: str) -> None:
    headers = {"Authorization": f"Bearer {CHAT}"}
    responses = [httpx.post(limited_url, json={}, headers=headers) for _ in range(7)]
    assert [r.status_code == 429 for r in responses] == [False] * 5 + [True] * 2  # the burst of 5, then refused
    assert responses[-1].json()["error"]["code"] == "rate_limited" and int(responses[-1].headers["retry-after"]) > 0


def test_on_loopback_a_foreign_host_header_is_refused(mcp_url: str) -> None:
    headers = {"Authorization": f"Bearer {CHAT}", "Accept": "application/json, text/event-stream"}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    rebound = httpx.post(mcp_url, json=body, headers={**headers, "Host": "attacker.example"})
    assert rebound.status_code in (403, 421)
    assert httpx.post(mcp_url, json=body, headers=headers).status_code != rebound.status_code


def test_bound_elsewhere_the_host_name_is_the_deployments() -> None:
    from qa_service.api.mcp_http import _transport_security

    assert _transport_security(Settings(host="127.0.0.1")).enable_dns_rebinding_protection
    assert not _transport_security(Settings(host="0.0.0.0")).enable_dns_rebinding_protection
