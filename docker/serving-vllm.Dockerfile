# syntax=docker/dockerfile:1
# The serving process on NVIDIA GPUs with vLLM (compose profile "gpu"): vLLM 0.25.1, the release built for torch 2.11
# and CUDA 13 that served Qwen3.5 on an H100, on Python 3.12 as there. Only the Django-free `inference` package of the
# project is in it. No weights: the models volume (KB_MODELS_DIR, read-only) holds the folders an operator copied in
# (docs/deployment.md, "Offline operation"). The CUDA runtime comes with torch's wheels; the base image brings what the
# NVIDIA container toolkit needs to hand the host's driver in.

FROM nvidia/cuda:13.0.0-base-ubuntu24.04 AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Ubuntu's versions are fixed by the base image's release (noble); the Python packages below are pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch and the vision and audio builds vLLM pins beside it, all from the same CUDA 13.0 index (a torchvision built for
# another CUDA fails to load, and Qwen3.5's model module imports it); then vLLM and the serving process's own packages
# at the project's pins (pyproject.toml).
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0 \
    && pip install \
        vllm==0.25.1 \
        nvidia-ml-py==13.615.71 \
        prometheus-client==0.26.0 \
        starlette==1.10.0 \
        uvicorn==0.54.0

FROM nvidia/cuda:13.0.0-base-ubuntu24.04
# Python, at the version of the base image's release, as in the build stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 kb \
    && useradd --system --uid 10001 --gid kb --home-dir /var/lib/kb-serving --no-create-home kb \
    && install -d -o kb -g kb -m 0750 /var/lib/kb-serving
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY inference ./inference
# KB_VAR_DIR and HOME hold vLLM's and Triton's compile caches (a volume: later starts are faster); never weights.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/kb-serving \
    KB_VAR_DIR=/var/lib/kb-serving \
    KB_MODELS_DIR=/models \
    KB_INFERENCE_ROUTE=qwen3.5-9b=vllm \
    KB_INFERENCE_HOST=0.0.0.0 \
    KB_INFERENCE_PORT=8765 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1
USER 10001:10001
EXPOSE 8765
CMD ["python", "-m", "inference"]
