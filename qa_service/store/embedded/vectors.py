"""A FAISS index keyed by our int64 row ids, with tombstones where the index type cannot delete."""

from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np

from qa_service.errors import InvalidInputError

# Searches run single-threaded (OMP_NUM_THREADS=1, see qa_service/__init__); adding and training
# are bulk work and use every core, in the calling thread only (OpenMP settings are per thread).
_BULK_THREADS = os.cpu_count() or 1


class VectorIndex:
    """Inner-product search over L2-normalised vectors (cosine similarity)."""

    def __init__(self, index: faiss.Index, spec: str, tombstones: set[int] | None = None) -> None:
        self.index = index
        self.spec = spec
        self.tombstones: set[int] = tombstones or set()

    @classmethod
    def create(cls, spec: str, dimension: int) -> VectorIndex:
        try:
            base = faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise InvalidInputError(
                f"Invalid FAISS index spec {spec!r} (QA_FAISS_INDEX); try Flat, HNSW32 or IVF256,Flat."
            ) from exc
        return cls(faiss.IndexIDMap2(base), spec)

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    @property
    def size(self) -> int:
        """Live vectors (excluding tombstones)."""
        return int(self.index.ntotal) - len(self.tombstones)

    def copy(self) -> VectorIndex:
        return VectorIndex(faiss.clone_index(self.index), self.spec, set(self.tombstones))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        faiss.omp_set_num_threads(_BULK_THREADS)
        try:
            self._add(ids, vectors)
        finally:
            faiss.omp_set_num_threads(1)

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if not self.index.is_trained:
            needed = _training_minimum(self.index)
            if len(vectors) < needed:
                raise InvalidInputError(
                    f"FAISS index {self.spec!r} needs at least {needed} vectors to train, got {len(vectors)}; "
                    "use QA_FAISS_INDEX=Flat for small corpora."
                )
            self.index.train(vectors)
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        try:
            self.index.remove_ids(faiss.IDSelectorBatch(ids))
        except RuntimeError:  # e.g. HNSW: keep the vector, hide it from results
            self.tombstones.update(int(i) for i in ids)

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-k (id, score) for one query vector."""
        if self.index.ntotal == 0 or k <= 0:
            return []
        fetch = min(int(self.index.ntotal), k + len(self.tombstones))
        scores, ids = self.index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), fetch)
        hits = [
            (int(i), float(s))
            for i, s in zip(ids[0], scores[0], strict=True)
            if i >= 0 and int(i) not in self.tombstones
        ]
        return hits[:k]

    def set_search_params(self, nprobe: int, ef_search: int) -> None:
        base = faiss.downcast_index(self.index.index)  # type: ignore[attr-defined]
        if hasattr(base, "nprobe"):
            base.nprobe = nprobe
        if hasattr(base, "hnsw"):
            base.hnsw.efSearch = ef_search

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file, fsync, then rename over `path`."""
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        _fsync_file(tmp)
        os.replace(tmp, path)
        tomb = path.with_name(path.name + ".tombstones.npy")
        if self.tombstones:
            tmp_tomb = tomb.with_name(tomb.name + ".tmp.npy")
            np.save(tmp_tomb, np.array(sorted(self.tombstones), dtype=np.int64))
            _fsync_file(tmp_tomb)
            os.replace(tmp_tomb, tomb)
        else:  # a file left by a failed write of this generation must not hide its sentences
            tomb.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path, spec: str) -> VectorIndex:
        index = faiss.read_index(str(path))
        tomb = path.with_name(path.name + ".tombstones.npy")
        tombstones = {int(i) for i in np.load(tomb)} if tomb.exists() else set()
        return cls(index, spec, tombstones)


def _training_minimum(index: faiss.Index) -> int:
    base = faiss.downcast_index(getattr(index, "index", index))
    return int(getattr(base, "nlist", 1))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
