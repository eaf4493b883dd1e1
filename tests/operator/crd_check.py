"""Validate an object against the CRD's openAPIV3Schema as the API server would: JSON schema
for the structure, cel-python for the x-kubernetes-validations rules."""

from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "charts/batchinfer-operator/crds/batchinferences.batchinfer.io.yaml"
CRD_COPY = ROOT / "manifests/crd.yaml"
EXAMPLES = sorted((ROOT / "manifests/examples").glob("*.yaml"))


def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def schema() -> dict[str, Any]:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _cel_errors(node: dict[str, Any], value: Any, where: str) -> list[str]:
    errors = []
    env = celpy.Environment()
    for rule in node.get("x-kubernetes-validations") or []:
        if "oldSelf" in rule["rule"]:
            continue  # a transition rule: the API server skips it on create (tests/operator/test_refusals.py)
        program = env.program(env.compile(rule["rule"]))
        if not bool(program.evaluate({"self": celpy.json_to_cel(value)})):
            errors.append(f"{where}: {rule['message']}")
    if isinstance(value, dict):
        for key, child in (node.get("properties") or {}).items():
            if key in value:
                errors += _cel_errors(child, value[key], f"{where}.{key}")
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            errors += _cel_errors(node["items"], item, f"{where}[{i}]")
    return errors


def validation_errors(obj: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema())
    errors = [f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)]
    return errors or _cel_errors(schema(), obj, "<root>")
