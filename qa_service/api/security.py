"""API keys (constant-time comparison) and per-client token-bucket rate limiting."""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time

from fastapi import Request
from pydantic import SecretStr

from qa_service.errors import QAServiceError


class AuthenticationError(QAServiceError):
    code = "unauthorized"
    http_status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": "Bearer"}


class ForbiddenError(QAServiceError):
    code = "forbidden"
    http_status = 403


class RateLimitedError(QAServiceError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many requests; retry after {retry_after} s.")
        self.headers = {"Retry-After": str(retry_after)}


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def check_key(presented: str | None, *accepted: SecretStr | None) -> None:
    """Pass if `presented` equals one of the accepted keys (each compared in constant time)."""
    if presented is None:
        raise AuthenticationError("Missing API key: send 'Authorization: Bearer <key>'.")
    matches = [hmac.compare_digest(presented.encode(), key.get_secret_value().encode()) for key in accepted if key]
    if not any(matches):
        raise AuthenticationError("Invalid API key.")


def client_identity(request: Request) -> str:
    """Rate-limit bucket: a hash of the presented key, else the client address (keys are never stored)."""
    token = bearer_token(request)
    if token:
        return "key:" + hashlib.sha256(token.encode()).hexdigest()[:16]
    return "ip:" + (request.client.host if request.client else "unknown")


class RateLimiter:
    """Token bucket per identity: `burst` requests at once, refilled at `per_minute`."""

    def __init__(self, per_minute: int, burst: int, max_clients: int = 100_000) -> None:
        self.rate, self.burst, self.max_clients = per_minute / 60.0, float(burst), max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, identity: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, stamp = self._buckets.get(identity, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens < 1.0:
                self._buckets[identity] = (tokens, now)
                raise RateLimitedError(max(1, math.ceil((1.0 - tokens) / self.rate)))
            self._buckets[identity] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_clients:  # forget the idlest clients
                for key in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: self.max_clients // 10]:
                    del self._buckets[key]
