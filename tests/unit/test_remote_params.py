"""The KFP client's local checks: parameters typed as the package declares, KFP's six-field cron, packages."""

import re

import pytest

from hipo.remote.client import list_runs
from hipo.remote.package import RemoteError, check_cron, parse_params, pipeline_parameters, read_package

SPEC = {  # root.inputDefinitions as kfp.compiler writes it
    "pipelineInfo": {"name": "p"},
    "root": {
        "inputDefinitions": {
            "parameters": {
                "name": {"parameterType": "STRING"},
                "steps": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3.0, "isOptional": True},
                "omega": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 0.05, "isOptional": True},
                "gate": {"parameterType": "BOOLEAN", "defaultValue": True, "isOptional": True},
                "benchmarks": {"parameterType": "LIST", "defaultValue": ["a"], "isOptional": True},
                "extra": {"parameterType": "STRUCT", "isOptional": True},
            }
        }
    },
}


def test_declared_parameters_and_which_are_required():
    declared = pipeline_parameters(SPEC)
    assert {n for n, p in declared.items() if p.required} == {"name"}
    assert declared["benchmarks"].type == "LIST"


def test_values_take_the_declared_types():
    values = parse_params(
        SPEC,
        ["name=a=b", "steps=-4", "omega=1e-3", "gate=No", 'benchmarks=["gsm8k", "math500"]', "extra={}"],
    )
    assert values == {"name": "a=b", "steps": -4, "omega": 0.001, "gate": False,
                      "benchmarks": ["gsm8k", "math500"], "extra": {}}  # fmt: skip
    assert type(values["steps"]) is int and type(values["omega"]) is float
    assert parse_params(SPEC, ["name=", "gate=1"]) == {"name": "", "gate": True}


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("steps=3.0", "parameter 'steps' is NUMBER_INTEGER: expected an integer, e.g. 3, got '3.0'"),
        ("omega=inf", "parameter 'omega' is NUMBER_DOUBLE"),
        ("gate=on", "parameter 'gate' is BOOLEAN: expected true or false, got 'on'"),
        ("benchmarks=gsm8k", "parameter 'benchmarks' is LIST: expected a JSON list"),
        ('extra=["x"]', "parameter 'extra' is STRUCT: expected a JSON object"),
        ("omega", "--param 'omega' must look like name=value"),
        ("=3", "--param '=3' must look like name=value"),
        (
            "Steps=3",
            "unknown pipeline parameter 'Steps'; the pipeline declares: benchmarks, extra, gate, name",
        ),
    ],
)
def test_bad_pairs_are_named(pair, message):
    with pytest.raises(RemoteError, match=re.escape(message)):
        parse_params(SPEC, ["name=n", pair])


def test_a_parameter_given_twice_or_a_required_one_missing():
    with pytest.raises(RemoteError, match="parameter 'steps' is given twice"):
        parse_params(SPEC, ["name=n", "steps=1", "steps=2"])
    with pytest.raises(RemoteError, match="requires a value for: name"):
        parse_params(SPEC, ["steps=1"])


@pytest.mark.parametrize(
    "cron", ["0 0 3 * * 0", "*/30 * * * * ?", "0 0 9 ? * MON-FRI", "@every 24h", "@weekly"]
)
def test_kfp_crons_pass(cron):
    assert check_cron(f"  {cron} ") == cron


def test_five_field_cron_gets_the_six_field_form():
    with pytest.raises(RemoteError, match=r"write '0 30 2 \* \* 1-5' instead of '30 2 \* \* 1-5'"):
        check_cron("30 2 * * 1-5")


@pytest.mark.parametrize("cron", ["", "0 0 3 * * 0 2030 1", "0 0 3 * * $"])
def test_other_crons_are_refused(cron):
    with pytest.raises(RemoteError, match="expected six fields"):
        check_cron(cron)


def test_packages_are_checked(tmp_path):
    with pytest.raises(RemoteError, match="does not exist: compile it first"):
        read_package(tmp_path / "missing.yaml")
    (tmp_path / "p.tar.gz").write_bytes(b"")
    with pytest.raises(RemoteError, match=r"must be a compiled \.yaml"):
        read_package(tmp_path / "p.tar.gz")
    (tmp_path / "other.yaml").write_text("kind: Deployment\n")
    with pytest.raises(RemoteError, match="is not a compiled KFP pipeline"):
        read_package(tmp_path / "other.yaml")
    (tmp_path / "typo.yaml").write_text("pipelineInfo: {name: p}\nroot: {dag: {}}\nschemaVersoin: 2.1.0\n")
    with pytest.raises(RemoteError, match=r"is not a valid KFP pipeline spec: .*schemaVersoin"):
        read_package(tmp_path / "typo.yaml")
    (tmp_path / "broken.yaml").write_text("root: [\n")
    with pytest.raises(RemoteError, match="is not valid YAML"):
        read_package(tmp_path / "broken.yaml")


@pytest.mark.parametrize("host", ["localhost:8080", "", "http://", "ftp://kfp"])
def test_host_needs_a_scheme(host):
    with pytest.raises(RemoteError, match="must be the KFP API address with its scheme"):
        list_runs(host)
