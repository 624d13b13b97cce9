"""ONNX Runtime embedding backend (optionally int8), a drop-in `Encoder` for sentence-transformers models.

The transformer is exported once from the local model directory to ONNX (fp32) and, by default,
dynamically quantised to int8. Both files are cached under
``cache_dir/<model name>-<hash of the model files' identity>/model{,.int8}.onnx``; every file is written
to a temporary name and renamed into place under an exclusive lock, so concurrent starts neither
corrupt the cache nor export twice. Later starts reuse the cache; an unreadable cached file is rebuilt.

Semantics match `SentenceTransformerEncoder`: the model's fast tokenizer truncates to its
sentence-transformers ``max_seq_length`` (special tokens included), vectors are the attention-masked
mean of the last hidden state, L2-normalised. Only mean-pooling models (Transformer -> Pooling(mean)
-> optional Normalize) are supported; others raise `ModelLoadError`.

Needs ``onnxruntime`` (inference) and ``onnx`` (quantisation); exporting also uses torch/transformers.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import logging
import os
import re
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa_service.encoders import resolve_model_path
from qa_service.errors import ModelLoadError
from qa_service.parallel_map import OrderedPool, available_cores

log = logging.getLogger(__name__)

# Bump when the export or quantisation recipe changes: it is part of the cache directory's hash.
EXPORT_VERSION = 1
OPSET = 17
# Per-channel int8 weights: per-tensor scales lose too much on MiniLM (mean cosine 0.965 vs 0.993).
QUANTIZATION = {"weight_type": "QInt8", "per_channel": True, "reduce_range": False}
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
_OUTPUT = "last_hidden_state"
_INSTALL_HINT = "Install the ONNX backend's packages into this environment: pip install onnxruntime onnx"
_PROBE_TEXTS = ["Hi.", "The quick brown fox jumps over the lazy dog.", "Where is it?"]


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelLoadError(
            f"The ONNX embedding backend needs onnxruntime, which is not installed. {_INSTALL_HINT}"
        ) from exc
    return onnxruntime


def local_model_dir(spec: str) -> Path:
    """The directory holding the model's files: a local path, or a hub id already in the local HF cache."""
    resolved = resolve_model_path(spec)
    path = Path(resolved).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(resolved, local_files_only=True))
    except Exception as exc:
        raise ModelLoadError(
            f"Embedding model {spec!r} is neither a local directory nor in the local Hugging Face cache "
            f"({exc.__class__.__name__}). Set QA_EMBEDDING_MODEL to a local model directory."
        ) from exc


