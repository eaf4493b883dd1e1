"""The CRD: its schema accepts the examples, rejects bad CRs, and mirrors the pydantic models."""

import copy
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.spec import BatchInferenceSpec
from batchinfer_operator.status import BatchInferenceStatus
from batchinfer_operator.validation import validate_spec
from tests.operator.crd_check import CRD_COPY, CRD_PATH, EXAMPLES, crd, schema, validation_errors


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load(next(p for p in EXAMPLES if p.stem == name).read_text())


def test_copy_in_manifests_is_identical() -> None:
    assert CRD_COPY.read_bytes() == CRD_PATH.read_bytes()


def test_names_printer_columns_and_status_subresource() -> None:
    spec = crd()["spec"]
    assert crd()["metadata"]["name"] == "batchinferences.batchinfer.io"
    assert spec["names"]["shortNames"] == ["bi"] and spec["names"]["kind"] == "BatchInference"
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Shards", "Requests", "Progress", "ETA", "Age", "Message"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_pass_the_schema_and_the_operator(path: Any) -> None:
    obj = yaml.safe_load(path.read_text())
    assert validation_errors(obj) == []
    validate_spec(obj["spec"], OperatorSettings())


BAD = {
    "shards zero": (lambda s: s.update(shards=0), "shards"),
    "parallelism above shards": (lambda s: s.update(shards=2, parallelism=3), "parallelism must be <= shards"),
    "file url": (lambda s: s["input"].update(url="file:///etc/passwd"), "file:// is refused"),
    "relative path": (lambda s: s["output"].update(url="out.jsonl"), "must be an s3://"),
    "dot dot": (lambda s: s.update(model="/models/../etc"), "must not contain '..'"),
    "model over https": (lambda s: s.update(model="https://host/models/m"), "model must be an s3:// URI"),
    "missing input": (lambda s: s.pop("input"), "'input' is a required property"),
    "bad dtype": (lambda s: s["engine"].update(dtype="int3"), "is not one of"),
    "negative retries": (lambda s: s.update(retries={"perShard": -1}), "retries.perShard"),
    "too many failed shards": (lambda s: s.update(retries={"failedShardsAllowed": 4}), "failedShardsAllowed"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_schema_rejects_bad_specs(case: str) -> None:
    obj = example("s3-in-out")
    mutate, expected = BAD[case]
    mutate(obj["spec"])
    errors = validation_errors(obj)
    assert errors, case
    assert expected in " ".join(errors) or case in ("shards zero", "negative retries")


def test_long_names_are_rejected_by_cel() -> None:
    obj = example("s3-in-out")
    obj["metadata"]["name"] = "n" * 52
    assert validation_errors(obj) == ["<root>: metadata.name must be at most 51 characters: the shards Job's "
                                      "pods are named <name>-shards-<index>, a 63-character DNS label"]


def test_status_as_written_by_the_operator_passes_the_schema() -> None:
    obj = example("s3-in-out")
    obj["status"] = BatchInferenceStatus(conditions=[]).wire()
    assert validation_errors(obj) == []


def _aliases(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def _walk(props: dict[str, Any], model: type[BaseModel], where: str) -> None:
    assert set(props) == _aliases(model), where
    for name, info in model.model_fields.items():
        sub = info.annotation
        for candidate in getattr(sub, "__args__", (sub,)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                node = props[info.alias or name]
                node = node["items"] if node.get("type") == "array" else node
                node = node.get("additionalProperties") or node  # a map of them
                _walk(node.get("properties", {}), candidate, f"{where}.{info.alias}")


def test_schema_and_pydantic_models_have_the_same_fields() -> None:
    root = schema()["properties"]
    _walk(root["spec"]["properties"], BatchInferenceSpec, "spec")
    _walk(root["status"]["properties"], BatchInferenceStatus, "status")


def test_schema_rejects_what_pydantic_rejects_and_vice_versa_for_examples() -> None:
    obj = copy.deepcopy(example("http-in-put-out"))
    obj["spec"]["parallelism"] = 4
    assert validation_errors(obj)
    with pytest.raises(ValueError, match="parallelism"):
        validate_spec(obj["spec"], OperatorSettings())
