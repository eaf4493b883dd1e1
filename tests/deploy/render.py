"""Render the chart and the kustomize install into plain objects, and validate them.

Effects (running helm and kubectl) stay here; the tests and policy checks get lists of dicts.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes_validate
import yaml

from tests.deploy.tools import ROOT, Tools

CHART = ROOT / "charts" / "batchinfer-operator"
MANIFESTS = ROOT / "manifests"
RELEASE = "batchinfer-operator"
NAMESPACE = "batchinfer-system"
# The oldest release the chart's kubeVersion admits.
OLDEST_KUBERNETES = "1.31"
# Labels only Helm sets; the kustomize install is the chart minus these.
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")


class RenderError(RuntimeError):
    """helm or kubectl refused the input; carries their stderr."""


def _run(argv: list[str | Path]) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RenderError(f"{' '.join(map(str, argv))} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def load_all(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def helm(tools: Tools, *args: str | Path) -> str:
    return _run([tools.helm, *args])


def helm_template(tools: Tools, *args: str | Path) -> list[dict]:
    """`helm template` of the chart as the release the docs install, plus extra args."""
    return load_all(helm(tools, "template", RELEASE, CHART, "--namespace", NAMESPACE, *args))


def kustomize(tools: Tools, path: Path = MANIFESTS) -> list[dict]:
    return load_all(_run([tools.kubectl, "kustomize", path]))


def latest_kubernetes() -> str:
    return kubernetes_validate.utils.latest_version()


def validate(obj: dict, version: str) -> bool:
    """Strict schema validation; False when the kind has no built-in schema (a CR)."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.utils.SchemaNotFoundError:
        return False
    return True


def strip_helm_labels(obj: dict) -> dict:
    """A copy of obj without Helm's own labels, wherever labels appear."""
    if isinstance(obj, dict):
        return {
            key: (
                {k: v for k, v in value.items() if k not in HELM_LABELS}
                if key == "labels" and isinstance(value, dict)
                else strip_helm_labels(value)
            )
            for key, value in obj.items()
        }
    if isinstance(obj, list):
        return [strip_helm_labels(item) for item in obj]
    return obj


def by_identity(objects: list[dict]) -> dict[tuple[str, str, str], dict]:
    """Index objects by (kind, namespace, name)."""
    return {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects
    }


def read_yaml(path: Path) -> list[dict]:
    return load_all(path.read_text())


def unknown_fields(obj, schema: dict, path: str = "") -> list[str]:
    """Fields the API server's strict field validation would refuse (kubectl apply's default)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(obj, dict) and "properties" in schema:
        found = [f"{path}.{k}" for k in obj if k not in schema["properties"]]
        return found + [u for k, v in obj.items() if k in schema["properties"]
                        for u in unknown_fields(v, schema["properties"][k], f"{path}.{k}")]
    if isinstance(obj, dict) and isinstance(schema.get("additionalProperties"), dict):
        return [u for k, v in obj.items() for u in unknown_fields(v, schema["additionalProperties"], f"{path}.{k}")]
    if isinstance(obj, list) and "items" in schema:
        return [u for i, v in enumerate(obj) for u in unknown_fields(v, schema["items"], f"{path}[{i}]")]
    return []
