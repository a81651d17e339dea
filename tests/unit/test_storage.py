"""hipo.storage on local paths (S3 is covered by tests/integration/test_storage_s3.py)."""

import pytest

from hipo import storage


def test_local_round_trip_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "data.bin"
    assert not storage.exists(str(path))
    storage.write_bytes(str(path), b"hello")
    assert storage.exists(str(path)) and storage.read_bytes(str(path)) == b"hello"
    assert storage.read_bytes(f"file://{path}") == b"hello"
    assert [p.name for p in path.parent.iterdir()] == ["data.bin"]  # no temporary file left behind


def test_local_errors_name_the_path(tmp_path):
    with pytest.raises(storage.ObjectNotFoundError, match=r"missing\.jsonl: no such file.*check the path"):
        storage.read_bytes(str(tmp_path / "missing.jsonl"))
    with pytest.raises(storage.StorageError, match="unsupported URI scheme"):
        storage.read_bytes("gs://bucket/key")
    with pytest.raises(storage.StorageError, match="expected s3://BUCKET/KEY"):
        storage.read_bytes("s3://bucket-only")


def test_endpoint_precedence(monkeypatch):
    for name in storage.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert storage.endpoint_url() is None
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://c")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://b")
    assert storage.endpoint_url() == "http://b"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://a")
    assert storage.endpoint_url() == "http://a"


def test_local_upload_dir_and_download_prefix(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "sub" / "x.txt").write_text("x")
    storage.upload_dir(tmp_path / "src", str(tmp_path / "copy"))
    assert storage.download_prefix(str(tmp_path / "copy"), tmp_path / "back") == [tmp_path / "back/sub/x.txt"]
    with pytest.raises(storage.ObjectNotFoundError):
        storage.download_prefix(str(tmp_path / "missing"), tmp_path / "back")
    with pytest.raises(storage.ObjectNotFoundError):
        storage.upload_dir(tmp_path / "missing", str(tmp_path / "copy"))
