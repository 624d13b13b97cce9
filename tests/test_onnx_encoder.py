"""The ONNX Runtime (int8) embedding backend against the sentence-transformers model it is exported from.

The export + quantisation runs once per module into a temporary cache (about 20 s on 2 cores).
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the ONNX backend's packages (onnxruntime, onnx) are not installed")

from qa_service import onnx_encoder
from qa_service.encoders import SentenceTransformerEncoder
from qa_service.errors import ModelLoadError
from qa_service.onnx_encoder import FP32_FILE, INT8_FILE, OnnxEncoder

pytestmark = pytest.mark.slow

MODEL = "all-MiniLM-L6-v2"
LONG = " ".join(["The Normans settled in Normandy and later conquered England in 1066."] * 30)  # > 256 tokens
TEXTS = [
    "In what country is Normandy located?",
    LONG,
    "ok",
    "  Leading and trailing whitespace is kept as the tokenizer sees it.  ",
    "The Norman dynasty had a major political, cultural and military impact on medieval Europe.",
    "Café, naïve, Zürich — ünïcödé and emoji 🙂 survive tokenization.",
    "WHO WAS THE NORSE LEADER?",
    "Numbers: 3.14159, 2,718 and 10^6 are tokenized into pieces.",
    "",
    "Rollo",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def int8(cache_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(MODEL, cache_dir, quantize=True, threads=1)


@pytest.fixture(scope="module")
def fp32(cache_dir: Path, int8: OnnxEncoder) -> OnnxEncoder:
    return OnnxEncoder(MODEL, cache_dir, quantize=False, threads=1)  # reuses the fp32 export of `int8`


@pytest.fixture(scope="module")
def reference() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder(MODEL)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1))


def _copy_cache(encoder: OnnxEncoder, target: Path, files: tuple[str, ...]) -> Path:
    cache = target / encoder.cache_path.name
    cache.mkdir(parents=True)
    for name in files:
        shutil.copy2(encoder.cache_path / name, cache / name)
    return cache


def _no_export(*args: object) -> None:
    raise AssertionError("the cached model should have been reused, not exported again")


def test_cache_layout(int8: OnnxEncoder, fp32: OnnxEncoder, cache_dir: Path) -> None:
    assert int8.cache_path == fp32.cache_path
    assert int8.cache_path.parent == cache_dir
    assert int8.cache_path.name.startswith(f"{MODEL}-")
    assert int8.model_path.name == INT8_FILE and fp32.model_path.name == FP32_FILE
    assert int8.model_path.stat().st_size < fp32.model_path.stat().st_size / 3
    assert not [p for p in int8.cache_path.iterdir() if p.name.endswith(".tmp")]
    assert (int8.name, int8.backend, fp32.backend) == (MODEL, "onnx-int8", "onnx-fp32")
    assert int8.max_seq_length == 256


def test_shapes_and_normalisation(int8: OnnxEncoder, fp32: OnnxEncoder) -> None:
    for encoder in (int8, fp32):
        vectors = encoder.embed(TEXTS)
        assert encoder.dimension == 384
        assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_agrees_with_sentence_transformers(
    int8: OnnxEncoder, fp32: OnnxEncoder, reference: SentenceTransformerEncoder
) -> None:
    expected = reference.embed(TEXTS)
    assert _cosines(fp32.embed(TEXTS), expected).min() > 0.9999
    # Measured on 2,310 SQuAD sentences, questions and paragraphs: mean 0.993, min 0.980; on 306 texts of
    # one or two words (the worst case, like "ok" and "" here): mean 0.989, min 0.957. ONNX Runtime's
    # int8 kernels differ by CPU: on an AVX-512 VNNI machine "ok" alone comes out at 0.940 (the rest
    # of these texts at 0.97 or more).
    cosines = _cosines(int8.embed(TEXTS), expected)
    assert cosines.min() > 0.93 and cosines.mean() > 0.98, cosines
    assert np.sort(cosines)[1] > 0.95, cosines  # only the shortest text may fall below 0.95


def test_order_is_restored_after_length_sorting(
    int8: OnnxEncoder, fp32: OnnxEncoder, reference: SentenceTransformerEncoder
) -> None:
    expected = reference.embed(TEXTS)
    assert _cosines(fp32.embed(TEXTS, batch_size=3), expected).min() > 0.9999
    shuffled = int8.embed(TEXTS, batch_size=2)
    assert list((shuffled @ expected.T).argmax(axis=1)) == list(range(len(TEXTS)))
    reversed_vectors = fp32.embed(TEXTS[::-1], batch_size=4)[::-1]
    np.testing.assert_allclose(reversed_vectors, fp32.embed(TEXTS, batch_size=4), atol=1e-5)


def test_empty_input(int8: OnnxEncoder) -> None:
    empty = int8.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    assert int8.embed_tokens([]) == []
    assert int8.token_counts([]) == []


def test_tokenization_matches_the_hf_tokenizer(fp32: OnnxEncoder) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(fp32.model_dir))
    expected = tokenizer(TEXTS, truncation=True, max_length=256)["input_ids"]
    assert [e.ids for e in fp32._encode(TEXTS)] == expected


def test_embed_tokens(int8: OnnxEncoder, fp32: OnnxEncoder, reference: SentenceTransformerEncoder) -> None:
    counts = fp32.token_counts(TEXTS)
    assert counts == reference.token_counts(TEXTS) == int8.token_counts(TEXTS)
    assert counts[TEXTS.index(LONG)] > 254 and counts[TEXTS.index("")] == 0
    expected = reference.embed_tokens(TEXTS)
    for encoder, token_floor in ((fp32, 0.9999), (int8, 0.9)):
        result = encoder.embed_tokens(TEXTS, batch_size=3)
        pooled = encoder.embed(TEXTS, batch_size=3)
        assert len(result) == len(TEXTS)
        for i, ((tokens, vector), (ref_tokens, ref_vector)) in enumerate(zip(result, expected, strict=True)):
            # special tokens excluded; truncated to max_seq_length - 2; the empty text keeps [CLS]/[SEP] as torch does
            assert tokens.shape == ref_tokens.shape == (min(counts[i], 254) or 2, 384)
            assert tokens.dtype == np.float32 and vector.shape == (384,)
            np.testing.assert_allclose(np.linalg.norm(tokens, axis=1), 1.0, atol=1e-5)
            np.testing.assert_allclose(vector, pooled[i], atol=1e-5)  # one forward pass, same pooled vector
            assert _cosines(tokens, ref_tokens).min() > token_floor
            assert float(vector @ ref_vector) > 0.95


def test_concurrent_calls_match_sequential(int8: OnnxEncoder) -> None:
    chunks = [TEXTS[i:] + TEXTS[:i] for i in range(8)]
    sequential = [int8.embed(chunk, batch_size=4) for chunk in chunks]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda chunk: int8.embed(chunk, batch_size=4), chunks))
    for got, want in zip(concurrent, sequential, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_bulk_embedding_runs_passes_side_by_side_and_matches_one_thread(
    int8: OnnxEncoder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parallel = OnnxEncoder(MODEL, cache_dir, quantize=True, threads=3)
    threads_seen: set[str] = set()
    forward = parallel._hidden_states

    def recording(encodings: list[object]) -> tuple[np.ndarray, np.ndarray]:
        threads_seen.add(threading.current_thread().name)
        return forward(encodings)

    monkeypatch.setattr(parallel, "_hidden_states", recording)
    texts = TEXTS * 3
    np.testing.assert_allclose(parallel.embed(texts, batch_size=2), int8.embed(texts, batch_size=2), atol=1e-6)
    for (tokens, vector), (want_tokens, want_vector) in zip(
        parallel.embed_tokens(texts, batch_size=2), int8.embed_tokens(texts, batch_size=2), strict=True
    ):
        np.testing.assert_allclose(tokens, want_tokens, atol=1e-6)
        np.testing.assert_allclose(vector, want_vector, atol=1e-6)
    assert len({name for name in threads_seen if name.startswith("qa-embed")}) > 1, threads_seen
    threads_seen.clear()
    parallel.embed(TEXTS[:2])  # one batch: a question's pass runs on its caller's thread
    assert threads_seen == {threading.current_thread().name}


def test_second_construction_reuses_the_cache(
    int8: OnnxEncoder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in int8.cache_path.glob("*.onnx")}
    monkeypatch.setattr(onnx_encoder, "_export_transformer", _no_export)
    monkeypatch.setattr(onnx_encoder, "_quantize", _no_export)
    again = OnnxEncoder(MODEL, cache_dir, quantize=True, threads=1)
    assert again.model_path == int8.model_path
    assert {p.name: p.stat().st_mtime_ns for p in int8.cache_path.glob("*.onnx")} == before
    np.testing.assert_allclose(again.embed(TEXTS), int8.embed(TEXTS), atol=1e-6)


def test_corrupt_int8_file_is_requantised_once(
    int8: OnnxEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = _copy_cache(int8, tmp_path, (FP32_FILE, INT8_FILE))
    (cache / INT8_FILE).write_bytes(b"not an onnx model")
    fp32_mtime = (cache / FP32_FILE).stat().st_mtime_ns
    calls: list[Path] = []
    real_quantize = onnx_encoder._quantize

    def counting_quantize(source: Path, target: Path) -> None:
        calls.append(target)
        real_quantize(source, target)

    monkeypatch.setattr(onnx_encoder, "_export_transformer", _no_export)
    monkeypatch.setattr(onnx_encoder, "_quantize", counting_quantize)
    barrier = threading.Barrier(2)

    def construct() -> OnnxEncoder:
        barrier.wait()
        return OnnxEncoder(MODEL, tmp_path, quantize=True, threads=1)

    with ThreadPoolExecutor(max_workers=2) as pool:  # two concurrent starts: one rebuild, both load it
        encoders = list(pool.map(lambda _: construct(), range(2)))
    assert len(calls) == 1
    assert (cache / FP32_FILE).stat().st_mtime_ns == fp32_mtime
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    for encoder in encoders:
        np.testing.assert_allclose(encoder.embed(TEXTS), int8.embed(TEXTS), atol=1e-6)


def test_corrupt_fp32_file_that_cannot_be_reexported_is_a_clear_error(
    fp32: OnnxEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = _copy_cache(fp32, tmp_path, (FP32_FILE,))
    (cache / FP32_FILE).write_bytes((cache / FP32_FILE).read_bytes()[:1000])  # truncated

    def broken_export(*args: object) -> None:
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(onnx_encoder, "_export_transformer", broken_export)
    with pytest.raises(ModelLoadError, match=r"Exporting .* to ONNX failed: RuntimeError: exporter unavailable"):
        OnnxEncoder(MODEL, tmp_path, quantize=False)
    assert not (cache / FP32_FILE).exists()  # the broken file is gone, not left for the next start


def test_missing_onnxruntime_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ModelLoadError, match="pip install onnxruntime onnx"):
        OnnxEncoder(MODEL, tmp_path)


def test_unusable_models_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="neither a local directory nor in the local Hugging Face cache"):
        OnnxEncoder(str(tmp_path / "missing-model"), tmp_path / "cache")
    model = tmp_path / "dense-model"
    model.mkdir()
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    (model / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelLoadError, match="'Dense' module"):
        OnnxEncoder(str(model), tmp_path / "cache")


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"

    def half_written(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        onnx_encoder._write_atomically(target, half_written)
    assert list(tmp_path.iterdir()) == []
    onnx_encoder._write_atomically(target, lambda tmp: tmp.write_bytes(b"whole"))
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]


def test_micro_batched_queries_match_single_ones_within_the_measured_tolerance(
    int8: OnnxEncoder, fp32: OnnxEncoder
) -> None:
    """Batched questions get their own tokens (no padding rows) and, with fp32, the single-question
    vectors. int8 quantises activations per pass, so its vectors move with the batch (measured here:
    pooled cosine to the single-question vector >= 0.959, the worst being the one-token "ok"; on 256
    SQuAD questions in batches of 2-32: 0.9926 mean, 0.985 worst), but no further from fp32's than
    single int8 vectors are (SQuAD: cosine to fp32 0.9941 mean single, 0.9936 in batches of 8)."""
    from qa_service.embed_batching import EmbedBatcher

    questions = [t for t in TEXTS if t and t != LONG] + ["Who ruled the duchy?", "When did Rollo die?"]
    batched = {}
    for encoder, pooled_min, token_min in ((fp32, 0.99999, 0.99999), (int8, 0.95, 0.92)):
        batcher = EmbedBatcher(encoder, window_ms=2.0, max_batch=len(questions))
        batched[encoder.backend] = batcher._forward(questions)  # the one pass a batch of them gets
        for text, (tokens, pooled) in zip(questions, batched[encoder.backend], strict=True):
            single_tokens, single_pooled = encoder.embed_tokens([text])[0]
            assert tokens.shape == single_tokens.shape  # padding never reaches a caller
            assert float(pooled @ single_pooled) >= pooled_min
            assert float(np.min((tokens * single_tokens).sum(axis=1))) >= token_min
    exact = np.stack([p for _, p in batched["onnx-fp32"]])
    in_batch = np.stack([p for _, p in batched["onnx-int8"]])
    alone = np.stack([int8.embed_tokens([q])[0][1] for q in questions])
    assert _cosines(in_batch, exact).mean() >= _cosines(alone, exact).mean() - 0.003
