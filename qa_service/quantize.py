"""Compact storage of token vectors (late interaction needs a few dozen per sentence)."""

from __future__ import annotations

import numpy as np


def token_blob(tokens: np.ndarray) -> bytes:
    """Unit token vectors as int8, each row scaled by its own largest component (about 4x smaller
    than float32; `token_unblob` restores the directions, which is all late interaction uses)."""
    if tokens.size == 0:
        return b""
    scale = np.abs(tokens).max(axis=1, keepdims=True)
    return np.round(tokens / np.maximum(scale, 1e-12) * 127).astype(np.int8).tobytes()


def token_unblob(data: bytes, dimension: int) -> np.ndarray:
    matrix = np.frombuffer(data, dtype=np.int8).reshape(-1, dimension).astype(np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
