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


# --- product quantisation -------------------------------------------------------------------------
import pytest  # noqa: E402

from qa_service.codebooks import train  # noqa: E402
from qa_service.errors import IndexMismatchError  # noqa: E402
from qa_service.quantize import HEADER, INT8, ProductCodec, blob_code, decode_blobs, register  # noqa: E402


def _unit_rows(rng: np.random.Generator, n: int, d: int, clusters: int = 40) -> np.ndarray:
    """Token-like vectors: noisy copies of a few directions (real token vectors cluster by word)."""
    centres = rng.standard_normal((clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.35 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def codec() -> ProductCodec:
    return register(train(_unit_rows(np.random.default_rng(1), 20_000, 64), m=16, seed=7))


def test_pq_blob_is_a_header_and_one_byte_per_sub_quantiser(codec: ProductCodec) -> None:
    tokens = _unit_rows(np.random.default_rng(2), 9, 64)
    data = codec.encode(tokens)
    assert len(data) == HEADER + 9 * 16  # 4x smaller than int8 at M = d / 4
    assert len(data) % 64 != 0  # never read as int8
    assert blob_code(data, 64) == codec.name and blob_code(token_blob(tokens), 64) == INT8
    assert codec.encode(np.zeros((0, 64), dtype=np.float32)) == b""


def test_pq_round_trip_and_asymmetric_late_interaction_stay_close_to_exact(codec: ProductCodec) -> None:
    rng = np.random.default_rng(3)
    tokens, query = _unit_rows(rng, 400, 64), _unit_rows(rng, 12, 64)
    restored = token_unblob(codec.encode(tokens), 64)
    assert np.allclose(np.linalg.norm(restored, axis=1), 1.0, atol=1e-5)
    assert (restored * tokens).sum(axis=1).mean() > 0.9
    # late interaction (mean over question tokens of the best sentence token), 40 sentences of 10 tokens
    exact = (query @ tokens.T).reshape(12, 40, 10).max(axis=2).mean(axis=0)
    approx = (query @ restored.T).reshape(12, 40, 10).max(axis=2).mean(axis=0)
    assert np.abs(exact - approx).mean() < 0.02  # measured 0.013 (max 0.042) on these synthetic tokens
    assert np.abs(exact - approx).max() < 0.06


def test_pq_codes_name_each_sub_vectors_nearest_centroid(codec: ProductCodec) -> None:
    tokens = _unit_rows(np.random.default_rng(8), 300, 64)
    parts = tokens.reshape(300, 16, 4)
    distances = ((parts[:, :, None, :] - codec.centroids[None]) ** 2).sum(axis=3)  # (n, M, 256)
    assert np.array_equal(codec.codes(tokens), distances.argmin(axis=2).astype(np.uint8))
    assert codec.codes(tokens[:0]).shape == (0, 16)


def test_decode_blobs_reads_int8_and_pq_blobs_in_any_order(codec: ProductCodec) -> None:
    rng = np.random.default_rng(4)
    sets = [_unit_rows(rng, n, 64) for n in (3, 5, 2, 4)]
    blobs = [token_blob(sets[0]), codec.encode(sets[1]), codec.encode(sets[2]), token_blob(sets[3])]
    tokens, lengths = decode_blobs(blobs, 64)
    assert lengths.tolist() == [3, 5, 2, 4]
    at = np.concatenate([[0], np.cumsum(lengths)])
    for i, blob in enumerate(blobs):
        assert np.array_equal(tokens[at[i] : at[i + 1]], token_unblob(blob, 64))
    assert codec.encode_many(sets) == [codec.encode(s) for s in sets]


def test_a_blob_of_an_unknown_codebook_is_refused(codec: ProductCodec) -> None:
    other = ProductCodec(codec.centroids + 0.5)  # never registered
    with pytest.raises(IndexMismatchError, match="does not ship"):
        decode_blobs([other.encode(_unit_rows(np.random.default_rng(5), 2, 64))], 64)


def test_codebook_training_is_deterministic() -> None:
    tokens = _unit_rows(np.random.default_rng(6), 5_000, 64)
    assert train(tokens, m=8, seed=3, max_tokens=4_000).digest == train(tokens, m=8, seed=3, max_tokens=4_000).digest


# --- int4 ------------------------------------------------------------------------------------------
from qa_service.codebooks import resolve  # noqa: E402
from qa_service.quantize import INT4, INT4_CODEC, INT4_HEADER, resolve_name  # noqa: E402


def _late(query: np.ndarray, tokens: np.ndarray, sentences: int) -> np.ndarray:
    """Late interaction of equal-length sentences: mean over question tokens of the best sentence token."""
    return (query @ tokens.T).reshape(len(query), sentences, -1).max(axis=2).mean(axis=0)


def test_int4_blob_is_a_header_and_half_a_byte_per_component() -> None:
    tokens = _unit_rows(np.random.default_rng(5), 9, 64)
    data = INT4_CODEC.encode(tokens)
    assert data[:HEADER] == INT4_HEADER and len(data) == HEADER + 9 * 32
    for n in range(1, 40):  # never read as int8, whatever the token count
        assert (HEADER + n * 32) % 64 != 0
    assert blob_code(data, 64) == INT4 and token_unblob(data, 64).shape == (9, 64)
    assert INT4_CODEC.encode(np.zeros((0, 64), dtype=np.float32)) == b""
    assert resolve_name(INT4) is INT4_CODEC and resolve(INT4, "any/model") is INT4_CODEC


def test_int4_keeps_directions_and_late_interaction_closer_than_pq(codec: ProductCodec) -> None:
    rng = np.random.default_rng(6)
    tokens, query = _unit_rows(rng, 400, 64), _unit_rows(rng, 12, 64)
    restored = token_unblob(INT4_CODEC.encode(tokens), 64)
    assert np.allclose(np.linalg.norm(restored, axis=1), 1.0, atol=1e-5)
    cosines = (restored * tokens).sum(axis=1)
    assert cosines.min() > 0.97  # measured 0.98-0.99 here; 0.993 on MiniLM's SQuAD token vectors
    pq = token_unblob(codec.encode(tokens), 64)
    assert cosines.mean() > (pq * tokens).sum(axis=1).mean()
    exact, approx = _late(query, tokens, 40), _late(query, restored, 40)
    assert np.abs(exact - approx).max() < 0.02


def test_int4_levels_are_per_token_and_clip_outlying_components() -> None:
    rng = np.random.default_rng(7)
    token = rng.standard_normal((1, 64)).astype(np.float32)
    token[0, 3] = 6.0  # one outlier, past the 3 standard deviations of the top level (MiniLM's largest: ~3.4)
    scaled = np.concatenate([token, 1000 * token])  # the same direction at another scale
    codes = INT4_CODEC.codes(scaled)
    assert codes.shape == (2, 32) and np.array_equal(codes[0], codes[1])
    levels = np.stack([codes[0] >> 4, codes[0] & 15], axis=1).reshape(-1)
    assert levels[3] == 15  # clipped to the top level
    assert len(set(levels.tolist())) > 8  # the other components still spread over the levels
    restored = token_unblob(INT4_CODEC.encode(token), 64)[0]
    rest = np.delete(np.arange(64), 3)
    assert np.corrcoef(restored[rest], token[0, rest])[0, 1] > 0.97


def test_decode_blobs_reads_int8_int4_and_pq_blobs_in_any_order(codec: ProductCodec) -> None:
    rng = np.random.default_rng(8)
    sets = [_unit_rows(rng, n, 64) for n in (3, 5, 2, 4, 1)]
    blobs = [
        INT4_CODEC.encode(sets[0]),
        token_blob(sets[1]),
        INT4_CODEC.encode(sets[2]),
        codec.encode(sets[3]),
        INT4_CODEC.encode(sets[4]),
    ]
    tokens, lengths = decode_blobs(blobs, 64)
    assert lengths.tolist() == [3, 5, 2, 4, 1]
    at = np.concatenate([[0], np.cumsum(lengths)])
    for i, blob in enumerate(blobs):
        assert np.array_equal(tokens[at[i] : at[i + 1]], token_unblob(blob, 64))
    assert INT4_CODEC.encode_many(sets) == [INT4_CODEC.encode(s) for s in sets]


def test_int4_refuses_a_dimension_it_cannot_describe() -> None:
    data = INT4_CODEC.encode(_unit_rows(np.random.default_rng(9), 3, 64))
    with pytest.raises(IndexMismatchError, match="cannot be read with dimension"):
        decode_blobs([data], 66)
    assert not INT4_CODEC.supports(8) and not INT4_CODEC.supports(63) and INT4_CODEC.supports(16)
