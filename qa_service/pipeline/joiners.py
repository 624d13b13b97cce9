"""Joins the candidates of `ids_only` retrievers for the ranker.

No `from __future__ import annotations` here: Haystack reads a `Variadic` socket from its evaluated
annotation, and a string annotation loses the marker.
"""

from haystack import component
from haystack.core.component.types import Variadic


@component
class RowIdJoiner:
    """Joins `ids_only` retrievers' row ids: each id once, in the order first seen."""

    @component.output_types(row_ids=list[int])
    def run(self, row_ids: Variadic[list[int]]) -> dict[str, list[int]]:
        return {"row_ids": list(dict.fromkeys(i for ids in row_ids for i in ids))}
