"""OpenAPI descriptions of the error responses routes can give."""

from typing import Any

from qa_service.api.schemas import ErrorBody

_TEXT = {
    401: "Missing or invalid API key.",
    403: "Not allowed (e.g. document management disabled).",
    404: "Not found.",
    409: "Conflict: the name is taken, or `default` cannot be renamed or deleted.",
    413: "Request body or upload too large.",
    415: "Unsupported file type.",
    422: "Invalid request; the message names the field.",
    429: "Rate limited; see Retry-After.",
    503: "Index or model not available.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _TEXT[s]} for s in statuses}
