"""Freed heap memory goes back to the system after an indexing batch."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from qa_service import indexer as indexer_module
from qa_service.memory import release_freed_memory
from qa_service.service import QAService, TextSource
from tests.conftest import hash_settings


def _resident_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_fragments_are_returned_to_the_system() -> None:
    # 200 MB of 10 KB blocks, every 50th kept alive: the heap is full of holes that glibc keeps.
    blocks = [bytearray(10_000) for _ in range(20_000)]
    for block in blocks:
        block[::4096] = b"x" * len(block[::4096])  # touch every page
    keep = blocks[::50]
    del blocks
    before = _resident_mb()
    assert release_freed_memory() is True
    after = _resident_mb()
    assert before - after > 100, (before, after)
    assert len(keep) == 400


def test_each_committed_batch_is_followed_by_a_trim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trims: list[int] = []
    service = QAService(hash_settings(tmp_path / "index").model_copy(update={"index_batch_chars": 100}))
    monkeypatch.setattr(indexer_module, "release_freed_memory", lambda: trims.append(service.store.generation))
    docs = [
        TextSource(source=f"d{i}.txt", text=f"Document {i} says the river {i} floods in spring. " * 3) for i in range(4)
    ]
    report = service.index_texts(docs)
    assert report.added == 4
    # one trim per committed generation, each after that generation was committed
    assert len(trims) == 4
    assert trims == sorted(trims) and trims[-1] == service.store.generation
