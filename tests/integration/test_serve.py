"""What `make run` does, as a user would: index the seeds, start the server, curl the chat endpoint."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import SEEDS

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_index_serve_and_chat_over_http(tmp_path: Path) -> None:
    env = {**os.environ, "QA_INDEX_DIR": str(tmp_path / "index")}
    cli = [sys.executable, "-m", "qa_service.cli"]
    subprocess.run([*cli, "index", str(SEEDS)], env=env, check=True, capture_output=True, timeout=300)
    port = free_port()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    assert json.load(response)["documents"] == 1
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.5)
        request = urllib.request.Request(
            f"{base}/v1/chat",
            data=json.dumps({"message": "How many troops withdrew from Kherson?"}).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        assert "20,000 to 30,000" in body["citations"][0]["text"] and body["conversation_id"]
    finally:
        server.terminate()
        server.wait(timeout=30)
