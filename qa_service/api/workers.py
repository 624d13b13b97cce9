"""`serve --workers N`: uvicorn's worker processes, with new connections spread by how many each holds.

uvicorn's workers share one listening socket, and an event loop accepts every connection that is
waiting whenever it wakes. A client that opens its keep-alive connections together (a load
generator, a proxy's upstream pool) mostly lands them all on one worker, which then serves them
alone while the other worker idles: measured with 8 connections opened at once, one worker held all
8 in half the runs, and throughput was that of one process.

Here each worker's listening socket is a `BalancedSocket`: before it accepts, it compares the
connections its worker holds with the counts the other live workers last published on a shared
board, and declines (the asyncio loop takes that as "nothing to accept") while it holds more than
the least-loaded one, so that one accepts instead. Declining is bounded: after `PATIENCE` seconds of
declining in a row it accepts anyway (a worker whose loop is stalled, or has died, never strands a
client). The check runs in the accept path, so workers run the asyncio event loop (uvloop accepts in
C, where no check can run); an answer is CPU-bound work in a thread, so the loop hardly matters.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from multiprocessing.reduction import DupFd
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Any

PATIENCE = 0.02  # seconds a worker declines in a row before it accepts regardless
_PAUSE = 0.0002  # a declining worker's pause, so that its loop does not spin while the other accepts
_STREAK_GAP = 0.002  # a decline this long after the previous one starts a new streak


def board(workers: int) -> SynchronizedArray[Any]:
    """The shared board: one (pid, open connections) pair a slot, room for restarts and added workers."""
    return multiprocessing.get_context("spawn").Array("q", 2 * (2 * workers + 2))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BalancedSocket(socket.socket):
    """A listening socket that accepts only while its worker holds no more connections than the others."""

    def __init__(self, *args: Any, shared: SynchronizedArray[Any], pid: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._board = shared
        self._pid = pid or os.getpid()
        self._slot: int | None = None
        self._open = 0
        self._streak_start = 0.0
        self._last_decline = -1.0

    @classmethod
    def wrap(cls, sock: socket.socket, shared: SynchronizedArray[Any]) -> BalancedSocket:
        """Takes over `sock`'s file descriptor (`sock` is left detached)."""
        return cls(sock.family, sock.type, sock.proto, fileno=sock.detach(), shared=shared)

    def __reduce__(self) -> Any:
        # Sent to a spawned worker: the descriptor travels as multiprocessing sends sockets, and the
        # worker rebuilds its own BalancedSocket around it, with the same board.
        return _rebuild, (DupFd(self.fileno()), self.family, self.type, self.proto, self._board)

    def open_connections(self) -> int:
        return self._open

    def _connection_closed(self) -> None:
        self._open -= 1
        self._publish(self._open)

    def _claim(self) -> int:
        """This worker's slot: its own, else a free one or one whose process has exited."""
        values = self._board
        with values.get_lock():
            pids = [values[2 * i] for i in range(len(values) // 2)]
            if self._pid in pids:
                slot = pids.index(self._pid)
            else:
                slot = next((i for i, p in enumerate(pids) if p == 0 or not _alive(p)), len(pids) - 1)
                values[2 * slot] = self._pid
            values[2 * slot + 1] = 0
        return slot

    def _publish(self, count: int) -> None:
        if self._slot is None:
            self._slot = self._claim()
        self._board[2 * self._slot + 1] = count

    def _least_loaded(self, mine: int) -> bool:
        values = self._board[:]
        others = [
            values[2 * i + 1]
            for i in range(len(values) // 2)
            if values[2 * i] not in (0, self._pid) and _alive(values[2 * i])
        ]
        return not others or mine <= min(others)

    def listen(self, backlog: int = socket.SOMAXCONN) -> None:
        # The event loop calls this as its worker starts serving: from then on the worker is on the
        # board, so the others leave it its share before it has accepted anything.
        super().listen(backlog)
        self._publish(self.open_connections())

    def accept(self) -> tuple[socket.socket, Any]:
        mine = self.open_connections()  # on the board already: published on listen, accept and close
        if not self._least_loaded(mine):
            now = time.monotonic()
            if now - self._last_decline > _STREAK_GAP:
                self._streak_start = now
            self._last_decline = now
            if now - self._streak_start < PATIENCE:
                time.sleep(_PAUSE)
                raise BlockingIOError("another worker holds fewer connections")
        fd, address = self._accept()  # type: ignore[attr-defined]  # what socket.accept does, with our class
        conn = _Connection(self.family, self.type, self.proto, fileno=fd, listener=self)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            conn.setblocking(True)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio sets this only on sockets whose proto says TCP, and uvicorn's listening socket
            # says 0: without it, Nagle's algorithm and delayed ACKs held each response ~40 ms.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._last_decline = -1.0
        self._open += 1
        self._publish(self._open)
        return conn, address


class _Connection(socket.socket):
    """An accepted connection that tells its listener when it closes, so the board counts it out at once."""

    def __init__(self, *args: Any, listener: BalancedSocket, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listener: BalancedSocket | None = listener

    def close(self) -> None:
        super().close()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener._connection_closed()


def _rebuild(fd: Any, family: int, kind: int, proto: int, shared: SynchronizedArray[Any]) -> BalancedSocket:
    return BalancedSocket(family, kind, proto, fileno=fd.detach(), shared=shared)


def create_worker_app() -> Any:
    """The app factory each worker process calls: logging as the parent set it up, then the app."""
    from qa_service.api.app import create_app
    from qa_service.api.observability import configure_logging
    from qa_service.settings import Settings

    settings = Settings()
    configure_logging(settings.log_json)
    return create_app(settings)


def serve(workers: int, **bind: Any) -> None:
    """Serves the app from `workers` processes (uvicorn's supervisor) over one `BalancedSocket`.
    Each worker builds its app from the environment."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "qa_service.api.workers:create_worker_app", factory=True, workers=workers, loop="asyncio", **bind
    )
    sock = BalancedSocket.wrap(config.bind_socket(), board(workers))
    Multiprocess(config, sockets=[sock]).run()
