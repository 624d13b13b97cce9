"""Handing freed heap memory back to the operating system.

glibc's allocator keeps what Python and the native libraries free in its arenas: after a batch of
indexing (tens of thousands of documents, token blobs and float arrays) hundreds of megabytes stay
resident although nothing uses them, and the next batch's allocations land elsewhere. The indexer
trims after every committed batch, so a long bulk load's peak resident memory does not creep up with
the fragments of every batch before it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_freed_memory() -> bool:
    """Return the allocator's free pages to the system (`malloc_trim`); False where the C library
    has no such call (musl, macOS): there it is a no-op."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
