"""A Hugging Face Hub base model, copied once into object storage for the cluster's pods.

The training runtime sets ``HF_HUB_OFFLINE=1`` and the training pods may not reach the Hub at all,
so on a cluster backend a ``model.base`` that is a Hub id (``org/name``) is downloaded by one step
and uploaded to ``{launch.work_uri}/base-models/<org>--<name>``; the configuration the later steps
read then names that ``s3://`` copy. A ``.complete`` marker is written last, so a copy cut short is
made again and a finished one is never downloaded twice (KFP caching also skips the step).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from hipo import storage
from hipo.config import RunConfig
from hipo.launch.kube import LaunchError

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
COMPLETE = ".complete"


def is_hub_id(base: str) -> bool:
    """``org/name`` that is not a local path: what only the Hub can resolve."""
    return bool(_HUB_ID.fullmatch(base)) and not Path(base).exists()


def _download(repo_id: str, local_dir: str) -> None:
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=repo_id, local_dir=local_dir)


def stage_base_model(config: RunConfig, download: Callable[[str, str], None] = _download) -> RunConfig:
    """``config`` with a Hub ``model.base`` replaced by its copy in object storage (made if missing);
    unchanged for the local backend and for a base that is already a path or an ``s3://`` URI."""
    base, launch = config.model.base, config.launch
    if launch.backend == "local" or not is_hub_id(base):
        return config
    if not launch.work_uri.startswith("s3://"):
        raise LaunchError(
            f"model.base {base!r} is a Hub id and launch.backend={launch.backend}: set launch.work_uri "
            "(an s3:// prefix) so it can be copied there once for the training pods, or set model.base "
            "to an s3:// copy of the model"
        )
    target = f"{launch.work_uri.rstrip('/')}/base-models/{base.replace('/', '--')}"
    if not storage.exists(f"{target}/{COMPLETE}"):
        with tempfile.TemporaryDirectory(prefix="hipo-base-") as tmp:
            try:
                download(base, tmp)
            except Exception as error:
                raise LaunchError(
                    f"cannot download {base!r} from the Hugging Face Hub ({type(error).__name__}: {error}). "
                    "This step needs the Hub (and HF_TOKEN for a gated model: hipo compile --api-key-env "
                    "HF_TOKEN); or copy the model to s3:// yourself and set model.base to it"
                ) from None
            storage.upload_dir(tmp, target)
        storage.write_bytes(f"{target}/{COMPLETE}", b"")
    model = config.model.model_copy(update={"base": target})
    return config.model_copy(update={"model": model})
