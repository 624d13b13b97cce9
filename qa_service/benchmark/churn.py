"""Churn: clients ask (plain, streaming, OpenAI, follow-ups) while a writer uploads, replaces and deletes
documents on a real `qa-service serve`; every answer is checked against the documents that existed.

Used by the churn test (tests/test_churn.py, about a minute) and `make soak` (bench/soak.py, minutes).
Checks: no 5xx; every citation's text is `document_text[start:end]` of a version of its document that
had been sent before the answer arrived; after a SIGKILL and a restart, every acknowledged upload is
present as acknowledged, and the one in flight is either wholly there or not at all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ANIMALS = ["otter", "badger", "heron", "lynx", "marten", "ibex", "puffin", "walrus"]


def note(k: int, version: int) -> str:
    """Document k, version v: distinct facts per version, so a stale citation is caught."""
    animal = ANIMALS[k % len(ANIMALS)]
    return (
        f"Churn note {k}, version {version}.\n"
        f"The {animal} called Keeper{k} weighs {version * 7 + k} kilograms in version {version}.\n"
        f"Keeper{k} sleeps beside the river number {version + 3 * k}.\n"
        f"Visitors feed Keeper{k} fish at {version % 12 + 1} o'clock.\n"
    )


@dataclass
class Ledger:
    """What the writer sent (every version, with when) and what the server acknowledged."""

    versions: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # id -> [(sent_at, text)]
    acked: dict[str, str | None] = field(default_factory=dict)  # id -> text (None: deleted)
    in_flight: dict[str, str | None] = field(default_factory=dict)  # id -> what the pending request sets
    unanswered: dict[str, list[str | None]] = field(default_factory=dict)  # sent, no answer (server killed)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def sent(self, doc_id: str, text: str | None) -> None:
        with self.lock:
            if text is not None:
                self.versions.setdefault(doc_id, []).append((time.monotonic(), text))
            self.in_flight[doc_id] = text

    def done(self, doc_id: str, ok: bool, answered: bool = True) -> None:
        with self.lock:
            text = self.in_flight.pop(doc_id)
            if ok:
                self.acked[doc_id] = text
                self.unanswered.pop(doc_id, None)
            elif not answered:  # may or may not have been applied
                self.unanswered.setdefault(doc_id, []).append(text)

    def allowed(self, doc_id: str) -> list[str | None]:
        """What the document may hold now: as acknowledged (None: absent), or as an unanswered request set it."""
        with self.lock:
            return [self.acked.get(doc_id), *self.unanswered.get(doc_id, [])]

    def existed(self, doc_id: str, before: float) -> list[str]:
        with self.lock:
            return [text for at, text in self.versions.get(doc_id, []) if at <= before]


@dataclass
class Stats:
    requests: int = 0
    server_errors: list[str] = field(default_factory=list)
    bad_citations: list[str] = field(default_factory=list)
    other_failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    uploads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, seconds: float, status: int, what: str) -> None:
        with self.lock:
            self.requests += 1
            self.latencies.append(seconds)
            if status >= 500:
                self.server_errors.append(f"{what}: {status}")
            elif status not in (200, 201, 204, 404, 429):
                self.other_failures.append(f"{what}: {status}")


class Server:
    """`qa-service serve` as a subprocess on a loopback port."""

    def __init__(self, index_dir: Path, port: int, env: dict[str, str]) -> None:
        self.index_dir, self.port, self.env = index_dir, port, env
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self, failpoint: str | None = None, timeout: float = 180) -> Server:
        env = {**os.environ, **self.env, "QA_INDEX_DIR": str(self.index_dir)}
        env.pop("QA_FAILPOINT", None)
        if failpoint:
            env["QA_FAILPOINT"] = failpoint
        log = open(self.index_dir.parent / "server.log", "ab")  # noqa: SIM115 (the server owns it)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qa_service.cli", "serve", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"server did not start: {(self.index_dir.parent / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.3)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def check_citations(answer: dict[str, Any], received: float, ledger: Ledger, fixed: dict[str, str]) -> list[str]:
    """Citations that are not `text[start:end]` of a version of their document sent before `received`."""
    bad = []
    for c in answer.get("citations", []):
        texts = [fixed[c["document_id"]]] if c["document_id"] in fixed else ledger.existed(c["document_id"], received)
        if not any(t[c["start"] : c["end"]] == c["text"] for t in texts):
            bad.append(f"{c['document_id']} {c['start']}-{c['end']}: {c['text'][:60]!r}")
    return bad


class Churn:
    """Client threads and one writer against `base` until `stop` is set."""

    def __init__(self, base: str, admin_key: str, fixed: dict[str, str], notes: int = 6, pause: float = 0.0) -> None:
        self.base, self.admin, self.fixed, self.notes, self.pause = base, admin_key, fixed, notes, pause
        self.ledger, self.stats, self.stop = Ledger(), Stats(), threading.Event()
        self.killing = threading.Event()  # set before the server is killed: connection errors expected

    def _post(self, http: httpx.Client, what: str, path: str, **kwargs: Any) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = http.post(path, **kwargs)
        except httpx.HTTPError as exc:
            if not (self.stop.is_set() or self.killing.is_set()):
                with self.stats.lock:
                    self.stats.other_failures.append(f"{what}: {exc.__class__.__name__}")
            return None
        self.stats.record(time.monotonic() - started, response.status_code, what)
        return response

    def _check(self, what: str, answer: dict[str, Any]) -> None:
        bad = check_citations(answer, time.monotonic(), self.ledger, self.fixed)
        if bad:
            with self.stats.lock:
                self.stats.bad_citations += [f"{what}: {b}" for b in bad]

    def asker(self, n: int) -> None:
        kinds = ["plain", "stream", "openai", "follow-up"]
        with httpx.Client(base_url=self.base, timeout=60) as http:
            i = n
            while not self.stop.is_set():
                kind, k = kinds[i % len(kinds)], i % self.notes
                question = f"How much does Keeper{k} weigh?" if i % 3 else "How many troops withdrew from Kherson?"
                if kind == "plain":
                    r = self._post(http, kind, "/v1/chat", json={"message": question})
                    if r is not None and r.status_code == 200:
                        self._check(kind, r.json())
                elif kind == "stream":
                    r = self._post(http, kind, "/v1/chat", json={"message": question, "stream": True})
                    if r is not None and r.status_code == 200:
                        for block in r.text.strip().split("\n\n"):
                            if block.startswith("event: error"):
                                with self.stats.lock:
                                    self.stats.server_errors.append(f"stream error event: {block[:200]}")
                            elif block.startswith("event: done"):
                                self._check(kind, json.loads(block.split("data: ", 1)[1]))
                elif kind == "openai":
                    messages = [
                        {"role": "user", "content": f"Tell me about Keeper{k}."},
                        {"role": "user", "content": "Where does he sleep?"},
                    ]
                    r = self._post(http, kind, "/v1/chat/completions", json={"model": "m", "messages": messages})
                    if r is not None and r.status_code == 200:
                        self._check(kind, r.json())
                else:
                    first = self._post(http, kind, "/v1/chat", json={"message": f"Who is Keeper{k}?"})
                    if first is not None and first.status_code == 200:
                        self._check(kind, first.json())
                        body = {"message": "What does he eat?", "conversation_id": first.json()["conversation_id"]}
                        r = self._post(http, kind, "/v1/chat", json=body)
                        if r is not None and r.status_code == 200:
                            self._check(kind, r.json())
                i += 1
                if self.pause:
                    self.stop.wait(self.pause)

    def upload(self, http: httpx.Client, k: int, version: int) -> None:
        source = f"churn-{k}.txt"
        doc_id = self.doc_id(source)
        text = note(k, version)
        self.ledger.sent(doc_id, text)
        r = self._post(http, "upload", "/v1/documents", json={"source": source, "text": text}, headers=self._auth)
        ok = r is not None and r.status_code == 201
        if ok:
            assert r is not None and r.json()["id"] == doc_id
            with self.stats.lock:
                self.stats.uploads += 1
        self.ledger.done(doc_id, ok, answered=r is not None)

    def delete(self, http: httpx.Client, k: int) -> None:
        doc_id = self.doc_id(f"churn-{k}.txt")
        self.ledger.sent(doc_id, None)
        started = time.monotonic()
        try:
            r = http.delete(f"/v1/documents/{doc_id}", headers=self._auth)
        except httpx.HTTPError:
            self.ledger.done(doc_id, False, answered=False)
            return
        self.stats.record(time.monotonic() - started, r.status_code, "delete")
        self.ledger.done(doc_id, r.status_code in (204, 404))

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    @staticmethod
    def doc_id(source: str) -> str:
        from qa_service.ingest.sources import document_id

        return document_id("upload:" + source)

    def writer(self) -> None:
        with httpx.Client(base_url=self.base, timeout=120) as http:
            version = 0
            while not self.stop.is_set():
                version += 1
                for k in range(self.notes):
                    if self.stop.is_set():
                        return
                    if (version + k) % 5 == 0:
                        self.delete(http, k)
                    else:
                        self.upload(http, k, version)  # a new document, or a replacement
                    if self.pause:
                        self.stop.wait(self.pause)

    def run(self, seconds: float, askers: int = 3) -> Stats:
        threads = [threading.Thread(target=self.asker, args=(n,), daemon=True) for n in range(askers)]
        threads.append(threading.Thread(target=self.writer, daemon=True))
        for thread in threads:
            thread.start()
        self.stop.wait(seconds)
        self.stop.set()
        for thread in threads:
            thread.join(120)
        return self.stats


def verify_after_restart(base: str, admin_key: str, ledger: Ledger) -> list[str]:
    """Acknowledged documents present as acknowledged; an unacknowledged one wholly old or wholly new."""
    problems = []
    auth = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base, timeout=60) as http:
        for doc_id in sorted(set(ledger.acked) | set(ledger.unanswered)):
            allowed = ledger.allowed(doc_id)
            r = http.get(f"/v1/documents/{doc_id}", headers=auth)
            found = r.json()["text"] if r.status_code == 200 else None
            if found not in allowed:
                problems.append(f"{doc_id}: {found!r} not in {allowed!r}")
            elif found is not None:
                expected = len([line for line in found.splitlines() if line.strip()])
                if r.json()["sentences"] != expected:
                    problems.append(f"{doc_id}: {r.json()['sentences']} sentences, expected {expected}")
    return problems
