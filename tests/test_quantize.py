import numpy as np

from qa_service.quantize import token_blob, token_unblob


def test_int8_tokens_keep_their_directions() -> None:
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((12, 384)).astype(np.float32)
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    data = token_blob(tokens)
    assert len(data) == 12 * 384  # one byte per component
    restored = token_unblob(data, 384)
    assert restored.shape == (12, 384)
    cosines = (restored * tokens).sum(axis=1)
    assert cosines.min() > 0.99
    assert np.allclose(np.linalg.norm(restored, axis=1), 1.0, atol=1e-5)


def test_no_tokens_is_an_empty_blob() -> None:
    assert token_blob(np.zeros((0, 8), dtype=np.float32)) == b""
    assert token_unblob(b"", 8).shape == (0, 8)
