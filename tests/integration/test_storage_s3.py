"""hipo.storage and the math loaders against a real S3 API (SeaweedFS on loopback, see conftest.py)."""

import json
import socket

import pytest

from hipo import storage
from hipo.tasks.math import MathTask


def test_round_trip(s3_prefix):
    uri = f"{s3_prefix}/nested/blob.bin"
    assert not storage.exists(uri)
    data = bytes(range(256)) * 1000
    storage.write_bytes(uri, data)
    assert storage.exists(uri) and storage.read_bytes(uri) == data
    storage.write_bytes(uri, b"v2")
    assert storage.read_bytes(uri) == b"v2"


def test_endpoint_variable_fallbacks(s3_prefix, monkeypatch, s3_server):
    storage.write_bytes(f"{s3_prefix}/x", b"1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_server.endpoint)
    assert storage.read_bytes(f"{s3_prefix}/x") == b"1"


def test_math_jsonl_from_s3(s3_prefix):
    rows = [{"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"} for i in range(5)]
    storage.write_bytes(f"{s3_prefix}/math/train.jsonl", "\n".join(map(json.dumps, rows)).encode())
    problems = MathTask(datasets=(f"{s3_prefix}/math/{{split}}.jsonl",)).problems("train")
    assert [p.answer for p in problems] == ["0", "2", "4", "6", "8"]
    assert problems[3].prompt == "What is 3 + 3?" and problems[3].source == "math"


def test_missing_key_and_bucket(s3_prefix):
    uri = f"{s3_prefix}/absent.jsonl"
    with pytest.raises(storage.ObjectNotFoundError, match=r"absent\.jsonl.*check the key"):
        storage.read_bytes(uri)
    with pytest.raises(FileNotFoundError):  # ObjectNotFoundError is a FileNotFoundError too
        MathTask(datasets=(uri,)).problems("eval")
    with pytest.raises(storage.ObjectNotFoundError, match="bucket 'no-such-bucket-hipo' does not exist"):
        storage.read_bytes("s3://no-such-bucket-hipo/key")
    assert not storage.exists("s3://no-such-bucket-hipo/key")


def test_wrong_credentials(s3_prefix, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(storage.StorageError, match=r"access denied.*AWS_SECRET_ACCESS_KEY"):
        storage.read_bytes(f"{s3_prefix}/anything")


def test_unreachable_endpoint(s3_prefix, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(storage, "S3_MAX_ATTEMPTS", 1)  # the default 3 attempts back off for ~5 s
    with pytest.raises(storage.StorageError, match=rf"cannot reach the S3 endpoint http://127.0.0.1:{port}"):
        storage.write_bytes(f"{s3_prefix}/x", b"1")


def test_upload_dir_then_download_prefix(s3_prefix, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.json").write_text("{}")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4000)
    uris = storage.upload_dir(src, f"{s3_prefix}/ckpt/")
    assert sorted(uris) == [f"{s3_prefix}/ckpt/a.json", f"{s3_prefix}/ckpt/sub/b.bin"]
    storage.write_bytes(f"{s3_prefix}/ckpt-other/c", b"not under the prefix")
    files = storage.download_prefix(f"{s3_prefix}/ckpt", tmp_path / "dst")
    assert sorted(p.relative_to(tmp_path / "dst").as_posix() for p in files) == ["a.json", "sub/b.bin"]
    assert (tmp_path / "dst" / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()


def test_download_of_an_empty_prefix_fails_clearly(s3_prefix, tmp_path):
    with pytest.raises(storage.ObjectNotFoundError, match="no objects under this prefix"):
        storage.download_prefix(f"{s3_prefix}/nothing", tmp_path)
