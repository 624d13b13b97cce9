"""Which code an index's token vectors are in (`qa_service.quantize`), kept as meta key `token_code`.

An index holds one code. Indexes written before product quantisation have no key: they are int8
(and stay int8 when the default is int4).
A write whose sentences come in another code than the index's is refused (mixed codes), unless the
index holds no other sentence once the write's deletes are done (a full re-index adopts the new
code). The Indexer transcodes to the store's code first (`transcode`), so an int8 index keeps taking
documents when the settings ask for another code.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qa_service.errors import IndexMismatchError
from qa_service.quantize import INT8, Codec, blob_code, decode_blobs, resolve_name, token_blob
from qa_service.store.records import SourceDocument

META_KEY = "token_code"


def batch_code(upserts: list[SourceDocument], dimension: int) -> str:
    """The one code of the upserts' token blobs ('' when they carry none); mixed codes are refused."""
    codes = {blob_code(b, dimension) for doc in upserts for b in doc.sentence_tokens} - {""}
    if len(codes) > 1:
        raise IndexMismatchError(f"Token vectors in more than one code in one write: {sorted(codes)}.")
    return codes.pop() if codes else ""


def settle(index_code: str | None, has_other_sentences: Callable[[], bool], batch: str) -> str | None:
    """The code to record after a write of `batch` blobs (None: unchanged), or IndexMismatchError."""
    current = index_code or INT8
    if not batch:
        return None
    if batch == current:
        return None if index_code else current
    if has_other_sentences():
        raise IndexMismatchError(
            f"This index stores token vectors as {current}; the write brings {batch}. Re-index into an empty "
            f"index (or set QA_TOKEN_CODE to {current.split(':')[0]})."
        )
    return batch


def check_readable(code: str | None) -> None:
    """Refuse to open an index whose code this installation cannot decode."""
    if code and code != INT8:
        resolve_name(code)


def transcode(blobs: list[bytes], target: str, dimension: int) -> list[bytes]:
    """`blobs` re-encoded in `target` (an index's code); unchanged when they already are."""
    if not target or all(blob_code(b, dimension) in ("", target) for b in blobs):
        return blobs
    codec: Codec | None = None if target == INT8 else resolve_name(target)
    tokens, lengths = decode_blobs(blobs, dimension)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    parts = [tokens[offsets[i] : offsets[i + 1]] for i in range(len(blobs))]
    return codec.encode_many(parts) if codec else [token_blob(p) for p in parts]
