"""The environments the bench gives its children: ours as it runs in production, the reference with
its libraries' defaults.

`qa_service/__init__.py` caps the BLAS/OpenMP thread pools (`OMP_NUM_THREADS=1`, ...) and turns off
the tokenizers' thread pool, for our query path. Those settings are inherited by every child of the
bench process; the reference pipeline must not get them, or it is measured in a configuration its
users would not run (issue 17: its indexing ran at 73 sentences/s instead of 134). The reference gets
the bench's environment minus every thread cap; offline and telemetry switches are kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Variables that cap a thread pool (set by qa_service/__init__.py, or by a user's shell for ours).
THREAD_CAPS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "TOKENIZERS_PARALLELISM",
)
# Recorded in the report next to the thread caps (which of them a side ran with).
RECORDED = (*THREAD_CAPS, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HAYSTACK_TELEMETRY_ENABLED")


def reference_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) without the thread caps: library defaults."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if k not in THREAD_CAPS}


def ours_env(base: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment, thread caps included) with `overrides`."""
    source = os.environ if base is None else base
    return {**source, **(overrides or {})}


def recorded(env: Mapping[str, str]) -> dict[str, str | None]:
    """The variables of `env` that decide thread counts and offline mode (None: not set)."""
    return {k: env.get(k) for k in RECORDED}
