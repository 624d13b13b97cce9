"""Kill the indexer process mid-write: the previous index must still load and answer."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa_service.service import QAService
from qa_service.settings import Settings
from tests.conftest import hash_settings

QUESTION = "How many troops withdrew from Kherson?"


def run_indexer(docs: Path, index_dir: Path, failpoint: str | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "QA_EMBEDDING_MODEL": "hash:64", "QA_INDEX_DIR": str(index_dir)}
    if failpoint:
        env["QA_FAILPOINT"] = failpoint
    return subprocess.Popen(
        [sys.executable, "-m", "qa_service.cli", "index", str(docs)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def settings_for(index_dir: Path) -> Settings:
    return hash_settings(index_dir)


@pytest.mark.parametrize("failpoint", ["mid_write", "before_commit", "after_commit"])
def test_killed_indexer_leaves_a_loadable_index(tmp_path: Path, seeds_copy: Path, failpoint: str) -> None:
    index_dir = tmp_path / "index"
    assert run_indexer(seeds_copy, index_dir).wait(timeout=120) == 0
    baseline = QAService(settings_for(index_dir))
    sentences_before = baseline.store.count_documents()
    assert not baseline.ask(QUESTION).abstained
    baseline.store.db.close()

    (seeds_copy / "new.txt").write_text("Penguins cannot fly. They swim very well in cold water.")
    proc = run_indexer(seeds_copy, index_dir, failpoint)
    assert proc.wait(timeout=120) == -signal.SIGKILL

    service = QAService(settings_for(index_dir))  # loads, and its consistency checks pass
    committed = failpoint == "after_commit"
    assert service.store.count_documents() == sentences_before + (2 if committed else 0)
    answer = service.ask(QUESTION)
    assert "20,000 to 30,000" in answer.citations[0].text
    assert not any(p.name.endswith(".tmp") for p in index_dir.iterdir())
    stray = [
        p for p in index_dir.glob("*.faiss") if not p.name.endswith(f"-{service.store.manifest().generation}.faiss")
    ]
    assert stray == []
    service.store.db.close()

    assert run_indexer(seeds_copy, index_dir).wait(timeout=120) == 0  # a clean re-run completes the job
    assert QAService(settings_for(index_dir)).store.count_documents() == sentences_before + 2


@pytest.mark.slow
def test_kill_at_arbitrary_moments(tmp_path: Path) -> None:
    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(400):
        (docs / f"doc{i:03}.txt").write_text(
            " ".join(f"Document {i} sentence {j} mentions item{i}x{j}." for j in range(60))
        )
    index_dir = tmp_path / "index"
    for delay in (1.5, 3.0, 4.5):
        proc = run_indexer(docs, index_dir)
        time.sleep(delay)
        proc.kill()
        proc.wait(timeout=60)
        service = QAService(settings_for(index_dir))  # raises if the index were inconsistent
        count = service.store.count_documents()
        assert count % 60 == 0  # only whole documents are ever visible
        service.store.db.close()
    assert run_indexer(docs, index_dir).wait(timeout=300) == 0
    assert QAService(settings_for(index_dir)).store.count_documents() == 400 * 60
