"""Haystack components and the functions that build the indexing and query pipelines."""

from haystack.core.serialization import allow_deserialization_module

# Our components are trusted by Haystack's deserialization allowlist, so saved pipelines load.
allow_deserialization_module("qa_service.*")
