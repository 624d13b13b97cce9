"""Compact storage of token vectors (late interaction needs a few dozen per sentence).

Three codes, named by `Settings.token_code`:
- `int8`: each unit token vector as int8, scaled by its own largest component (`dimension` bytes a token;
  the code of every index written before `int4`);
- `int4` (the default): each component as one of 16 levels, two to a byte (`dimension / 2` bytes a
  token). The levels are evenly spaced at +-0.5 .. +-7.5 steps, a token's step being 3 standard
  deviations of its components / 7.5 (the few larger components are clipped). No codebook: it works
  for any model of even dimension >= 16. On the SQuAD subset's token vectors it keeps cosine 0.993
  with the float vectors (pq96: 0.958; int8: 0.9999);
- `pqM` (`pq48`): product quantisation, the vector cut into M sub-vectors of `dimension / M` dims, each
  stored as the byte naming its nearest of 256 centroids (M bytes a token: 8x smaller than int8 at 384
  dims and M = 48). The codebook is trained once per embedding model on a fixed text sample and ships
  with the project (`qa_service.codebooks`); it never depends on the corpus being indexed.

A blob describes itself, so no blob can be read with the wrong code: an int8 blob is `n * dimension`
bytes; an int4 blob is the 4-byte `INT4_HEADER` and then `n * dimension / 2` bytes; a PQ blob is a 4-byte
header (`PQ_MAGIC` and the first 3 bytes of its codebook's hash) and then `n * M` bytes. With M >= 8
dividing `dimension`, and `dimension` even and >= 16, neither `4 + n * M` nor `4 + n * dimension / 2`
is a multiple of `dimension`, so no two read alike. Decoding a PQ blob gives the centroids'
concatenation (renormalised), an int4 blob its levels (renormalised): question tokens stay in float
against them (asymmetric scoring; the quantisation error is on one side only).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import numpy as np

from qa_service.errors import IndexMismatchError

PQ_MAGIC = 0xA7
HEADER = 4
INT8 = "int8"
INT4 = "int4"
INT4_HEADER = bytes([0xA4, 0x69, 0x34, 0x01])  # magic, "i4", version 1
INT4_CLIP = 3.0  # standard deviations of a token's components that reach the outermost level
# Each byte's two components (high nibble first) as level values (nibble - 7.5), the pair viewed as
# one float64 so that a token decodes with one 1-D `take` (10x faster than `take(..., axis=0)`).
_INT4_PAIRS = (
    np.stack([(np.arange(256) >> 4) - 7.5, (np.arange(256) & 15) - 7.5], axis=1).astype(np.float32).view(np.float64)
).reshape(-1)


def _unit(matrix: np.ndarray) -> np.ndarray:
    """`matrix` (float32, owned by the caller) with its rows scaled to unit length, in place: a
    third faster than `matrix / norm(matrix, axis=1)` on a few thousand token rows."""
    matrix /= np.maximum(np.sqrt(np.einsum("ij,ij->i", matrix, matrix)), 1e-12)[:, None]
    return matrix


def token_blob(tokens: np.ndarray) -> bytes:
    """Unit token vectors as int8, each row scaled by its own largest component (about 4x smaller
    than float32; `token_unblob` restores the directions, which is all late interaction uses)."""
    if tokens.size == 0:
        return b""
    scale = np.abs(tokens).max(axis=1, keepdims=True)
    return np.round(tokens / np.maximum(scale, 1e-12) * 127).astype(np.int8).tobytes()


def _int8_unblob(data: bytes, dimension: int) -> np.ndarray:
    matrix = np.frombuffer(data, dtype=np.int8).reshape(-1, dimension).astype(np.float32)
    return _unit(matrix)


class _HeaderedCodec:
    """What the codes with a header share: a blob is `header` + `codes(tokens)`'s bytes."""

    header: bytes

    def codes(self, tokens: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode(self, tokens: np.ndarray) -> bytes:
        if tokens.size == 0:
            return b""
        return self.header + self.codes(tokens).tobytes()

    def encode_many(self, token_sets: list[np.ndarray]) -> list[bytes]:
        """`encode` of each, in one pass over their concatenation (per-sentence calls cost a few
        small matrix products each)."""
        sizes = [len(t) for t in token_sets]
        if not any(sizes):
            return [b"" for _ in token_sets]
        codes = self.codes(np.concatenate([t for t in token_sets if len(t)]))
        out, at = [], 0
        for n in sizes:
            out.append(self.header + codes[at : at + n].tobytes() if n else b"")
            at += n
        return out


class Int4Codec(_HeaderedCodec):
    """16 evenly spaced levels per component, two components a byte (module docstring)."""

    name = INT4
    header = INT4_HEADER

    @staticmethod
    def supports(dimension: int) -> bool:
        return dimension >= 16 and dimension % 2 == 0

    def token_bytes(self, dimension: int) -> int:
        return dimension // 2

    def codes(self, tokens: np.ndarray) -> np.ndarray:
        """(n, dimension / 2) uint8: level k + 8 of each component (k = floor(x / step), clipped to
        -8..7, decoded as k + 0.5 steps), the even component in the high nibble."""
        t = np.asarray(tokens, dtype=np.float32)
        inverse = 7.5 / np.maximum(t.std(axis=1, keepdims=True) * INT4_CLIP, 1e-12)
        levels = np.floor(t * inverse)
        np.clip(levels, -8, 7, out=levels)
        levels += 8
        nibbles = levels.astype(np.uint8)
        return (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]

    def decode_payload(self, payload: bytes, dimension: int) -> np.ndarray:
        """Unit token vectors of a run of blobs' payloads (the scale is lost: only directions count)."""
        codes = np.frombuffer(payload, dtype=np.uint8)
        return _unit(np.take(_INT4_PAIRS, codes).view(np.float32).reshape(-1, dimension))


INT4_CODEC = Int4Codec()


@dataclass(frozen=True)
class ProductCodec(_HeaderedCodec):
    """A product quantiser: `centroids` is (M, 256, dimension / M) float32."""

    centroids: np.ndarray

    def __post_init__(self) -> None:
        m, k, sub = self.centroids.shape
        if k != 256 or m < 8:
            raise ValueError(f"A token codebook needs 256 centroids per sub-quantiser and M >= 8, not {m}x{k}.")
        # Decoding tables: each centroid as one element of `sub` floats (so a token decodes with one
        # 1-D `take`), the flat offset of each sub-quantiser's table, and each centroid's squared norm.
        flat = np.ascontiguousarray(self.centroids, dtype=np.float32).reshape(m * k, sub)
        element = {2: np.dtype(np.float64), 4: np.dtype(np.complex128)}.get(sub, np.dtype((np.void, 4 * sub)))
        object.__setattr__(self, "_packed", flat.view(element).reshape(-1))
        object.__setattr__(self, "_offsets", (np.arange(m, dtype=np.intp) * k)[None, :])
        object.__setattr__(self, "_square_norms", np.einsum("md,md->m", flat, flat))

    @property
    def m(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dimension(self) -> int:
        return int(self.centroids.shape[0] * self.centroids.shape[2])

    @property
    def digest(self) -> str:
        """sha256 of the codebook's bytes: what the index manifest records."""
        return hashlib.sha256(np.ascontiguousarray(self.centroids, dtype=np.float32).tobytes()).hexdigest()

    @property
    def name(self) -> str:
        return f"pq{self.m}:{self.digest[:16]}"

    @property
    def header(self) -> bytes:  # type: ignore[override]
        return bytes([PQ_MAGIC]) + bytes.fromhex(self.digest[:6])

    def supports(self, dimension: int) -> bool:
        return dimension == self.dimension

    def token_bytes(self, dimension: int) -> int:
        return self.m

    def decode_payload(self, payload: bytes, dimension: int) -> np.ndarray:
        if dimension != self.dimension:
            raise IndexMismatchError(f"Token codebook of dimension {self.dimension} read with dimension {dimension}.")
        return self.decode_codes(np.frombuffer(payload, dtype=np.uint8).reshape(-1, self.m))

    def codes(self, tokens: np.ndarray) -> np.ndarray:
        """(n, M) uint8: each sub-vector's nearest centroid, by FAISS's C++ encoder (5x the numpy
        argmax of x.c - |c|^2 / 2 it replaced; the same codes but for exact ties)."""
        quantizer = self.__dict__.get("_faiss")
        if quantizer is None:
            import faiss

            m, _, sub = self.centroids.shape
            quantizer = faiss.ProductQuantizer(m * sub, m, 8)
            flat = np.ascontiguousarray(self.centroids, dtype=np.float32).ravel()
            faiss.copy_array_to_vector(flat, quantizer.centroids)
            object.__setattr__(self, "_faiss", quantizer)
        codes: np.ndarray = quantizer.compute_codes(np.ascontiguousarray(tokens, dtype=np.float32))
        return codes

    def decode_codes(self, codes: np.ndarray) -> np.ndarray:
        """Unit token vectors of (n, M) codes: the chosen centroids concatenated, normalised. One
        `take` of whole centroids (multi-axis fancy indexing of the (M, 256, sub) array was about 10x
        slower), and norms summed from the centroids' own squared norms."""
        index = codes.astype(np.intp) + self._offsets  # type: ignore[attr-defined]
        tokens = np.take(self._packed, index).view(np.float32).reshape(len(codes), self.dimension)  # type: ignore[attr-defined]
        norms = np.sqrt(np.take(self._square_norms, index).sum(axis=1, dtype=np.float32))  # type: ignore[attr-defined]
        tokens /= np.maximum(norms, 1e-12)[:, None]
        return tokens


_registry: dict[bytes, ProductCodec] = {}
_registry_lock = threading.Lock()


def register(codec: ProductCodec) -> ProductCodec:
    """Make `codec`'s blobs decodable in this process (shipped codebooks register when first read)."""
    with _registry_lock:
        _registry[codec.header] = codec
    return codec


Codec = Int4Codec | ProductCodec


def _codec_of(header: bytes) -> Codec:
    if header == INT4_HEADER:
        return INT4_CODEC
    codec = _registry.get(header)
    if codec is None:
        from qa_service.codebooks import load_shipped

        load_shipped()
        codec = _registry.get(header)
    if codec is None:
        raise IndexMismatchError(
            f"The index holds token vectors coded with codebook {header[1:].hex()}…, which this installation "
            "does not ship; re-index with QA_TOKEN_CODE=int4 or install the version that wrote it."
        )
    return codec


def resolve_name(name: str) -> Codec:
    """The codec an index's manifest names (`int4`, `pq48:<hash prefix>`); refused when none is known."""
    if name == INT4:
        return INT4_CODEC
    prefix = name.partition(":")[2]
    if not name.startswith("pq") or len(prefix) < 6:
        raise IndexMismatchError(f"Unknown token code {name!r}.")
    codec = _codec_of(bytes([PQ_MAGIC]) + bytes.fromhex(prefix[:6]))
    if codec.name != name:
        raise IndexMismatchError(f"Token code {name!r} names a codebook this installation does not ship.")
    return codec


def blob_code(data: bytes, dimension: int) -> str:
    """The code a blob was written with: `int8`, a codec's `name`, or '' for an empty blob."""
    if not data:
        return ""
    if len(data) % dimension == 0:
        return INT8
    return _codec_of(data[:HEADER]).name


def token_unblob(data: bytes, dimension: int) -> np.ndarray:
    """Unit token vectors of one blob, whichever code wrote it."""
    return decode_blobs([data], dimension)[0]


def decode_blobs(blobs: list[bytes], dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, lengths) of non-empty blobs: their unit token vectors stacked in order, and how many
    each has. Runs of blobs in one code decode in one call."""
    lengths = np.zeros(len(blobs), dtype=np.int64)
    parts: list[np.ndarray] = []
    run: list[bytes] = []
    run_codec: Codec | None = None  # None: int8

    def flush() -> None:
        if run:
            payload = b"".join(run)
            parts.append(
                _int8_unblob(payload, dimension) if run_codec is None else run_codec.decode_payload(payload, dimension)
            )
            run.clear()

    for i, data in enumerate(blobs):
        codec = None if len(data) % dimension == 0 else _codec_of(data[:HEADER])
        if codec is not run_codec:
            flush()
            run_codec = codec
        if codec is None:
            run.append(data)
            lengths[i] = len(data) // dimension
            continue
        if not codec.supports(dimension) or (len(data) - HEADER) % codec.token_bytes(dimension):
            raise IndexMismatchError(f"Token vectors coded as {codec.name} cannot be read with dimension {dimension}.")
        run.append(data[HEADER:])
        lengths[i] = (len(data) - HEADER) // codec.token_bytes(dimension)
    flush()
    tokens = np.concatenate(parts) if parts else np.zeros((0, dimension), dtype=np.float32)
    return tokens, lengths
