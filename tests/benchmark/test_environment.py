"""The reference runs with its libraries' defaults; ours keeps the thread caps qa_service sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import qa_service  # noqa: F401  (sets the caps in this process, as in the bench)
from qa_service.benchmark.environment import THREAD_CAPS, ours_env, recorded, reference_env
from qa_service.benchmark.servers import free_port, running

CAPPED = {
    "PATH": "/usr/bin",
    "HOME": "/home/x",
    "HF_HUB_OFFLINE": "1",
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def test_reference_env_drops_every_thread_cap_and_keeps_the_rest() -> None:
    env = reference_env(CAPPED)
    assert not set(env) & {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TOKENIZERS_PARALLELISM"}
    assert env == {"PATH": "/usr/bin", "HOME": "/home/x", "HF_HUB_OFFLINE": "1", "HAYSTACK_TELEMETRY_ENABLED": "False"}


def test_ours_keeps_the_caps_qa_service_sets() -> None:
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENBLAS_NUM_THREADS"] == "1"
    ours = ours_env(overrides={"QA_INDEX_DIR": "/tmp/i"})
    assert ours["OMP_NUM_THREADS"] == "1" and ours["OPENBLAS_NUM_THREADS"] == "1" and ours["QA_INDEX_DIR"] == "/tmp/i"
    reference = reference_env()  # this process's environment, as the bench passes it
    assert not set(reference) & set(THREAD_CAPS)
    assert reference["HF_HUB_OFFLINE"] == os.environ["HF_HUB_OFFLINE"] and reference["PATH"] == os.environ["PATH"]


def test_recorded_names_caps_and_offline_switches() -> None:
    assert recorded(CAPPED)["OMP_NUM_THREADS"] == "1"
    assert recorded(reference_env(CAPPED))["OMP_NUM_THREADS"] is None
    assert recorded(CAPPED)["HF_HUB_OFFLINE"] == "1" and "PATH" not in recorded(CAPPED)


_ECHO_SERVER = """
import http.server, json, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({k: os.environ.get(k) for k in sys.argv[2:]}).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_a_server_started_with_the_reference_env_sees_no_caps(tmp_path: Path) -> None:
    """`running(base_env=...)` replaces the inherited environment instead of adding to it."""
    import urllib.request

    def seen_by_server(log: Path, **kwargs: object) -> dict[str, str | None]:
        port = free_port()
        command = [sys.executable, "-c", _ECHO_SERVER, str(port), *THREAD_CAPS, "HF_HUB_OFFLINE"]
        with running(command, port, "/", log, timeout=60, **kwargs) as server:  # type: ignore[arg-type]
            return dict(json.loads(urllib.request.urlopen(server.base_url + "/", timeout=10).read()))

    seen = seen_by_server(tmp_path / "log", base_env=reference_env())
    assert all(seen[k] is None for k in THREAD_CAPS) and seen["HF_HUB_OFFLINE"] == os.environ["HF_HUB_OFFLINE"]
    assert seen_by_server(tmp_path / "log2")["OMP_NUM_THREADS"] == "1"  # ours: inherited


def test_reference_script_reports_its_thread_counts() -> None:
    """reference.py's runtime() reads the environment and the libraries it can import."""
    script = Path(__file__).resolve().parents[2] / "bench" / "reference" / "reference.py"
    code = f"import runpy, json; ns = runpy.run_path({str(script)!r}); print(json.dumps(ns['runtime']()))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=reference_env(), capture_output=True, text=True, check=True, timeout=120
    )
    runtime = json.loads(done.stdout.strip().splitlines()[-1])
    assert runtime["cpu_count"] == os.cpu_count()
    assert all(runtime["env"][k] is None for k in THREAD_CAPS)
    assert runtime.get("faiss_omp_max_threads", 1) >= 1


_FAKE_REFERENCE = """#!{python}
import http.server, json, os, sys
CAPS = {caps!r}
seen = {{k: os.environ.get(k) for k in CAPS}}
args = sys.argv[2:]
value = lambda flag: args[args.index(flag) + 1]
if args[0] == "measure":
    result = {{"sentences_per_s": 1.0, "index_bytes": 1024, "peak_rss_mb": 1.0, "runtime": {{"env": seen}}}}
    open(value("--out"), "w").write(json.dumps(result))
else:
    open(value("--runtime-out"), "w").write(json.dumps({{"env": seen, "cpu_count": 2}}))
    class H(http.server.BaseHTTPRequestHandler):
        def reply(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
            self.wfile.write(b"{{}}")
        do_GET = do_POST = reply
        def log_message(self, *a): pass
    http.server.HTTPServer(("127.0.0.1", int(value("--port"))), H).serve_forever()
"""


def test_run_reference_gives_every_reference_child_the_uncapped_env(tmp_path: Path) -> None:
    """Measure (SQuAD and synthetic) and serve: each child reports the caps it saw; none has any."""
    from qa_service.benchmark.runner import BenchConfig, run_reference
    from qa_service.service import TextSource

    fake = tmp_path / "python"
    fake.write_text(_FAKE_REFERENCE.format(python=sys.executable, caps=THREAD_CAPS))
    fake.chmod(0o755)
    cfg = BenchConfig(
        out_dir=tmp_path, squad=tmp_path, seeds=tmp_path, reference_python=fake, synthetic_sentences=20,
        concurrency=(1,), requests_per_level=2, warmup=0, log=lambda _msg: None,
    )  # fmt: skip
    documents = [TextSource(source="a.txt", text="One sentence. Another one.", origin="a")]
    (tmp_path / "work").mkdir()
    result = run_reference(cfg, tmp_path / "work", documents, ["What?", "Who?"])
    env = result["environment"]
    assert all(v is None for k, v in env["variables"].items() if k in THREAD_CAPS)
    assert env["variables"]["HF_HUB_OFFLINE"] == os.environ["HF_HUB_OFFLINE"]
    assert all(v is None for v in env["measure_threads"]["env"].values())  # what the child itself saw
    assert all(v is None for v in env["server_threads"]["env"].values())
    assert all(v is None for v in result["measure"]["synthetic"]["runtime"]["env"].values())
    assert "1" in result["http"] and result["http"]["server_peak_rss_mb"] > 0  # the load ran against the fake
