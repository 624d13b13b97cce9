"""The hashing encoder (tests, benchmarks): deterministic vectors, bounded memory."""

from __future__ import annotations

import numpy as np

from qa_service import encoders
from qa_service.encoders import WORD_CACHE_SIZE, HashingEncoder


def test_hashing_vectors_are_deterministic_and_the_word_cache_stays_bounded() -> None:
    encoder = HashingEncoder(16)
    first = encoder.embed(["alpha beta gamma"])
    words = [f"w{i}" for i in range(WORD_CACHE_SIZE + 5_000)]  # more distinct words than the cache holds
    for start in range(0, len(words), 500):
        encoder.embed([" ".join(words[start : start + 500])])
    assert encoders._word_vector.cache_info().currsize <= WORD_CACHE_SIZE
    again = HashingEncoder(16).embed(["alpha beta gamma"])  # recomputed after eviction: the same vector
    assert np.array_equal(first, again)
    tokens, pooled = encoder.embed_tokens(["alpha beta"])[0]
    assert tokens.shape == (2, 16) and tokens.flags.writeable  # callers get their own array
    assert np.allclose(np.linalg.norm(tokens, axis=1), 1.0) and np.isclose(np.linalg.norm(pooled), 1.0)
