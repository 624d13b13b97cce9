"""GraphRunner executes a Haystack pipeline's graph like Pipeline.run, without copying inputs."""

from __future__ import annotations

from typing import Any

import pytest
from haystack import Document, Pipeline, component
from haystack.components.joiners import DocumentJoiner

from qa_service.pipeline.runner import GraphRunner


@component
class Emit:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.seen: list[Any] = []

    @component.output_types(documents=list[Document], extra=str)
    def run(self, payload: list[int]) -> dict[str, Any]:
        self.seen.append(payload)
        return {"documents": [Document(content=f"{self.prefix}{n}") for n in payload], "extra": self.prefix}


@component
class Count:
    @component.output_types(count=int)
    def run(self, documents: list[Document]) -> dict[str, int]:
        return {"count": len(documents)}


def _pipeline() -> tuple[Pipeline, Emit]:
    pipeline = Pipeline()
    first = Emit("a")
    pipeline.add_component("first", first)
    pipeline.add_component("second", Emit("b"))
    pipeline.add_component("joiner", DocumentJoiner(join_mode="concatenate"))
    pipeline.add_component("count", Count())
    pipeline.connect("first.documents", "joiner.documents")
    pipeline.connect("second.documents", "joiner.documents")
    pipeline.connect("joiner.documents", "count.documents")
    return pipeline, first


def test_same_results_as_pipeline_run() -> None:
    pipeline, _ = _pipeline()
    data = {"first": {"payload": [1, 2]}, "second": {"payload": [3]}}
    expected = pipeline.run(data, include_outputs_from={"joiner"})
    got = GraphRunner(pipeline).run(data, include_outputs_from=frozenset({"joiner"}))
    assert got["count"] == expected["count"] == {"count": 3}
    assert got["first"] == expected["first"] == {"extra": "a"}  # unconnected outputs are returned
    assert sorted(d.content for d in got["joiner"]["documents"]) == ["a1", "a2", "b3"]


def test_inputs_are_passed_by_reference() -> None:
    pipeline, first = _pipeline()
    payload = [1]
    GraphRunner(pipeline).run({"first": {"payload": payload}, "second": {"payload": []}})
    assert first.seen[0] is payload  # Pipeline.run would have deep-copied it


def test_missing_input_fails_loudly() -> None:
    pipeline, _ = _pipeline()
    with pytest.raises(TypeError):
        GraphRunner(pipeline).run({"first": {"payload": [1]}})
