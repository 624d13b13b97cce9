"""Runs a Haystack pipeline's graph with no per-request overhead.

`Pipeline.run` deep-copies every input of every component, tracks visits and emits tracing spans:
right for a general engine, but on our two-core query path it cost more than the ranking itself.
Our graphs are acyclic and our components do not mutate their inputs, so `GraphRunner` calls each
component once, in topological order, passing outputs by reference. The `Pipeline` object stays
the definition (connections are validated by Haystack, `to_dict` still serialises it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx
from haystack import Pipeline


@dataclass(frozen=True)
class _Step:
    name: str
    instance: Any
    # (to_socket, from_component, from_socket); a variadic socket receives a list of every sender's value
    links: tuple[tuple[str, str, str], ...]
    variadic: frozenset[str]


class GraphRunner:
    def __init__(self, pipeline: Pipeline) -> None:
        graph = pipeline.graph
        if not nx.is_directed_acyclic_graph(graph):
            raise ValueError("GraphRunner runs acyclic pipelines only.")
        self.pipeline = pipeline
        steps = []
        for name in nx.topological_sort(graph):
            node = graph.nodes[name]
            links = tuple(
                (data["to_socket"].name, sender, data["from_socket"].name)
                for sender, _, data in graph.in_edges(name, data=True)
            )
            variadic = frozenset(k for k, socket in node["input_sockets"].items() if socket.is_variadic)
            steps.append(_Step(name, node["instance"], links, variadic))
        self._steps = tuple(steps)

    def warm_up(self) -> None:
        self.pipeline.warm_up()

    def run(
        self, data: dict[str, dict[str, Any]], include_outputs_from: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """Same inputs and results as `Pipeline.run`: each component's unconsumed outputs, plus the
        full outputs of the components named in `include_outputs_from`."""
        outputs: dict[str, dict[str, Any]] = {}
        consumed: dict[str, set[str]] = {}
        for step in self._steps:
            kwargs = dict(data.get(step.name, {}))
            for socket in step.variadic:
                if socket in kwargs:
                    kwargs[socket] = [kwargs[socket]]
            for to_socket, sender, from_socket in step.links:
                value = outputs[sender][from_socket]
                consumed.setdefault(sender, set()).add(from_socket)
                if to_socket in step.variadic:
                    kwargs.setdefault(to_socket, []).append(value)
                else:
                    kwargs[to_socket] = value
            outputs[step.name] = step.instance.run(**kwargs)
        result: dict[str, Any] = {}
        for name, produced in outputs.items():
            if name in include_outputs_from:
                result[name] = produced
            else:
                left = {k: v for k, v in produced.items() if k not in consumed.get(name, set())}
                if left:
                    result[name] = left
        return result
