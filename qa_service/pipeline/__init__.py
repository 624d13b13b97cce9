"""Haystack components and the functions that build the indexing and query pipelines."""
