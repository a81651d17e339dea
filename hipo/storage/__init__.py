"""Minimal object-storage I/O: local paths (or file://) and s3://bucket/key through boto3.

This module (with hipo/config.py) is one of the few places that read the environment: the S3 endpoint
comes from ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL`` or ``MLFLOW_S3_ENDPOINT_URL`` (first set wins;
none means AWS itself); credentials and region are boto3's own standard variables.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
_REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
S3_MAX_ATTEMPTS = 3  # botocore "standard" retries: transient errors and refused connections
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_AUTH = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}


class StorageError(OSError):
    """An object could not be read or written; the message names the URI and what to check."""


class ObjectNotFoundError(StorageError, FileNotFoundError):
    """The file, bucket or key does not exist."""


def join_uri(base: str, name: str) -> str:
    """``name`` inside the directory or s3:// prefix ``base``."""
    return f"{base.rstrip('/')}/{name}" if base.startswith("s3://") else str(Path(base) / name)


def endpoint_url() -> str | None:
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def split_s3(uri: str) -> tuple[str, str]:
    """("bucket", "key/path") of an s3:// URI."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise StorageError(f"malformed S3 URI {uri!r}: expected s3://BUCKET/KEY")
    return bucket, key


_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def _client() -> Any:
    """A boto3 S3 client for the current endpoint and credentials (cached; clients are thread-safe)."""
    endpoint = endpoint_url()
    names = (*_CREDENTIAL_VARIABLES, *_REGION_VARIABLES)
    cache_key = (endpoint, S3_MAX_ATTEMPTS, *(os.environ.get(name) for name in names))
    with _clients_lock:
        if cache_key not in _clients:
            import boto3
            from botocore.config import Config

            config = Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
                s3={"addressing_style": "path"} if endpoint else {},
            )
            region = next((os.environ[n] for n in _REGION_VARIABLES if os.environ.get(n)), "us-east-1")
            session = boto3.session.Session()
            _clients[cache_key] = session.client(
                "s3", endpoint_url=endpoint, region_name=region, config=config
            )
        return _clients[cache_key]


def _s3_error(uri: str, error: Exception) -> StorageError:
    """Translate a botocore failure into a StorageError that says what to check."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = endpoint_url() or "AWS (no endpoint variable set)"
    if isinstance(error, NoCredentialsError):
        return StorageError(f"{uri}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        bucket, key = split_s3(uri)
        if code == "NoSuchBucket":
            return ObjectNotFoundError(
                f"{uri}: bucket {bucket!r} does not exist at {where}: create it or fix the URI"
            )
        if code in _NOT_FOUND:
            return ObjectNotFoundError(
                f"{uri}: no object {key!r} in bucket {bucket!r} at {where}: check the key"
            )
        if code in _AUTH:
            return StorageError(
                f"{uri}: access denied by {where} ({code}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            )
        return StorageError(f"{uri}: S3 error {code or error} from {where}")
    if isinstance(error, EndpointConnectionError) or "connect" in type(error).__name__.lower():
        return StorageError(
            f"{uri}: cannot reach the S3 endpoint {where}: check {' / '.join(ENDPOINT_VARIABLES)} "
            f"and that the server is running ({error})"
        )
    return StorageError(f"{uri}: S3 request to {where} failed: {error}")


def _local(uri: str) -> Path:
    if "://" in uri and not uri.startswith("file://"):
        raise StorageError(f"unsupported URI scheme in {uri!r}: use a local path, file:// or s3://")
    return Path(uri.removeprefix("file://"))


def local_dir(uri: str, what: str, s3: bool = False) -> str:
    """``uri`` checked as an output folder before any work: refused when it is (or lies under) a file,
    and, unless ``s3``, when it is a URI (the option writes local files only). Returns ``uri``."""
    if uri.startswith("s3://") and s3:
        split_s3(uri)
        return uri
    if "://" in uri and not uri.startswith("file://"):
        supported = "a local folder or an s3:// prefix" if s3 else "a local folder only (copy it to S3 after)"
        raise StorageError(f"{what} {uri!r}: this option takes {supported}")
    path = Path(uri.removeprefix("file://")).expanduser()
    for folder in (path, *path.parents):
        if folder.exists():
            if not folder.is_dir():
                raise StorageError(f"{what} {uri!r}: {folder} is a file, not a folder: choose another path")
            break
    return uri


def read_bytes(uri: str) -> bytes:
    """The whole object at ``uri``."""
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3(uri)
        try:
            return _client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as error:
            raise _s3_error(uri, error) from error
    path = _local(uri)
    try:
        return path.read_bytes()
    except FileNotFoundError as error:
        raise ObjectNotFoundError(
            f"{uri}: no such file (resolved to {path.resolve()}): check the path"
        ) from error
    except OSError as error:
        raise StorageError(f"{uri}: cannot read: {error}") from error


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri``; local writes create parent folders and replace the file atomically."""
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3(uri)
        try:
            _client().put_object(Bucket=bucket, Key=key, Body=data)
        except (BotoCoreError, ClientError) as error:
            raise _s3_error(uri, error) from error
        return
    path = _local(uri)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            try:
                tmp.write(data)
            except BaseException:
                Path(tmp.name).unlink(missing_ok=True)
                raise
        os.replace(tmp.name, path)
    except OSError as error:
        raise StorageError(f"{uri}: cannot write: {error}") from error


def exists(uri: str) -> bool:
    """Whether an object or file exists at ``uri`` (a missing bucket counts as missing)."""
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_s3(uri)
        try:
            _client().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) in {*_NOT_FOUND, "NoSuchBucket"}:
                return False
            raise _s3_error(uri, error) from error
        except BotoCoreError as error:
            raise _s3_error(uri, error) from error
    return _local(uri).exists()


def _s3_keys(uri: str) -> list[tuple[str, str]]:
    """(key, path relative to the prefix) of every object under the s3:// prefix ``uri``."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(uri)
    prefix = key.rstrip("/") + "/"
    try:
        pages = _client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [(o["Key"], o["Key"][len(prefix) :]) for page in pages for o in page.get("Contents", [])]
    except (BotoCoreError, ClientError) as error:
        raise _s3_error(uri, error) from error


def download_prefix(uri: str, dest: str | Path) -> list[Path]:
    """Copy every object under the prefix ``uri`` (s3:// or a local directory) into ``dest``.

    Keys keep their path relative to the prefix; returns the files written.
    """
    dest = Path(dest)
    if not uri.startswith("s3://"):
        src = _local(uri)
        if not src.is_dir():
            raise ObjectNotFoundError(f"{uri}: no such directory (resolved to {src.resolve()})")
        shutil.copytree(src, dest, dirs_exist_ok=True)
        return sorted(p for p in dest.rglob("*") if p.is_file())
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _ = split_s3(uri)
    objects = [(k, rel) for k, rel in _s3_keys(uri) if rel and not rel.endswith("/")]
    if not objects:
        raise ObjectNotFoundError(f"{uri}: no objects under this prefix at {endpoint_url() or 'AWS'}")
    written = []
    for key, rel in objects:
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _client().download_file(bucket, key, str(path))
        except (BotoCoreError, ClientError) as error:
            raise _s3_error(f"s3://{bucket}/{key}", error) from error
        written.append(path)
    return written


def upload_dir(src: str | Path, uri: str) -> list[str]:
    """Copy every file under the local directory ``src`` to the prefix ``uri`` (s3:// or local).

    Returns the URIs written.
    """
    src = Path(src)
    if not src.is_dir():
        raise ObjectNotFoundError(f"{src}: no such directory (resolved to {src.resolve()})")
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if not uri.startswith("s3://"):
        shutil.copytree(src, _local(uri), dirs_exist_ok=True)
        return [str(_local(uri) / p.relative_to(src)) for p in files]
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(uri)
    written = []
    for path in files:
        target = f"{key.rstrip('/')}/{path.relative_to(src).as_posix()}"
        try:
            _client().upload_file(str(path), bucket, target)
        except (BotoCoreError, ClientError, S3UploadFailedError) as error:
            raise _s3_error(f"s3://{bucket}/{target}", error) from error
        written.append(f"s3://{bucket}/{target}")
    return written
