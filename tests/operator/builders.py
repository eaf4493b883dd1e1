"""A CR as the API server returns it, for the unit tests of the pure parts."""

from typing import Any

UID = "1f0e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def make_cr(name: str = "run", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "s3://models/ernie", "input": {"url": "s3://in/batch.jsonl"},
        "output": {"url": "s3://out/results/batch.out.jsonl"}, "shards": 3,
    }
    base.update(spec)
    return {
        "apiVersion": "batchinfer.io/v1alpha1", "kind": "BatchInference",
        "metadata": {"name": name, "namespace": "team-a", "uid": UID, "generation": 2,
                     "creationTimestamp": "2026-01-02T03:04:05Z"},
        "spec": base,
    }
