"""Haystack filter dictionaries -> SQL over `sentences s JOIN documents d` (applied before search)."""

from __future__ import annotations

from typing import Any

from qa_service.errors import InvalidInputError

_COLUMNS = {
    "content": "s.text",
    "meta.document_id": "s.document_id",
    "meta.source": "d.source",
    "meta.start": "s.start",
    "meta.end": 's."end"',
    "meta.sentence_index": "s.sentence_index",
    "meta.indexed_at": "d.indexed_at",
}
_COMPARISONS = {"==": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


def _column(field: str) -> str:
    if field in _COLUMNS:
        return _COLUMNS[field]
    if field.startswith("meta.") and field[5:].replace("_", "").replace(".", "").isalnum():
        return f"json_extract(d.meta, '$.{field[5:]}')"
    raise InvalidInputError(f"Unsupported filter field {field!r}; use 'content' or 'meta.<name>'.")


def to_sql(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """Translate a Haystack filter into a WHERE fragment and its parameters."""
    if "conditions" in filters:
        op = filters.get("operator")
        parts = [to_sql(c) for c in filters["conditions"]]
        params = [p for _, ps in parts for p in ps]
        if op in ("AND", "OR"):
            if not parts:
                return ("1" if op == "AND" else "0"), []
            return "(" + f" {op} ".join(sql for sql, _ in parts) + ")", params
        if op == "NOT":
            return "NOT (" + " AND ".join(sql for sql, _ in parts) + ")", params
        raise InvalidInputError(f"Unknown logical operator {op!r}; use AND, OR or NOT.")
    try:
        field, op, value = filters["field"], filters["operator"], filters["value"]
    except KeyError as exc:
        raise InvalidInputError(f"Filter is missing {exc.args[0]!r}: {filters!r}") from exc
    column = _column(field)
    if op in ("in", "not in"):
        if not isinstance(value, list):
            raise InvalidInputError(f"Filter operator {op!r} needs a list value.")
        if not value:
            return ("0" if op == "in" else "1"), []
        marks = ",".join("?" * len(value))
        return f"{column} {'IN' if op == 'in' else 'NOT IN'} ({marks})", list(value)
    if op not in _COMPARISONS:
        raise InvalidInputError(f"Unknown filter operator {op!r}.")
    if value is None:
        if op not in ("==", "!="):
            raise InvalidInputError(f"Filter operator {op!r} cannot compare with null.")
        return f"{column} IS {'NOT ' if op == '!=' else ''}NULL", []
    return f"{column} {_COMPARISONS[op]} ?", [value]