def model_identity(model_dir: Path) -> str:
    """Hash of the model files' identity (relative path, size, mtime) and of the export recipe."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(json.dumps([EXPORT_VERSION, OPSET, QUANTIZATION], sort_keys=True).encode())
    for file in sorted(model_dir.rglob("*")):
        rel = file.relative_to(model_dir)
        if any(part.startswith(".") for part in rel.parts) or not file.is_file():
            continue
        stat = file.stat()
        digest.update(f"{rel.as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _sanitise(spec: str) -> str:
    name = Path(spec.rstrip("/\\")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _check_pipeline(model_dir: Path) -> int | None:
    """Check the sentence-transformers modules are Transformer -> mean Pooling (-> Normalize); its dimension."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None  # a plain transformers model: sentence-transformers would add mean pooling too
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot read {model_dir / 'modules.json'}: {exc}") from exc
    dimension = None
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            pooling = _read_json(model_dir / str(module.get("path", "")) / "config.json")
            modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v)
            if modes != ["pooling_mode_mean_tokens"]:
                raise ModelLoadError(
                    f"The ONNX backend supports mean pooling only; {model_dir} uses {modes}. Use the torch backend."
                )
            dimension = pooling.get("word_embedding_dimension")
        elif kind not in {"Transformer", "Normalize"}:
            raise ModelLoadError(
                f"The ONNX backend does not support the {kind!r} module of {model_dir}. Use the torch backend."
            )
    return int(dimension) if dimension else None


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An inter-process (and inter-thread) exclusive lock on `lock_path`; a no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with lock_path.open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` to a temporary file beside `target`, then rename it into place."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class _QuietQuantizer(logging.Filter):
    """onnxruntime.quantization logs per-tensor chatter (INFO) and a pre-processing hint on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO and "pre-processing before quantization" not in record.getMessage()


def _pad(encodings: Sequence[Any], pad_id: int) -> dict[str, np.ndarray]:
    """Right-pad a batch of `tokenizers.Encoding`s to the batch's longest row."""
    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad_id, dtype=np.int64)
    types = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n] = enc.ids
        types[row, :n] = enc.type_ids
        mask[row, :n] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def _normalise(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask.astype(np.float32)
    summed = np.einsum("bld,bl->bd", hidden, weights)
    return summed / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)


class OnnxEncoder:
    """`Encoder` over an ONNX Runtime session; thread-safe (the session and the tokenizers are read-only)."""

    def __init__(
        self, spec: str, cache_dir: str | os.PathLike[str], quantize: bool = True, threads: int | None = None
    ) -> None:
        ort = _import_onnxruntime()
        self.name = spec
        self.quantized = quantize
        self.backend = "onnx-int8" if quantize else "onnx-fp32"
        self.model_dir = local_model_dir(spec)
        pooled_dimension = _check_pipeline(self.model_dir)
        st_config = _read_json(self.model_dir / "sentence_bert_config.json")
        self._lower = bool(st_config.get("do_lower_case", False))
        self._load_tokenizers(st_config.get("max_seq_length"))
        self.cache_path = Path(cache_dir) / f"{_sanitise(spec)}-{model_identity(self.model_dir)}"
        self.model_path = self.cache_path / (INT8_FILE if quantize else FP32_FILE)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Every forward pass runs on its caller's thread; bulk embedding runs `threads` passes side by
        # side (`parallel_map`). Measured on 2 cores: a question embeds in 2.6 ms on one thread against
        # 3.4 on two intra-op threads without spinning, and batches 15-25 % faster two at a time.
        # (Spinning pool threads would take the cores from the ranking that follows an embedding.)
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.threads = int(threads) if threads else available_cores()
        self._passes = OrderedPool(self.threads, name="qa-embed")
        self._session = self._open_session(ort, options)
        self._input_names = {i.name for i in self._session.get_inputs()}
        probe = self._hidden_states(self._encode(_PROBE_TEXTS[:1]))[0]  # warm-up, and the real width
        self.dimension = int(probe.shape[-1])
        if pooled_dimension is not None and pooled_dimension != self.dimension:
            raise ModelLoadError(
                f"{self.model_path} outputs {self.dimension}-d vectors, the model's pooling expects {pooled_dimension}."
            )

    # -- loading ---------------------------------------------------------------------------------

    def _load_tokenizers(self, max_seq_length: int | None) -> None:
        from transformers import AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        try:
            hf_tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), use_fast=True)
        except Exception as exc:
            raise ModelLoadError(f"Could not load the tokenizer of {self.model_dir}: {exc}") from exc
        if not getattr(hf_tokenizer, "is_fast", False):
            raise ModelLoadError(f"{self.model_dir} has no fast (Rust) tokenizer; the ONNX backend needs one.")
        from tokenizers import Tokenizer

        max_length = int(max_seq_length or hf_tokenizer.model_max_length)
        self.max_seq_length = max_length
        self._pad_id = int(hf_tokenizer.pad_token_id or 0)
        serialised = hf_tokenizer.backend_tokenizer.to_str()
        # Configured here once and only read afterwards (encode_batch), so concurrent calls are safe.
        self._tokenizer = Tokenizer.from_str(serialised)
        self._tokenizer.no_padding()  # tokenizer.json may carry fixed padding / truncation of its own
        self._tokenizer.enable_truncation(max_length=max_length, strategy="longest_first")
        self._counter = Tokenizer.from_str(serialised)
        self._counter.no_padding()
        self._counter.no_truncation()

    def _open_session(self, ort: Any, options: Any) -> Any:
        """Build what the cache lacks and load it, under the cache lock; an unreadable cached file is rebuilt."""

        def load() -> Any:
            return ort.InferenceSession(str(self.model_path), options, providers=["CPUExecutionProvider"])

        with _exclusive(self._lock_path()):
            self._build_missing()
            try:
                return load()
            except Exception as exc:
                log.warning("Cached ONNX model %s is unreadable (%s); rebuilding it.", self.model_path, exc)
            self.model_path.unlink(missing_ok=True)
            self._build_missing()
            try:
                return load()
            except Exception as exc:
                raise ModelLoadError(
                    f"ONNX Runtime cannot load {self.model_path} ({exc}). Delete {self.cache_path} and retry."
                ) from exc

    def _lock_path(self) -> Path:
        try:
            self.cache_path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelLoadError(f"Cannot create the ONNX model cache {self.cache_path}: {exc}") from exc
        return self.cache_path / ".lock"

    def _build_missing(self) -> None:
        """Export / quantise whatever the cache lacks (called under the cache lock)."""
        fp32 = self.cache_path / FP32_FILE
        if self.model_path.exists():
            return
        if not fp32.exists():
            self._export_fp32(fp32)
        if not self.quantized:
            return
        try:
            log.info("Quantising %s to int8.", fp32)
            _write_atomically(self.model_path, lambda tmp: _quantize(fp32, tmp))
            return
        except ModelLoadError:
            raise
        except Exception as exc:  # most likely an unreadable cached fp32 model: export it again, once
            log.warning("Quantising the cached %s failed (%s); exporting it again.", fp32, exc)
        self._export_fp32(fp32)
        try:
            _write_atomically(self.model_path, lambda tmp: _quantize(fp32, tmp))
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"Dynamic int8 quantisation of {fp32} failed ({exc.__class__.__name__}: {exc}). "
                f"Delete {self.cache_path} and retry, or use quantize=False."
            ) from exc

    def _export_fp32(self, target: Path) -> None:
        log.info("Exporting %s to ONNX in %s (once per model version).", self.name, self.cache_path)
        _write_atomically(target, self._export)

    def _export(self, target: Path) -> None:
        try:
            _export_transformer(self.model_dir, target, self._pad_batch(self._encode(_PROBE_TEXTS)))
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"Exporting {self.name!r} ({self.model_dir}) to ONNX failed: {exc.__class__.__name__}: {exc}. "
                "Check that torch and transformers can load the model offline, or use the torch backend."
            ) from exc

    # -- encoding --------------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> list[Any]:
        if self._lower:
            texts = [t.lower() for t in texts]
        return list(self._tokenizer.encode_batch(texts, add_special_tokens=True))

    def _pad_batch(self, encodings: Sequence[Any]) -> dict[str, np.ndarray]:
        return _pad(encodings, self._pad_id)

    def _hidden_states(self, encodings: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass: (last hidden state (b, L, d) float32, attention mask (b, L))."""
        batch = self._pad_batch(encodings)
        feed = {name: array for name, array in batch.items() if name in self._input_names}
        hidden = self._session.run([_OUTPUT], feed)[0]
        return np.asarray(hidden, dtype=np.float32), batch["attention_mask"]

    def _batches(self, encodings: list[Any], batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Length-sorted batches, in order: (original indices, hidden states, attention mask); up to
        `threads` forward passes run side by side."""
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        size = max(1, int(batch_size))
        indices = [order[start : start + size] for start in range(0, len(order), size)]

        def forward(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return (index, *self._hidden_states([encodings[i] for i in index]))

        if len(indices) == 1:  # a question or a small batch: on the caller's thread
            yield forward(indices[0])
            return
        yield from self._passes.map(forward, indices)

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for index, hidden, mask in self._batches(self._encode(texts), batch_size):
            out[index] = _mean_pool(hidden, mask)
        return _normalise(out)

    def embed_tokens(self, texts: list[str], batch_size: int = 64) -> list[tuple[np.ndarray, np.ndarray]]:
        if not texts:
            return []
        encodings = self._encode(texts)
        result: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(texts)
        for index, hidden, mask in self._batches(encodings, batch_size):
            pooled = _normalise(_mean_pool(hidden, mask))
            for row, i in enumerate(index):
                n = int(mask[row].sum())
                tokens = hidden[row, :n]
                keep = np.asarray(encodings[i].special_tokens_mask[:n]) == 0
                inner = tokens[keep] if keep.any() else tokens  # like the torch backend: all rows if no text
                result[i] = (_normalise(inner), pooled[row])
        return [r for r in result if r is not None]

    def token_counts(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self._lower:
            texts = [t.lower() for t in texts]
        return [len(e.ids) for e in self._counter.encode_batch(texts, add_special_tokens=False)]


def _quantize(source: Path, target: Path) -> None:
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:  # onnxruntime.quantization imports onnx
        raise ModelLoadError(f"int8 quantisation needs the onnx package. {_INSTALL_HINT}") from exc
    root = logging.getLogger()
    hint_filter = _QuietQuantizer()
    root.addFilter(hint_filter)
    try:
        quantize_dynamic(
            source,
            target,
            weight_type=getattr(QuantType, str(QUANTIZATION["weight_type"])),
            per_channel=bool(QUANTIZATION["per_channel"]),
            reduce_range=bool(QUANTIZATION["reduce_range"]),
        )
    finally:
        root.removeFilter(hint_filter)


def _export_transformer(model_dir: Path, target: Path, probe: dict[str, np.ndarray]) -> None:
    """torch.onnx.export of the HF model (dynamic batch / sequence axes, output last_hidden_state).

    Uses the TorchScript exporter (no onnxscript needed) on an eager-attention model, traced on a padded
    batch, then checks ONNX Runtime reproduces torch's hidden states on that batch.
    """
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    model.eval()
    forward_args = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in forward_args]

    class _LastHiddenState(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    inputs = tuple(torch.from_numpy(probe[n]) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, _OUTPUT]}
    with torch.no_grad():
        expected = model(**{n: torch.from_numpy(probe[n]) for n in names}).last_hidden_state.numpy()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            _LastHiddenState(model),
            inputs,
            str(target),
            input_names=names,
            output_names=[_OUTPUT],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )

    ort = _import_onnxruntime()
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = session.run([_OUTPUT], {n: probe[n] for n in names})[0]
    mask = probe["attention_mask"].astype(bool)
    error = float(np.abs(got[mask] - expected[mask]).max())
    if not error < 1e-3:
        raise ModelLoadError(f"The ONNX export of {model_dir} disagrees with torch (max abs error {error:.2g}).")
