"""Locations inside a converted document: `[[offset, label], ...]` sorted by offset, kept in the
document's meta, so a citation's offset names its slide, sheet row or table row ('slide 4')."""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qa_service.ingest.office import Converted

Locations = list[tuple[int, str]]


def locate(locations: Any, offset: int) -> str | None:
    """The label of the last location starting at or before `offset` (None when there is none)."""
    if not locations:
        return None
    starts = [int(start) for start, _ in locations]
    k = bisect_right(starts, offset) - 1
    return str(locations[k][1]) if k >= 0 else None


def location_meta(converted: Converted) -> dict[str, Any]:
    """The document meta that keeps a conversion's locations (empty when it has none)."""
    return {"locations": [[start, label] for start, label in converted.locations]} if converted.locations else {}
