# syntax=docker/dockerfile:1
# The serving process on NVIDIA GPUs with LMDeploy (compose profile "lmdeploy"): LMDeploy 0.18.0's PyTorch engine,
# which served Qwen3 on an H100 with torch 2.11 (CUDA 13), on Python 3.12 as there; W4A16 weights made with
# `lmdeploy lite auto_awq` fit small GPUs (docs/deployment.md). TurboMind needs CUDA 12 runtime libraries this image
# was not tried with. Only the Django-free `inference` package of the project is in it; no weights (KB_MODELS_DIR, a
# read-only volume, holds the folders an operator copied in).

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
# torch from the CUDA 13.0 index; LMDeploy and the linear-attention kernels its PyTorch engine runs Qwen3.5's Gated
# DeltaNet layers with, at the versions used on the H100; the serving process's own packages at the project's pins.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.11.0 torchvision==0.26.0 \
    && pip install \
        lmdeploy==0.18.0 \
        flash-linear-attention==0.6.0 \
        tilelang==0.1.11 \
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
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/kb-serving \
    KB_VAR_DIR=/var/lib/kb-serving \
    KB_MODELS_DIR=/models \
    KB_INFERENCE_ROUTE=qwen3.5-2b=lmdeploy \
    KB_LMDEPLOY_BACKEND=pytorch \
    KB_INFERENCE_HOST=0.0.0.0 \
    KB_INFERENCE_PORT=8765 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
USER 10001:10001
EXPOSE 8765
CMD ["python", "-m", "inference"]
