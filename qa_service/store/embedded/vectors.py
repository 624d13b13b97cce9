"""A FAISS index keyed by our int64 row ids, as an immutable base plus a small delta.

A generation's vectors are three files:

* `<kind>-<gen>.faiss`: the **base**, an index of the configured type (`QA_FAISS_INDEX`). It is never
  changed in place: a generation that only adds or deletes a few documents hard-links the previous
  generation's file under its own name (no copy, no write), and shares the loaded index in memory.
* `<kind>-<gen>.faiss.delta`: the **delta**, an exact `Flat` index of the vectors added since the base
  was written (absent when empty). Small by construction: past `DELTA_MAX` vectors it is merged into
  a new base.
* `<kind>-<gen>.faiss.tombstones.npy`: base ids deleted since (absent when none). While they are
  few (`POSTFILTER_MAX`), a search asks the base for that many more results and drops them; past
  that, FAISS skips them inside the search (an `IDSelector`), so a million-vector HNSW base never
  pays a rebuild for deleted rows.

So deleting or replacing a document costs the delta and the tombstones, not a rewrite of the whole
index (seconds at a million sentences), and a reader that loads a generation another process
committed reuses the base it already holds when the file is the same (same inode).
Indexes written before the delta existed are a base with no delta: they load as they are.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from qa_service.errors import IndexMismatchError, InvalidInputError
from qa_service.parallel_map import available_cores

# Searches run single-threaded (OMP_NUM_THREADS=1, see qa_service/__init__); adding and training
# are bulk work and use every core the process may run on (a container's CPU set, not the host's
# count), in the calling thread only (OpenMP settings are per thread).
# Past this many vectors the delta is merged into a new base: exact search over 10,000 vectors of
# 384 floats is well under a millisecond, and a merge (clone + add + write) is paid once per that many.
DELTA_MAX = 10_000
DELTA_SUFFIX = ".delta"
TOMBSTONE_SUFFIX = ".tombstones.npy"
# Up to this many tombstones, a search fetches k + their number from the base and drops them
# afterwards: the IDSelector made every HNSW search 1.2-1.5x slower (at 1,000,000 vectors with 12
# deleted rows, one thread: 5.97 against 3.95 ms at efSearch 512, 34.1 against 28.5 at 4096), while
# asking a graph search for a few more results costs next to nothing below its efSearch.
POSTFILTER_MAX = 64


def _flat(dimension: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


class VectorIndex:
    """Inner-product search over L2-normalised vectors (cosine similarity)."""

    def __init__(
        self,
        index: faiss.Index,
        spec: str,
        tombstones: set[int] | None = None,
        delta: faiss.Index | None = None,
        base_file: tuple[Path, int, int] | None = None,
    ) -> None:
        self.index = index  # the base: shared between copies, never modified once it has a file
        self.spec = spec
        self.tombstones: set[int] = tombstones or set()
        self.delta: Any = delta if delta is not None else _flat(int(index.d))  # IndexIDMap2(IndexFlatIP)
        self.base_file = base_file  # (path, device, inode) of the file holding the base, once saved
        # (IDSelectorNot, the IDSelectorBatch inside it): one tuple, so that concurrent first
        # searches never pair a selector with another's (garbage-collected) inner batch.
        self._selector: tuple[faiss.IDSelector, faiss.IDSelector] | None = None

    @classmethod
    def create(cls, spec: str, dimension: int) -> VectorIndex:
        return cls(_new_base(spec, dimension), spec)

    @property
    def dimension(self) -> int:
        return int(self.index.d)

    @property
    def size(self) -> int:
        """Live vectors (excluding tombstones)."""
        return int(self.index.ntotal) + int(self.delta.ntotal) - len(self.tombstones)

    @property
    def delta_size(self) -> int:
        return int(self.delta.ntotal)

    def copy(self) -> VectorIndex:
        """A copy to write the next generation into: the base is shared (writes never touch it),
        the delta and tombstones are copied."""
        return VectorIndex(self.index, self.spec, set(self.tombstones), faiss.clone_index(self.delta), self.base_file)

    # --- writing ---------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add to the delta, merged into a new base once it holds more than `DELTA_MAX` vectors."""
        if len(ids) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.delta.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
        if self.delta.ntotal > DELTA_MAX:
            self.merge()

    def merge(self) -> None:
        """Fold the delta into a new base (a clone of the old one, which readers may still hold)."""
        if self.delta.ntotal == 0:
            return
        ids = faiss.vector_to_array(self.delta.id_map).astype(np.int64)
        vectors = self.delta.index.reconstruct_n(0, int(self.delta.ntotal))
        base = faiss.clone_index(self.index) if self.index.ntotal else _new_base(self.spec, self.dimension)
        _train_and_add(base, self.spec, ids, vectors)
        self.index, self.delta, self.base_file = base, _flat(self.dimension), None
        self._forget_search_state()

    def remove(self, ids: np.ndarray) -> None:
        """Delete: from the delta outright, from the base as tombstones."""
        if len(ids) == 0:
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        in_delta = set()
        if self.delta.ntotal:
            delta_ids = faiss.vector_to_array(self.delta.id_map)
            in_delta = set(np.intersect1d(ids, delta_ids).tolist())
            if in_delta:
                self.delta.remove_ids(faiss.IDSelectorBatch(np.array(sorted(in_delta), dtype=np.int64)))
        self.tombstones.update(int(i) for i in ids if int(i) not in in_delta)
        self._forget_search_state()

    # --- searching -------------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-k (id, score) for one query vector over base and delta."""
        if k <= 0 or self.size <= 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        hits: list[tuple[int, float]] = []
        if self.index.ntotal:
            extra = len(self.tombstones) if len(self.tombstones) <= POSTFILTER_MAX else 0
            fetch = min(int(self.index.ntotal), k + extra)
            scores, ids = self.index.search(q, fetch, params=None if extra else self._search_params())
            hits += [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        if self.delta.ntotal:
            scores, ids = self.delta.search(q, min(int(self.delta.ntotal), k))
            hits += [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
            hits.sort(key=lambda h: -h[1])
        if self.tombstones:  # dropped here: fetched on purpose, or from a base that ignores the selector
            hits = [h for h in hits if h[0] not in self.tombstones]
        return hits[:k]

    def _search_params(self) -> faiss.SearchParameters | None:
        """Per-search parameters hiding the tombstones (None without any). FAISS's IDMap swaps the
        parameters' selector during a search, so each search gets its own parameters object around
        the shared, immutable selector."""
        if not self.tombstones:
            return None
        selector = self._selector
        if selector is None:
            batch = faiss.IDSelectorBatch(np.array(sorted(self.tombstones), dtype=np.int64))
            selector = self._selector = (faiss.IDSelectorNot(batch), batch)
        base = faiss.downcast_index(self.index.index)  # type: ignore[attr-defined]
        params: Any  # faiss's stubs lack SearchParametersHNSW
        if hasattr(base, "hnsw"):
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = base.hnsw.efSearch
        elif hasattr(base, "nprobe"):
            params = faiss.SearchParametersIVF()
            params.nprobe = base.nprobe
        else:
            params = faiss.SearchParameters()
        params.sel = selector[0]
        return params

    def _forget_search_state(self) -> None:
        self._selector = None

    def set_search_params(self, nprobe: int, ef_search: int) -> None:
        """The base's search knobs (shared by every snapshot of a store, which all use the same)."""
        base = faiss.downcast_index(self.index.index)  # type: ignore[attr-defined]
        if hasattr(base, "nprobe"):
            base.nprobe = nprobe
        if hasattr(base, "hnsw"):
            base.hnsw.efSearch = ef_search

    # --- files -----------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write `path` (base), `path.delta` and `path.tombstones.npy` atomically, each a temporary
        file, fsync, then rename. An unchanged base is hard-linked from the file it came from."""
        if not self._link_base(path):
            _write_atomically(path, lambda tmp: faiss.write_index(self.index, str(tmp)))
        stat = path.stat()
        self.base_file = (path, stat.st_dev, stat.st_ino)
        delta = path.with_name(path.name + DELTA_SUFFIX)
        if self.delta.ntotal:
            _write_atomically(delta, lambda tmp: faiss.write_index(self.delta, str(tmp)))
        else:  # a file left by a failed write of this generation must not add sentences
            delta.unlink(missing_ok=True)
        tomb = path.with_name(path.name + TOMBSTONE_SUFFIX)
        if self.tombstones:
            ids = np.array(sorted(self.tombstones), dtype=np.int64)
            _write_atomically(tomb, lambda tmp: np.save(tmp, ids), suffix=".tmp.npy")
        else:  # a file left by a failed write of this generation must not hide its sentences
            tomb.unlink(missing_ok=True)

    def _link_base(self, path: Path) -> bool:
        """Give `path` the base's file without writing it, if that file is still the base's."""
        if self.base_file is None:
            return False
        source, device, inode = self.base_file
        try:
            stat = source.stat()
        except OSError:
            return False
        if (stat.st_dev, stat.st_ino) != (device, inode):
            return False
        if source == path:
            return True
        tmp = path.with_name(path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here: copy
            shutil.copyfile(source, tmp)
            _fsync_file(tmp)
        os.replace(tmp, path)
        return True

    @property
    def parts(self) -> list[int]:
        """What the generation's files hold beyond the base: [delta vectors, tombstones]. The store
        records it with the generation, so a reader racing a cleanup cannot take a base whose delta
        or tombstones went missing for a whole generation."""
        return [int(self.delta.ntotal), len(self.tombstones)]

    @classmethod
    def load(
        cls, path: Path, spec: str, reuse: VectorIndex | None = None, parts: list[int] | None = None
    ) -> VectorIndex:
        """The generation in `path` (+ delta and tombstones); the base of `reuse` is taken as it is
        when `path` is the same file (a generation that only changed the delta). `parts`, when the
        generation recorded them, must match what was read (else the files changed underneath)."""
        stat = path.stat()
        key = (stat.st_dev, stat.st_ino)
        if reuse is not None and reuse.base_file is not None and reuse.base_file[1:] == key:
            base = reuse.index
        else:
            base = faiss.read_index(str(path))
        delta_path = path.with_name(path.name + DELTA_SUFFIX)
        delta = faiss.read_index(str(delta_path)) if delta_path.exists() else None
        tomb = path.with_name(path.name + TOMBSTONE_SUFFIX)
        tombstones = {int(i) for i in np.load(tomb)} if tomb.exists() else set()
        loaded = cls(base, spec, tombstones, delta, (path, *key))
        if parts is not None and loaded.parts != list(parts):
            raise IndexMismatchError(f"The vector files of {path.name} changed while they were read.")
        return loaded


def _new_base(spec: str, dimension: int) -> faiss.Index:
    try:
        base = faiss.index_factory(dimension, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise InvalidInputError(
            f"Invalid FAISS index spec {spec!r} (QA_FAISS_INDEX); try Flat, HNSW32 or IVF256,Flat."
        ) from exc
    return faiss.IndexIDMap2(base)


def _train_and_add(index: faiss.Index, spec: str, ids: np.ndarray, vectors: np.ndarray) -> None:
    """Train `index` if it needs it, then add: bulk work, on every core (searches stay on one)."""
    if not index.is_trained:
        needed = _training_minimum(index)
        if len(vectors) < needed:
            raise InvalidInputError(
                f"FAISS index {spec!r} needs at least {needed} vectors to train, got {len(vectors)}; "
                "use QA_FAISS_INDEX=Flat for small corpora."
            )
    faiss.omp_set_num_threads(available_cores())
    try:
        if not index.is_trained:
            index.train(vectors)
        index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
    finally:
        faiss.omp_set_num_threads(1)


def build(spec: str, dimension: int, ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
    """A new index holding `vectors` in its base (a rebuild: no delta, no tombstones)."""
    index = VectorIndex.create(spec, dimension)
    if len(ids):
        _train_and_add(index.index, spec, ids, np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _training_minimum(index: faiss.Index) -> int:
    base = faiss.downcast_index(getattr(index, "index", index))
    return int(getattr(base, "nlist", 1))


def _write_atomically(path: Path, write: object, suffix: str = ".tmp") -> None:
    tmp = path.with_name(path.name + suffix)
    write(tmp)  # type: ignore[operator]
    _fsync_file(tmp)
    os.replace(tmp, path)


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
