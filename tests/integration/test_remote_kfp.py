"""``hipo submit | schedule | runs | unschedule`` through the real ``kfp.Client`` against a loopback fake
of the KFP v2beta1 REST API (tests/fakes/kfp_api.py)."""

import socket

import pytest
import yaml
from kfp import compiler, dsl

from hipo.cli import main
from hipo.remote import client as remote
from hipo.remote.package import RemoteError


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def _echo(text: str, n: int, rate: float, flag: bool, items: list, opts: dict) -> str:
    return f"{text} {n} {rate} {flag} {items} {opts}"


@dsl.pipeline(name="tiny-remote")
def _tiny(
    must: str,
    text: str = "hi",
    n: int = 3,
    rate: float = 0.5,
    flag: bool = False,
    items: list = [1, 2],  # noqa: B006 - a pipeline default, compiled into the spec
    opts: dict = {"a": 1},  # noqa: B006
) -> None:
    _echo(text=text, n=n, rate=rate, flag=flag, items=items, opts=opts)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "tiny.yaml"
    compiler.Compiler().compile(_tiny, str(path))
    return str(path)


@pytest.fixture
def kfp_server():
    """``start(**options) -> FakeKFP`` on a free loopback port; every server is stopped at teardown."""
    from fakes.kfp_api import FakeKFP

    servers = []

    def start(**options):
        servers.append(FakeKFP(**options).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _bodies(fake, method, suffix):
    return [body for m, path, _, body in fake.requests if m == method and path.endswith(suffix)]


def test_submit_sends_the_spec_and_typed_parameters(kfp_server, package, capsys):
    fake = kfp_server()
    argv = ["submit", "--host", fake.url + "/", "--package", package, "--experiment", "nightly"]
    params = [
        "must=x",
        "text=hello",
        "n=7",
        "rate=0.25",
        "flag=TRUE",
        'items=["a", 2]',
        'opts={"k": {"d": 1}}',
    ]
    assert main([*argv, "--run-name", "first", *[f"--param={p}" for p in params]]) == 0
    out = capsys.readouterr().out
    (run,) = fake.runs.values()
    assert f"run {run['run_id']} submitted" in out
    assert f"{fake.url}/#/runs/details/{run['run_id']}" in out
    sent = run["runtime_config"]["parameters"]
    assert sent == {"must": "x", "text": "hello", "n": 7, "rate": 0.25, "flag": True,
                    "items": ["a", 2], "opts": {"k": {"d": 1}}}  # fmt: skip
    assert type(sent["n"]) is int and type(sent["flag"]) is bool
    with open(package) as f:
        compiled = yaml.safe_load(f)
    assert run["pipeline_spec"]["pipelineInfo"]["name"] == "tiny-remote"
    assert run["pipeline_spec"]["root"]["inputDefinitions"] == compiled["root"]["inputDefinitions"]
    assert run["display_name"] == "first"
    (experiment,) = fake.experiments.values()
    assert experiment["display_name"] == "nightly" and run["experiment_id"] == experiment["experiment_id"]

    second = remote.submit(fake.url, package, ["must=y"], experiment="nightly")
    assert len(fake.experiments) == 1, "an existing experiment is reused, not created again"
    assert second.experiment_id == experiment["experiment_id"]
    assert fake.runs[second.run_id]["runtime_config"]["parameters"] == {"must": "y"}
    assert fake.runs[second.run_id]["display_name"].startswith("tiny-remote ")


def test_unknown_parameter_lists_the_valid_ones(kfp_server, package, capsys):
    fake = kfp_server()
    rc = main(["submit", "--host", fake.url, "--package", package, "--param", "must=x", "--param", "stepz=3"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "unknown pipeline parameter 'stepz'" in err
    assert "flag, items, must, n, opts, rate, text" in err
    assert fake.requests == [], "nothing is sent when the arguments are wrong"


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ("n=1.5", "parameter 'n' is NUMBER_INTEGER: expected an integer"),
        ("rate=fast", "parameter 'rate' is NUMBER_DOUBLE"),
        ("rate=nan", "parameter 'rate' is NUMBER_DOUBLE"),
        ("flag=maybe", "parameter 'flag' is BOOLEAN: expected true or false"),
        ('items={"a": 1}', "parameter 'items' is LIST: expected a JSON list"),
        ("opts=[1]", "parameter 'opts' is STRUCT: expected a JSON object"),
    ],
)
def test_bad_values_name_the_parameter_and_type(kfp_server, package, capsys, param, expected):
    fake = kfp_server()
    rc = main(["submit", "--host", fake.url, "--package", package, "--param", "must=x", "--param", param])
    assert rc == 2
    assert expected in capsys.readouterr().err
    assert fake.runs == {}


def test_required_parameter_without_default_must_be_given(kfp_server, package):
    fake = kfp_server()
    with pytest.raises(RemoteError, match=r"requires a value for: must \(pass --param name=value\)"):
        remote.submit(fake.url, package, ["n=2"])


def test_schedule_list_and_unschedule(kfp_server, package, capsys):
    fake = kfp_server()
    argv = ["schedule", "--host", fake.url, "--package", package, "--cron", "0 0 3 * * 0", "--name", "weekly"]
    assert main([*argv, "--max-concurrency", "3", "--no-catchup", "--param", "must=x", "--param", "n=9"]) == 0
    (recurring,) = fake.recurring_runs.values()
    rr_id = recurring["recurring_run_id"]
    assert f"recurring run {rr_id} 'weekly' scheduled: 0 0 3 * * 0, max concurrency 3, no catch-up" in (
        capsys.readouterr().out
    )
    (sent,) = _bodies(fake, "POST", "/recurringruns")
    assert sent["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 0"}}
    assert sent["max_concurrency"] == 3 and sent["no_catchup"] is True and sent["mode"] == "ENABLE"
    assert sent["runtime_config"]["parameters"] == {"must": "x", "n": 9}
    assert sent["pipeline_spec"]["pipelineInfo"]["name"] == "tiny-remote"
    assert fake.experiments[sent["experiment_id"]]["display_name"] == remote.DEFAULT_EXPERIMENT

    done = remote.submit(fake.url, package, ["must=a"], run_name="done-run")
    fake.finish(done.run_id, "FAILED")
    running = remote.submit(fake.url, package, ["must=b"], run_name="running-run")
    assert main(["runs", "--host", fake.url]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    finished = fake.runs[done.run_id]["finished_at"].replace("T", " ").rstrip("Z")
    done_line = next(line for line in lines if done.run_id in line)
    running_line = next(line for line in lines if running.run_id in line)
    assert "done-run" in done_line and "FAILED" in done_line and done_line.rstrip().endswith(finished)
    assert "PENDING" in running_line and running_line.rstrip().endswith("-"), "not finished: no time"
    assert lines.index(running_line) < lines.index(done_line), "newest first"
    rr_line = next(line for line in lines if rr_id in line)
    assert rr_line.split()[1:] == ["weekly", "0", "0", "3", "*", "*", "0", "yes"]

    assert main(["unschedule", "--host", fake.url, "weekly"]) == 0
    assert f"recurring run {rr_id} 'weekly' disabled and deleted" in capsys.readouterr().out
    calls = [
        (m, path)
        for m, path, _, _ in fake.requests
        if path.startswith(f"/apis/v2beta1/recurringruns/{rr_id}")
    ]
    assert calls == [("POST", f"/apis/v2beta1/recurringruns/{rr_id}:disable"),
                     ("DELETE", f"/apis/v2beta1/recurringruns/{rr_id}")]  # fmt: skip
    assert fake.recurring_runs == {}
    runs, recurring_runs = remote.list_runs(fake.url, limit=1)
    assert [r.run_id for r in runs] == [running.run_id] and recurring_runs == []


def test_runs_of_one_experiment(kfp_server, package):
    fake = kfp_server()
    a = remote.submit(fake.url, package, ["must=a"], experiment="a")
    remote.submit(fake.url, package, ["must=b"], experiment="b")
    remote.schedule(fake.url, "@every 24h", package, ["must=s"], name="daily", experiment="b")
    runs, recurring = remote.list_runs(fake.url, experiment="a")
    assert [r.run_id for r in runs] == [a.run_id] and recurring == []
    runs, recurring = remote.list_runs(fake.url, experiment="b")
    assert [(rr.name, rr.schedule, rr.enabled) for rr in recurring] == [("daily", "@every 24h", True)]
    with pytest.raises(RemoteError, match="No experiment is found with name missing"):
        remote.list_runs(fake.url, experiment="missing")


def test_five_field_cron_is_rejected_with_the_six_field_form(kfp_server, package, capsys):
    fake = kfp_server()
    rc = main(
        ["schedule", "--host", fake.url, "--package", package, "--cron", "0 3 * * 0", "--param", "must=x"]
    )
    assert rc == 2
    assert "write '0 0 3 * * 0' instead of '0 3 * * 0'" in capsys.readouterr().err
    assert fake.requests == []


def test_names_are_unique_per_experiment_and_ambiguous_names_list_ids(kfp_server, package, capsys):
    fake = kfp_server()
    first = remote.schedule(fake.url, "0 0 3 * * *", package, ["must=x"], name="nightly", experiment="a")
    with pytest.raises(RemoteError, match="a recurring run named 'nightly' already exists in experiment 'a'"):
        remote.schedule(fake.url, "0 0 4 * * *", package, ["must=x"], name="nightly", experiment="a")
    second = remote.schedule(fake.url, "0 0 5 * * *", package, ["must=x"], name="nightly", experiment="b")

    assert main(["unschedule", "--host", fake.url, "nightly"]) == 2
    err = capsys.readouterr().err
    assert "2 recurring runs are named 'nightly'" in err
    assert first.recurring_run_id in err and second.recurring_run_id in err
    assert len(fake.recurring_runs) == 2

    assert remote.unschedule(fake.url, second.recurring_run_id).schedule == "0 0 5 * * *"
    assert list(fake.recurring_runs) == [first.recurring_run_id]
    with pytest.raises(
        RemoteError, match=rf"no recurring run with id or name 'gone'.*nightly \({first.recurring_run_id}\)"
    ):
        remote.unschedule(fake.url, "gone")


def test_max_concurrency_is_checked_before_sending(kfp_server, package):
    fake = kfp_server()
    with pytest.raises(RemoteError, match="between 1 and 10"):
        remote.schedule(fake.url, "0 0 3 * * 0", package, ["must=x"], max_concurrency=11)
    assert fake.requests == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_host_is_named(package, capsys):
    host = f"http://127.0.0.1:{_closed_port()}"
    assert main(["runs", "--host", host]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the KFP API at {host}" in err and "port-forward" in err


def test_silent_host_times_out(package):
    with socket.socket() as listener:  # accepts connections (kernel backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        host = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(RemoteError, match=rf"cannot reach the KFP API at {host}.*within 0.5 s"):
            remote.list_runs(host, timeouts=(0.5, 0.5))


def test_server_that_stalls_after_the_probe_is_bounded(kfp_server, package):
    fake = kfp_server(stall_s=3.0)
    with pytest.raises(
        RemoteError, match=rf"KFP API at {fake.url} failed to find experiment 'hipo'.*timed out"
    ):
        remote.submit(fake.url, package, ["must=x"], timeouts=(0.5, 0.5))


def test_bearer_token_from_kfp_token(kfp_server, package, capsys, monkeypatch):
    fake = kfp_server(token="s3cret")
    monkeypatch.delenv("KFP_TOKEN", raising=False)
    assert main(["runs", "--host", fake.url]) == 2
    err = capsys.readouterr().err
    assert "answered 401" in err and "set KFP_TOKEN" in err
    monkeypatch.setenv("KFP_TOKEN", "s3cret")
    run = remote.submit(fake.url, package, ["must=x"])
    assert run.run_id in fake.runs


def test_host_without_scheme_is_refused(package):
    with pytest.raises(RemoteError, match="must be the KFP API address with its scheme"):
        remote.list_runs("localhost:8080")


def test_the_committed_pipeline_submits_with_its_platform_settings(kfp_server, capsys):
    """The default package is the committed cluster pipeline: typed knobs, the Kubernetes platform spec."""
    from hipo.pipeline.run import COMPILED

    fake = kfp_server()
    params = [
        "--param=rl_steps=50",
        "--param=omega=0.1",
        "--param=arms=all",
        '--param=benchmarks=["arithmetic"]',
    ]
    assert main(["submit", "--host", fake.url, *params]) == 0
    (run,) = fake.runs.values()
    assert run["runtime_config"]["parameters"] == {
        "rl_steps": 50, "omega": 0.1, "arms": "all", "benchmarks": ["arithmetic"]
    }  # fmt: skip
    # with a platform spec, kfp.Client sends both documents: {"pipeline_spec": ..., "platform_spec": ...}
    sent = run["pipeline_spec"]
    assert sent["pipeline_spec"]["pipelineInfo"]["name"] == "hipo-pipeline"
    compiled_platform = list(yaml.safe_load_all(COMPILED.read_text()))[1]
    assert sent["platform_spec"] == compiled_platform


def test_multi_user_kfp_takes_the_profile_namespace(kfp_server, package, capsys, tmp_path, monkeypatch):
    """Multi-user KFP keeps experiments in profile namespaces: without --namespace the server refuses
    and the error says what to pass; with it the experiment and run land in the profile."""
    monkeypatch.setenv("HOME", str(tmp_path))  # no kfp context file with a namespace of its own
    fake = kfp_server(multi_user=True)
    args = ["submit", "--host", fake.url, "--package", package, "--param", "must=x"]
    assert main(args) != 0
    assert "--namespace, your profile namespace" in capsys.readouterr().err
    assert main([*args, "--namespace", "team-a"]) == 0
    [experiment] = fake.experiments.values()
    [run] = fake.runs.values()
    assert experiment["namespace"] == "team-a" and run["experiment_id"] == experiment["experiment_id"]
    assert main([*args, "--namespace", "team-a"]) == 0  # the experiment is found again in its namespace
    assert len(fake.experiments) == 1 and len(fake.runs) == 2
    assert main(["runs", "--host", fake.url, "--namespace", "team-a", "--experiment", "hipo"]) == 0
