"""The load generator against a small threaded HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from qa_service.benchmark.loadgen import run_load


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects
    seen: ClassVar[list[dict[str, object]]] = []
    in_flight = 0
    max_in_flight = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            type(self).in_flight += 1
            type(self).max_in_flight = max(self.max_in_flight, self.in_flight)
            self.seen.append(body)
        payload = b'{"ok": true}'
        self.send_response(500 if body.get("fail") else 200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        with self.lock:
            type(self).in_flight -= 1

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen, _Handler.in_flight, _Handler.max_in_flight = [], 0, 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/ask"
    httpd.shutdown()


def test_every_body_sent_once_and_warmup_not_measured(server: str) -> None:
    bodies = [{"n": i} for i in range(60)]
    result = run_load(server, bodies, concurrency=4, warmup=10)
    assert sorted(b["n"] for b in _Handler.seen) == list(range(60))
    assert result.requests == 50 and result.errors == 0
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms
    assert result.throughput_rps > 0
    assert _Handler.max_in_flight <= 4  # bounded: never more than `concurrency` outstanding


def test_non_200_answers_count_as_errors(server: str) -> None:
    bodies = [{"fail": i % 5 == 0} for i in range(20)]
    assert run_load(server, bodies, concurrency=2).errors == 4


def test_rejects_what_it_cannot_measure(server: str) -> None:
    with pytest.raises(ValueError):
        run_load("https://127.0.0.1:1/x", [{}], concurrency=1)
    with pytest.raises(ValueError):
        run_load(server, [{}], concurrency=1, warmup=1)
