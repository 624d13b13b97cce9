"""API keys (constant-time comparison) and per-client token-bucket rate limiting."""

from __future__ import annotations

import hmac
import ipaddress
import math
import threading
import time
from functools import lru_cache

from fastapi import Request
from pydantic import SecretStr

from qa_service.errors import AuthenticationError as AuthenticationError  # re-exported: they lived here
from qa_service.errors import ForbiddenError as ForbiddenError
from qa_service.errors import QAServiceError


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


def verified_key(presented: str | None, *accepted: SecretStr | None) -> str | None:
    """The accepted key `presented` equals (constant time), else None."""
    if presented is None:
        return None
    for key in accepted:
        if key is not None and hmac.compare_digest(presented.encode(), key.get_secret_value().encode()):
            return presented
    return None


@lru_cache(maxsize=64)
def _networks(trusted: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError:
        return None


def client_address(request: Request, trusted_proxies: list[str]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy (QA_TRUSTED_PROXIES); then the
    right-most X-Forwarded-For address that is not a trusted proxy (entries left of it were written by
    the client and are not believed)."""
    peer = request.client.host if request.client else "unknown"
    networks = _networks(tuple(trusted_proxies))
    peer_ip = _parse(peer)
    if not networks or peer_ip is None or not any(peer_ip in n for n in networks):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for")).split(",")
    for entry in reversed(forwarded):
        hop = _parse(entry)
        if hop is None:
            return peer  # malformed: keep the proxy's own address rather than guess
        if not any(hop in n for n in networks):
            return str(hop)
    return peer


BOOTSTRAP_ADMIN_ID = "env-admin"  # the key ids of QA_ADMIN_API_KEY and QA_CHAT_API_KEY (stored keys: key_...)
BOOTSTRAP_CHAT_ID = "env-chat"


def client_identity(address: str, key_id: str | None = None) -> str:
    """Rate-limit bucket: the client address, plus the public id of the *verified* key when one was
    presented (secrets never name a bucket; an unverified token never picks one)."""
    if key_id is None:
        return "ip:" + address
    return "key:" + key_id + "|ip:" + address


class RateLimiter:
    """Token bucket per identity: `burst` requests at once, refilled at `per_minute` (in memory: never
    blocks, so it is called on the event loop)."""

    blocking = False

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
            self._forget_idlest()

    def check(self, identity: str, now: float | None = None) -> None:
        """Raise RateLimitedError if `identity` has no request left, without counting one."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, stamp = self._buckets.get(identity, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens < 1.0:
            raise RateLimitedError(max(1, math.ceil((1.0 - tokens) / self.rate)))

    def _forget_idlest(self) -> None:
        if len(self._buckets) > self.max_clients:  # forget the idlest clients (caller holds the lock)
            for key in sorted(self._buckets, key=lambda k: self._buckets[k][1])[: self.max_clients // 10]:
                del self._buckets[key]
