"""A bounded (closed-loop) HTTP load generator for loopback benchmarks.

`concurrency` workers each keep one HTTP/1.1 keep-alive connection and send their next request only
when the previous answer has arrived, so the server is never offered more than `concurrency`
requests at once. Requests are plain bytes over asyncio streams: the generator shares the machine
with the server, so it must cost far less per request than any HTTP client library would.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _request(host: str, port: int, path: str, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    payload = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Reads one response (Content-Length framed); returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return int(status_line.split(" ", 2)[1])


async def _run(
    host: str,
    port: int,
    path: str,
    bodies: list[dict[str, Any]],
    concurrency: int,
    warmup: int,
    headers: dict[str, str],
) -> LoadResult:
    requests = [_request(host, port, path, b, headers) for b in bodies]
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for item in enumerate(requests):
        queue.put_nowait(item)
    latencies: list[float] = []
    errors = 0
    window: list[float] = []  # start of the measured window, end of the last measured request

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                try:
                    n, data = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if n == warmup:
                    window.append(time.perf_counter())
                started = time.perf_counter()
                try:
                    writer.write(data)
                    status = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                if n >= warmup:
                    latencies.append(time.perf_counter() - started)
                    window.append(time.perf_counter())
                    errors += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = (max(window) - min(window)) if len(window) > 1 else 0.0
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return LoadResult(
        concurrency=concurrency,
        requests=len(latencies),
        errors=errors,
        seconds=round(seconds, 3),
        throughput_rps=round(len(latencies) / seconds, 1) if seconds else 0.0,
        p50_ms=round(float(np.percentile(ms, 50)), 2),
        p95_ms=round(float(np.percentile(ms, 95)), 2),
        p99_ms=round(float(np.percentile(ms, 99)), 2),
    )


def run_load(
    url: str,
    bodies: list[dict[str, Any]],
    concurrency: int,
    warmup: int = 0,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Sends every body once (the first `warmup` are not measured) with `concurrency` in flight.

    `url` is `http://host:port/path`; only plain HTTP on loopback is supported.
    """
    if not url.startswith("http://"):
        raise ValueError("The load generator speaks plain http:// only.")
    if concurrency < 1 or len(bodies) <= warmup:
        raise ValueError("Need concurrency >= 1 and more bodies than warm-up requests.")
    hostport, _, path = url[len("http://") :].partition("/")
    host, _, port = hostport.partition(":")
    return asyncio.run(_run(host, int(port or 80), "/" + path, bodies, concurrency, warmup, headers or {}))
