"""Start a server as a child process on a free loopback port, wait until ready, stop it, read its memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        return _children(self.process.pid)

    def wait_for_workers(self, workers: int, timeout: float = 600) -> None:
        """Waits until `workers` worker processes have finished starting up (their log lines say so):
        the first ready worker answers the readiness probe while the others may still be loading, and
        connections opened before they listen all go to it."""
        deadline = time.monotonic() + timeout
        while self.log.read_text(errors="replace").count("Application startup complete") < workers:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{workers} workers not ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def peak_rss_mb(self) -> float:
        """VmHWM of the server process and its children (uvicorn workers), summed."""
        total = 0.0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) / 1024
            except OSError:
                continue
        return round(total, 1)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    kids = [int(x) for x in text.split()]
    return kids + [g for k in kids for g in _children(k)]


@contextmanager
def running(
    command: list[str],
    port: int,
    health_path: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    *,
    base_env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """Runs `command` (which must listen on `port`) until the block ends; fails with its log tail if it
    exits or is not healthy within `timeout` seconds. Its environment is `base_env` (default: this
    process's) with `env` on top."""
    out = log.open("wb")
    environment = {**(os.environ if base_env is None else base_env), **(env or {})}
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environment, start_new_session=True)
    server = Server(process, port, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(server.base_url + health_path, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} not healthy after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        out.close()
