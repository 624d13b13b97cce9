"""The MCP server: `ask`, `search`, `get_context` and `list_documents` as tools for AI agents.

Built on the official `mcp` SDK (`MCPServer`); every tool only translates to and from `QAService`
(and `converse` for `ask`, so MCP conversations are stored like any other channel's). Served over
stdio by `qa-service mcp` and over streamable HTTP at `/mcp` by the API (`qa_service/api/mcp_http.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from qa_service import __version__
from qa_service.chat import converse
from qa_service.contract import Answer, Citation
from qa_service.conversations import ConversationStore
from qa_service.errors import QAServiceError
from qa_service.ingest.locations import locate
from qa_service.question_log import QuestionLog
from qa_service.service import QAService
from qa_service.store.collections import NAME_PATTERN
from qa_service.store.records import Collection

MAX_QUESTION_CHARS = 2000
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

INSTRUCTIONS = (
    "Answers questions from the team's indexed documents. Every answer quotes the exact source sentences with "
    "their document id and character offsets; when the documents do not hold the answer, `ask` says so "
    "(abstained) instead of guessing. Use `ask` for a question, `search` to see the best matching sentences "
    "without an answer, `get_context` to read around a cited sentence, `list_documents` to see what is indexed, "
    "`list_collections` to see which collections of documents there are (every tool takes `collection`)."
)


@dataclass
class ChatResources:
    """What the tools need; resolved on every call (the HTTP app loads the service in its lifespan)."""

    service: QAService
    conversations: ConversationStore
    questions: QuestionLog | None = None  # the admin page's question log, when the caller keeps one
    # Raises (ForbiddenError) when the caller may not ask the named collection; over stdio the caller
    # owns the index, so everything is allowed.
    authorize: Callable[[str], None] = lambda name: None
    # The collections the caller may ask, of all there are.
    visible: Callable[[list[Collection]], list[Collection]] = lambda collections: collections


Collection_ = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="The collection to use (`list_collections` shows them); default `default`.",
    ),
]


class AskResult(Answer):
    collection: str = Field(..., description="The collection that answered.")
    conversation_id: str = Field(..., description="Pass it back as `conversation_id` to ask a follow-up.")
    turn: int = Field(..., ge=1, description="Turn number of this answer in the conversation.")


class CollectionEntry(BaseModel):
    name: str
    public: bool = Field(..., description="Anyone may ask it, without a key.")


class CollectionListResult(BaseModel):
    collections: list[CollectionEntry]


class SearchHit(BaseModel):
    rank: int = Field(..., ge=1)
    document_id: str
    source: str
    text: str = Field(..., description="The sentence: document text[start:end].")
    start: int = Field(..., ge=0)
    end: int = Field(..., ge=0)
    score: float = Field(..., description="Ranking score (higher is better; comparable within one search).")
    location: str | None = Field(None, description="Where in the source, e.g. 'slide 4' or 'Sheet1 row 3'.")


class SearchResult(BaseModel):
    query: str
    hits: list[SearchHit]


class ContextResult(BaseModel):
    document_id: str
    source: str
    before: str = Field(..., description="Document text before the sentence.")
    sentence: str = Field(..., description="The sentence itself (document text[start:end]).")
    after: str = Field(..., description="Document text after the sentence.")


class DocumentEntry(BaseModel):
    id: str
    source: str
    sentences: int
    indexed_at: float = Field(..., description="Unix time of indexing.")


class DocumentListResult(BaseModel):
    total: int = Field(..., description="Number of indexed documents.")
    documents: list[DocumentEntry]


def _quote(c: Citation) -> str:
    where = f"{c.source}, {c.location}" if c.location else c.source
    return f"[{c.index}] “{c.text}” — {where} (document {c.document_id}, characters {c.start}-{c.end})"


def answer_text(answer: Answer) -> str:
    """The answer as an agent reads it: the answer, then each quoted source sentence."""
    if answer.abstained:
        return (
            "The indexed documents do not answer this question (abstained, confidence "
            f"{answer.confidence:.2f}). Do not guess; say the documents do not cover it."
        )
    lines = [answer.answer, "", "Sources:", *(_quote(c) for c in answer.citations)]
    return "\n".join(lines) + f"\nconfidence: {answer.confidence:.2f}"


def _run(fn: Callable[[], Any]) -> Any:
    """Domain errors become tool errors (their messages say what to fix); anything else is a crash,
    which the SDK reports without its text."""
    try:
        return fn()
    except QAServiceError as exc:
        raise ToolError(str(exc)) from exc


def build_mcp_server(resolve: Callable[[], ChatResources]) -> MCPServer[Any]:
    """The MCP server over whatever `resolve` returns at call time."""
    server: MCPServer[Any] = MCPServer(
        "qa-service",
        title="Team documents (cited answers)",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",  # only used when nothing configured logging before
    )

    @server.tool(
        title="Ask the team's documents",
        description="Answer a question from the indexed documents. Returns the answer with the exact quoted source "
        "sentences (document id, character offsets, score) and a confidence; `abstained` is true when the documents "
        "do not hold the answer. Pass `conversation_id` from an earlier answer to ask a follow-up "
        "('what did he say next?').",
        annotations=ToolAnnotations(read_only_hint=False, open_world_hint=False),
    )
    def ask(
        question: Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="The question.")],
        conversation_id: Annotated[
            str | None,
            Field(
                None,
                pattern=r"^[A-Za-z0-9_-]{1,64}$",
                description="Continue this conversation (the `conversation_id` of an earlier answer).",
            ),
        ] = None,
        collection: Collection_ = "default",
    ) -> Annotated[CallToolResult, AskResult]:
        r = resolve()
        _run(lambda: r.authorize(collection))
        result = _run(
            lambda: converse(
                r.service, r.conversations, question, conversation_id, questions=r.questions, collection=collection
            )
        )
        out = AskResult(
            **result.answer.model_dump(),
            collection=result.collection,
            conversation_id=result.conversation_id,
            turn=result.turn,
        )
        return CallToolResult(
            content=[TextContent(type="text", text=answer_text(result.answer))],
            structured_content=out.model_dump(mode="json"),
        )

    @server.tool(
        title="Search sentences",
        description="The best matching sentences of the indexed documents for a query, ranked, with document id, "
        "character offsets and score. Never abstains: use it to explore what the documents say, and `ask` for an "
        "answer.",
        annotations=READ_ONLY,
    )
    def search(
        query: Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS, description="What to look for.")],
        limit: Annotated[int, Field(ge=1, le=20, description="How many sentences (1-20).")] = 5,
        collection: Collection_ = "default",
    ) -> Annotated[CallToolResult, SearchResult]:
        r = resolve()
        _run(lambda: r.authorize(collection))
        service = r.service
        detailed = _run(lambda: service.ask_detailed(query, mode="extractive", collection=collection))
        hits, locations = [], {}
        for rank, doc in enumerate(detailed.ranked[:limit], start=1):
            m = doc.meta
            doc_id = m["document_id"]
            if doc_id not in locations:  # one look-up per document
                locations[doc_id] = _run(partial(service.locations, doc_id, collection))
            hits.append(
                SearchHit(
                    rank=rank,
                    document_id=m["document_id"],
                    source=m["source"],
                    text=doc.content or "",
                    start=m["start"],
                    end=m["end"],
                    score=round(float(doc.score or 0.0), 4),
                    location=locate(locations[m["document_id"]], m["start"]),
                )
            )
        lines = [
            f"{h.rank}. “{h.text}” — {h.source}{', ' + h.location if h.location else ''} "
            f"(document {h.document_id}, characters {h.start}-{h.end}, score {h.score})"
            for h in hits
        ]
        result = SearchResult(query=query, hits=hits)
        return CallToolResult(
            content=[TextContent(type="text", text="\n".join(lines) or "No sentences are indexed.")],
            structured_content=result.model_dump(mode="json"),
        )

    @server.tool(
        title="Read around a sentence",
        description="The text around a sentence returned by `ask` or `search` (its document_id, start and end): "
        "up to `window` characters before and after. Only indexed sentence spans are accepted.",
        annotations=READ_ONLY,
    )
    def get_context(
        document_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")],
        start: Annotated[int, Field(ge=0, le=2**40, description="The sentence's start offset.")],
        end: Annotated[int, Field(ge=0, le=2**40, description="The sentence's end offset.")],
        window: Annotated[int, Field(ge=0, le=4000, description="Characters before and after (0-4000).")] = 400,
        collection: Collection_ = "default",
    ) -> ContextResult:
        r = resolve()
        _run(lambda: r.authorize(collection))
        source, before, sentence, after = _run(
            lambda: r.service.citation_context(document_id, start, end, window, collection=collection)
        )
        return ContextResult(document_id=document_id, source=source, before=before, sentence=sentence, after=after)

    @server.tool(
        title="List documents",
        description="The indexed documents (id, source name, sentence count, indexing time), by source name.",
        annotations=READ_ONLY,
    )
    def list_documents(
        limit: Annotated[int, Field(ge=1, le=1000, description="At most this many (1-1000).")] = 100,
        offset: Annotated[int, Field(ge=0, description="Skip this many first.")] = 0,
        collection: Collection_ = "default",
    ) -> DocumentListResult:
        r = resolve()
        _run(lambda: r.authorize(collection))
        docs = _run(lambda: r.service.documents(collection=collection))
        return DocumentListResult(
            total=len(docs),
            documents=[
                DocumentEntry(id=d.id, source=d.source, sentences=d.sentence_count, indexed_at=d.indexed_at)
                for d in docs[offset : offset + limit]
            ],
        )

    @server.tool(
        title="List collections",
        description="The collections of documents this caller may ask (pass a name as `collection` to the other "
        "tools), with their document and sentence counts.",
        annotations=READ_ONLY,
    )
    def list_collections() -> CollectionListResult:
        r = resolve()
        visible = r.visible(_run(r.service.collections))
        return CollectionListResult(
            collections=[CollectionEntry(name=c.name, public=c.public) for c in visible],
        )

    return server
