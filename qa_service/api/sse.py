"""Server-sent events."""

from __future__ import annotations

import json
from typing import Any

SSE_MEDIA_TYPE = "text/event-stream"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# OpenAPI schema of one event of a stream (each `data` is a JSON document, or `[DONE]`).
SSE_EVENT_SCHEMA = {
    "type": "object",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
    "required": ["data"],
}


def event(name: str | None, data: Any) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    lines = "".join(f"data: {line}\n" for line in payload.split("\n"))
    return (f"event: {name}\n" if name else "") + lines + "\n"


def wants_stream(accept: str | None, flag: bool) -> bool:
    return flag or SSE_MEDIA_TYPE in (accept or "")
