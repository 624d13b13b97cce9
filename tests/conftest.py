"""Shared fixtures. The default suite blocks network access except loopback."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import qa_service  # noqa: F401  (sets the offline environment before haystack is imported)
from qa_service.settings import AbstentionModel, Settings
from tests.postgres_server import LocalPostgres

# The abstention model is calibrated for the real embedding model; with the hashing encoder it is off.
NEVER_ABSTAIN = AbstentionModel(threshold=0.0)

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_FILE = next(SEEDS.glob("*.txt"))
_real_connect = socket.socket.connect


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths
    host = str(address[0])
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_loopback(address):
        raise RuntimeError(f"Network access blocked in tests: {address!r}")
    _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """One real PostgreSQL + pgvector on loopback for the session (tests get their own database)."""
    server = LocalPostgres().start()
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres: LocalPostgres) -> Iterator[str]:
    """A fresh, empty database; its connection pools are closed after the test."""
    from qa_service.store.postgres.pool import Postgres

    url = postgres.create_database("t_" + uuid.uuid4().hex[:12])
    yield url
    Postgres.close_shared(url)


@pytest.fixture
def fake_settings(tmp_path: Path) -> Settings:
    """Settings over a fresh index with the deterministic hashing encoder (no model)."""
    return hash_settings(tmp_path / "index")


def hash_settings(index_dir: Path) -> Settings:
    return Settings(index_dir=index_dir, embedding_model="hash:64", seeds_dir=SEEDS, abstention=NEVER_ABSTAIN)


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    target = tmp_path / "docs"
    target.mkdir()
    shutil.copy(SEED_FILE, target / SEED_FILE.name)
    return target


def index_seeds_for_cli(index_dir: Path, seeds: Path, **extra: str) -> dict[str, str]:
    """Indexes `seeds` with the hashing encoder through `qa-service index` in a child process; returns
    the QA_* environment that a `qa-service serve` child needs to answer from it."""
    env = {"QA_EMBEDDING_MODEL": "hash:64", "QA_INDEX_DIR": str(index_dir), "QA_SEEDS_DIR": str(seeds), **extra}
    done = subprocess.run(
        [sys.executable, "-m", "qa_service.cli", "index"], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return env


def real_settings(index_dir: Path) -> Settings:
    return Settings(index_dir=index_dir, seeds_dir=SEEDS)


@contextmanager
def serve_in_thread(app: object) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port, in a thread; yields its base URL."""
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def make_pdf(lines: list[str]) -> bytes:
    """A minimal valid one-page PDF showing `lines` in Helvetica (no PDF library needed)."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*")
    ops.append("ET")
    return pdf_with_content("\n".join(ops).encode("latin-1"))


def pdf_with_content(stream: bytes, filter_name: str | None = None) -> bytes:
    """A one-page PDF whose page content is `stream` (stored as given, e.g. already Flate-compressed
    when `filter_name` is "FlateDecode")."""
    filter_entry = f" /Filter /{filter_name}".encode() if filter_name else b""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + filter_entry + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
