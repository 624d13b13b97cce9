"""New connections spread over worker processes by how many each holds (qa_service/api/workers.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa_service.api import workers
from qa_service.api.workers import BalancedSocket
from tests.conftest import index_seeds_for_cli


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()


def _worker(listener: socket.socket, shared: object, pid: int) -> BalancedSocket:
    """One worker's view of the shared listening socket: its own descriptor, the common board."""
    dup = listener.dup()
    sock = BalancedSocket(dup.family, dup.type, dup.proto, fileno=dup.detach(), shared=shared, pid=pid)
    sock.listen(64)  # as the event loop does when the worker starts serving: it joins the board
    sock.setblocking(False)
    return sock


def _drain(sock: BalancedSocket, held: list[socket.socket]) -> None:
    """What asyncio does when the listening socket is readable: accept until told there is nothing."""
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return
        held.append(conn)


def _connect(listener: socket.socket, n: int) -> list[socket.socket]:
    return [socket.create_connection(listener.getsockname()) for _ in range(n)]


def _other_live_pid() -> int:
    return os.getppid()  # alive while this test runs, and not this process


def _two_workers(listener: socket.socket) -> tuple[BalancedSocket, BalancedSocket]:
    shared = workers.board(2)
    return _worker(listener, shared, os.getpid()), _worker(listener, shared, _other_live_pid())


def _take_turns(a: BalancedSocket, b: BalancedSocket, n: int) -> tuple[list[socket.socket], list[socket.socket]]:
    """Both workers woken by the same connections, each in turn, until `n` are accepted."""
    held_a: list[socket.socket] = []
    held_b: list[socket.socket] = []
    deadline = time.monotonic() + 5
    while len(held_a) + len(held_b) < n and time.monotonic() < deadline:
        _drain(a, held_a)  # a plain accept loop would take every waiting connection here
        _drain(b, held_b)
    return held_a, held_b


def test_a_burst_of_connections_is_shared_evenly(listener: socket.socket) -> None:
    a, b = _two_workers(listener)
    clients = _connect(listener, 8)
    held_a, held_b = _take_turns(a, b, 8)
    assert (len(held_a), len(held_b)) == (4, 4)
    # Small responses go out at once (asyncio would not set it: the socket's proto is 0, not TCP).
    assert all(c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in [*held_a, *held_b])
    for conn in [*held_a, *held_b, *clients]:
        conn.close()


def test_closed_connections_stop_counting(listener: socket.socket) -> None:
    a, b = _two_workers(listener)
    clients = _connect(listener, 2)
    held_a, held_b = _take_turns(a, b, 2)
    assert a.open_connections() == 1 and b.open_connections() == 1
    held_a[0].close()
    assert a.open_connections() == 0
    more = _connect(listener, 1)
    _drain(b, held_b)  # b holds 1 against a's 0: it declines, a takes it
    _drain(a, held_a)
    assert len(held_a) == 2 and len(held_b) == 1
    for conn in [*held_a, *held_b, *clients, *more]:
        conn.close()


def test_a_lone_worker_accepts_everything(listener: socket.socket) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    shared = workers.board(2)
    gone = _worker(listener, shared, int(dead.stdout))  # its process has exited: not counted
    a = _worker(listener, shared, os.getpid())
    clients = _connect(listener, 6)
    held: list[socket.socket] = []
    deadline = time.monotonic() + 5
    while len(held) < 6 and time.monotonic() < deadline:
        _drain(a, held)
    assert len(held) == 6
    gone.close()
    for conn in [*held, *clients]:
        conn.close()


def test_a_stalled_worker_strands_no_client(listener: socket.socket) -> None:
    """The other worker is on the board but never accepts: after PATIENCE of declining, accept anyway."""
    a, stalled = _two_workers(listener)
    clients = _connect(listener, 2)
    held: list[socket.socket] = []
    started = time.monotonic()
    while len(held) < 2 and time.monotonic() - started < 5:
        _drain(a, held)
    assert len(held) == 2
    assert time.monotonic() - started >= workers.PATIENCE  # the second waited its turn first
    assert stalled.open_connections() == 0
    for conn in [*held, *clients]:
        conn.close()


def _connections_by_worker(pids: list[int], port: int) -> dict[int, int]:
    import psutil

    return {
        pid: sum(
            1
            for c in psutil.Process(pid).net_connections("tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )
        for pid in pids
    }


@pytest.mark.integration
def test_serve_spreads_keep_alive_connections_over_workers(tmp_path: Path, seeds_copy: Path) -> None:
    from qa_service.benchmark.servers import free_port, running

    env = index_seeds_for_cli(tmp_path / "index", seeds_copy)
    port = free_port()
    command = [sys.executable, "-m", "qa_service.cli", "serve", "--port", str(port), "--workers", "2"]
    with running(command, port, "/readyz", tmp_path / "server.log", env, timeout=120) as server:
        server.wait_for_workers(2, timeout=120)
        assert "Application startup complete" in server.log.read_text()  # workers log, as the parent does
        pids = server.worker_pids()
        for _ in range(3):  # connections opened together, as a load generator or a proxy's pool does
            clients = _connect_and_request(port, 8)
            counts = _connections_by_worker(pids, port)
            # (the children include multiprocessing's resource tracker, which holds none)
            assert sorted(n for n in counts.values() if n) == [4, 4], counts
            # each worker is told how many there are: its answer slots are its share of the cores
            assert all(_environment(pid).get("QA_WORKERS") == "2" for pid, n in counts.items() if n)
            for conn in clients:
                conn.close()
            time.sleep(0.3)


def _environment(pid: int) -> dict[str, str]:
    import psutil

    return dict(psutil.Process(pid).environ())


def _connect_and_request(port: int, n: int) -> list[socket.socket]:
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for conn in clients:
        conn.sendall(request)
    for conn in clients:
        conn.settimeout(30)
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
    return clients
