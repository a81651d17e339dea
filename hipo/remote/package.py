"""The compiled pipeline package, read and checked before any server is called: its spec, its
parameters typed as it declares them, and KFP's six-field cron."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

DEFAULT_PACKAGE = Path("pipelines/compiled/hipo_pipeline.yaml")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,#LW-]+$")


class RemoteError(RuntimeError):
    """A KFP server that cannot be reached or refuses a request, or an argument it would refuse."""


@dataclass(frozen=True)
class Parameter:
    """One pipeline parameter as the compiled package declares it (root.inputDefinitions)."""

    name: str
    type: str  # STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT
    required: bool


def read_package(package: str | Path) -> dict[str, Any]:
    """The pipeline spec (first YAML document) of a compiled package, with a clear error if it is not one."""
    path = Path(package)
    if not path.is_file():
        raise RemoteError(f"pipeline package {path} does not exist: compile it first (hipo compile)")
    if path.suffix not in (".yaml", ".yml", ".json"):
        raise RemoteError(f"pipeline package {path} must be a compiled .yaml (or .json) file")
    try:
        spec = next(yaml.safe_load_all(path.read_text(encoding="utf-8")), None)
    except yaml.YAMLError as error:
        raise RemoteError(f"pipeline package {path} is not valid YAML: {error}") from None
    if not isinstance(spec, dict) or "root" not in spec or "pipelineInfo" not in spec:
        raise RemoteError(f"{path} is not a compiled KFP pipeline (no root / pipelineInfo)")
    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as error:
        raise RemoteError(f"{path} is not a valid KFP pipeline spec: {error}") from None
    return spec


def pipeline_parameters(spec: dict[str, Any]) -> dict[str, Parameter]:
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    return {
        name: Parameter(name, d["parameterType"], "defaultValue" not in d and not d.get("isOptional"))
        for name, d in declared.items()
    }


def _convert(parameter: Parameter, raw: str) -> Any:
    kind = parameter.type
    try:
        if kind == "STRING":
            return raw
        if kind == "NUMBER_INTEGER":
            return int(raw)
        if kind == "NUMBER_DOUBLE":
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError("not finite")
            return value
        if kind == "BOOLEAN":
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[
                raw.strip().lower()
            ]
        if kind in ("LIST", "STRUCT"):
            value = json.loads(raw)
            if isinstance(value, list if kind == "LIST" else dict):
                return value
            raise ValueError(f"got {type(value).__name__}")
    except (ValueError, KeyError) as error:
        example = {
            "NUMBER_INTEGER": "an integer, e.g. 3",
            "NUMBER_DOUBLE": "a number, e.g. 0.05",
            "BOOLEAN": "true or false",
            "LIST": 'a JSON list, e.g. \'["gsm8k", "math500"]\'',
            "STRUCT": "a JSON object, e.g. '{\"key\": 1}'",
        }[kind]
        raise RemoteError(
            f"parameter '{parameter.name}' is {kind}: expected {example}, got {raw!r} ({error})"
        ) from None
    raise RemoteError(f"parameter '{parameter.name}' has a type this client does not know: {kind}")


def parse_params(spec: dict[str, Any], pairs: Sequence[str]) -> dict[str, Any]:
    """``k=v`` strings to values of the types the pipeline declares; every name checked."""
    declared = pipeline_parameters(spec)
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise RemoteError(f"--param {pair!r} must look like name=value, e.g. --param rl_steps=50")
        if name not in declared:
            raise RemoteError(
                f"unknown pipeline parameter '{name}'; the pipeline declares: {', '.join(sorted(declared))}"
            )
        if name in values:
            raise RemoteError(f"parameter '{name}' is given twice")
        values[name] = _convert(declared[name], raw)
    missing = sorted(p.name for p in declared.values() if p.required and p.name not in values)
    if missing:
        raise RemoteError(
            f"the pipeline requires a value for: {', '.join(missing)} (pass --param name=value)"
        )
    return values


def check_cron(cron: str) -> str:
    """KFP's scheduler takes six fields (seconds first) or a descriptor such as ``@every 24h``."""
    cron = " ".join(cron.split())
    if cron.startswith("@"):
        return cron
    fields = cron.split(" ")
    if len(fields) == 5:
        raise RemoteError(
            f"KFP cron expressions have six fields, seconds first: write '0 {cron}' instead of '{cron}' "
            "(e.g. '0 0 3 * * 0' is 03:00 every Sunday)"
        )
    if len(fields) != 6 or not all(_CRON_FIELD.match(f) for f in fields):
        raise RemoteError(
            f"invalid cron {cron!r}: expected six fields 'second minute hour day-of-month month "
            "day-of-week', e.g. '0 0 3 * * 0'"
        )
    return cron
