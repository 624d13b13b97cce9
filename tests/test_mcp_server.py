"""The MCP tools through the SDK's own client: over stdio (`qa-service mcp` as a subprocess) and
in-process (abstention, argument errors). The HTTP transport is tested in tests/api/test_mcp_http.py."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from qa_service.mcp_server import ChatResources, build_mcp_server
from qa_service.service import QAService, TextSource
from qa_service.settings import AbstentionModel, Settings
from qa_service.shared_state import open_state

TOOLS = {"ask", "search", "get_context", "list_documents"}
OTTERS = "Sea otters hold hands while they sleep. They float on kelp beds near the shore."


def _text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def exercise_tools(client: Client) -> dict[str, Any]:
    """List the tools and call each one; returns what the tests check."""
    listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools}
    asked = await client.call_tool("ask", {"question": "Do sea otters hold hands while they sleep?"})
    cited = asked.structured_content["citations"][0]
    follow = await client.call_tool(
        "ask", {"question": "Where do they float?", "conversation_id": asked.structured_content["conversation_id"]}
    )
    found = await client.call_tool("search", {"query": "kelp beds", "limit": 2})
    context = await client.call_tool(
        "get_context",
        {"document_id": cited["document_id"], "start": cited["start"], "end": cited["end"], "window": 50},
    )
    documents = await client.call_tool("list_documents", {})
    return {
        "tools": tools,
        "ask": asked,
        "follow": follow,
        "search": found,
        "context": context,
        "documents": documents,
    }


def check_tool_results(out: dict[str, Any]) -> None:
    tools = out["tools"]
    assert set(tools) >= TOOLS
    ask_schema = tools["ask"].input_schema
    assert ask_schema["required"] == ["question"]
    assert ask_schema["properties"]["question"]["maxLength"] == 2000
    assert tools["search"].input_schema["properties"]["limit"]["maximum"] == 20
    assert all(len(tools[name].description or "") > 60 for name in TOOLS)
    assert tools["ask"].output_schema is not None and "citations" in tools["ask"].output_schema["properties"]

    asked = out["ask"]
    assert not asked.is_error and asked.structured_content["abstained"] is False
    cited = asked.structured_content["citations"][0]
    assert cited["text"] == "Sea otters hold hands while they sleep."
    assert "“Sea otters hold hands while they sleep.”" in _text(asked) and "otters.txt" in _text(asked)
    follow = out["follow"].structured_content
    assert follow["conversation_id"] == asked.structured_content["conversation_id"] and follow["turn"] == 4

    hits = out["search"].structured_content["hits"]
    assert len(hits) == 2 and hits[0]["text"] == "They float on kelp beds near the shore."
    assert hits[0]["score"] >= hits[1]["score"] and hits[0]["end"] - hits[0]["start"] == len(hits[0]["text"])

    context = out["context"].structured_content
    assert context["sentence"] == cited["text"] and context["after"].startswith(" They float on kelp")
    documents = out["documents"].structured_content
    assert documents["total"] == 1 and documents["documents"][0]["source"] == "otters.txt"


@pytest.fixture
def otter_settings(fake_settings: Settings) -> Settings:
    QAService(fake_settings).index_texts([TextSource("otters.txt", OTTERS)])
    return fake_settings


def test_stdio_server_lists_and_runs_every_tool(otter_settings: Settings) -> None:
    cli = Path(sys.executable).with_name("qa-service")
    env = {
        "QA_INDEX_DIR": str(otter_settings.index_dir),
        "QA_EMBEDDING_MODEL": "hash:64",
        "QA_ABSTENTION__THRESHOLD": "0.0",
    }
    params = StdioServerParameters(command=str(cli), args=["mcp"], env=env)

    async def run() -> dict[str, Any]:
        async with Client(params, read_timeout_seconds=60) as client:
            return await exercise_tools(client)

    check_tool_results(asyncio.run(run()))


@pytest.fixture
def in_process(otter_settings: Settings) -> Any:
    settings = otter_settings.model_copy(update={"abstention": AbstentionModel(threshold=1.5)})  # always abstains
    service, shared = QAService(settings, create_index=False), open_state(settings)
    yield build_mcp_server(lambda: ChatResources(service, shared.conversations))
    shared.close()
    service.store.close()


def test_an_abstention_says_so_in_text_and_structure(in_process: Any) -> None:
    async def run() -> Any:
        async with Client(in_process) as client:
            return await client.call_tool("ask", {"question": "What is the capital of France?"})

    result = asyncio.run(run())
    assert not result.is_error
    assert result.structured_content["abstained"] is True and result.structured_content["citations"] == []
    assert "do not answer this question" in _text(result)


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("ask", {"question": ""}, "question"),
        ("ask", {"question": "x" * 2001}, "question"),
        ("ask", {"question": "ok?", "conversation_id": "../etc"}, "conversation_id"),
        ("search", {"query": "otters", "limit": 500}, "limit"),
        ("get_context", {"document_id": "abc", "start": 0, "end": 5}, "No sentence 0-5"),
        ("ask", {"question": "   "}, "question is empty"),
    ],
)
def test_bad_arguments_give_tool_errors(in_process: Any, tool: str, arguments: dict[str, Any], message: str) -> None:
    async def run() -> Any:
        async with Client(in_process) as client:
            return await client.call_tool(tool, arguments)

    result = asyncio.run(run())
    assert result.is_error and message in _text(result)
