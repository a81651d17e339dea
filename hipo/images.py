"""The container images: the one place their names and tags live.

The pipeline compiles with these, `make images` builds and tags them, and the launcher starts training
pods from ``TRAIN_IMAGE``. The step image's name contains "python" so kfp.local does not warn about a
base image it cannot check.
"""

from hipo import __version__

REGISTRY = "ghcr.io/hipo-pipelines"
STEP_IMAGE = f"{REGISTRY}/hipo-step-python:{__version__}"
TRAIN_IMAGE = f"{REGISTRY}/hipo-train:{__version__}"
IMAGE_UID = 1000  # both images' numeric user (USER in images/*.Dockerfile): runAsNonRoot needs a number
