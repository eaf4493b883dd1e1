"""The operator's API calls seen by the emulator, checked against the shipped ClusterRole."""

from pathlib import Path

import yaml

RBAC = Path(__file__).resolve().parents[2] / "manifests/rbac.yaml"


def cluster_role_rules() -> list[dict]:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    return next(d for d in docs if d["kind"] == "ClusterRole")["rules"]


def denied(calls: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    rules = cluster_role_rules()
    return {
        (verb, group, resource) for verb, group, resource in calls
        if not any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)
    }
