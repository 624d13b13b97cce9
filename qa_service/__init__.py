"""qa-service: sentence-cited question answering over your own documents."""

import os

# Must be set before haystack / huggingface modules are imported anywhere.
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The query path only does small operations (one vector against an index, a question's tokens
# against a few dozen sentences): thread pools there cost more than they save, and their spinning
# workers compete with the request threads (CPU time per query halved on 2 cores). Bulk work asks
# for more threads explicitly: FAISS adds (`store.vectors`) and the torch encoder (`encoders`).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
