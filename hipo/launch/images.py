"""The container images: the one place their names and tags live.

The pipeline compiles with these, `make images` builds and tags them, and the launcher starts training
pods from ``TRAIN_IMAGE``. The step image's name contains "python" so kfp.local does not warn about a
base image it cannot check.

The version tag moves when an image is rebuilt, and nodes that pulled it once keep their copy
(``IfNotPresent``). `make images` also tags each build with its git commit (``at_commit``), and
`hipo compile --step-image-digest/--train-image-digest` pins the images by digest (``pinned``).
"""

import re

from hipo import __version__

REGISTRY = "ghcr.io/hipo-pipelines"
STEP_IMAGE = f"{REGISTRY}/hipo-step-python:{__version__}"
TRAIN_IMAGE = f"{REGISTRY}/hipo-train:{__version__}"
IMAGE_UID = 1000  # both images' numeric user (USER in images/*.Dockerfile): runAsNonRoot needs a number
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def repository(image: str) -> str:
    """``image`` without its tag or digest."""
    name = image.split("@", 1)[0]
    head, _, tail = name.rpartition("/")
    return f"{head}/{tail.split(':', 1)[0]}" if head else tail.split(":", 1)[0]


def at_commit(image: str, commit: str) -> str:
    """The immutable tag `make images` adds: ``git-<commit>``."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        raise ValueError(f"not a git commit: {commit!r}")
    return f"{repository(image)}:git-{commit}"


def pinned(image: str, digest: str) -> str:
    """``image`` pinned to ``digest`` (``sha256:`` and 64 hex digits, as `docker push` prints it)."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError(
            f"image digest {digest!r} is not sha256:<64 hex digits>: copy it from `docker push` or "
            f"`docker buildx imagetools inspect {image}`"
        )
    return f"{repository(image)}@{digest}"
