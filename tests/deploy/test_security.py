"""Least privilege and locked-down containers in everything we install or create."""

from __future__ import annotations

from pathlib import Path

import pytest
from batchinfer_operator.jobs import gather_job, shards_job
from batchinfer_operator.reconcile import run_values
from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.validation import validate_spec

from tests.deploy.policy import container_violations, rbac_violations, workload_violations
from tests.deploy.render import (
    MANIFESTS, OLDEST_KUBERNETES, kustomize, latest_kubernetes, read_yaml, validate,
)

# What the operator may do, exactly: adding a permission must be a deliberate test change.
OPERATOR_PERMISSIONS = {
    ("apiextensions.k8s.io", "customresourcedefinitions", verb) for verb in ("list", "watch")
} | {
    ("batchinfer.io", "batchinferences", verb) for verb in ("get", "list", "watch", "patch", "update")
} | {
    ("batchinfer.io", "batchinferences/status", verb) for verb in ("patch", "update")
} | {
    ("batchinfer.io", "batchinferences/finalizers", "update"),
} | {
    ("batch", "jobs", verb) for verb in ("get", "list", "watch", "create", "patch")
} | {
    ("", "pods", "list"), ("", "events", "create"), ("", "events", "list"),
}


def permissions(objects: list[dict], kinds: set[str]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for obj in objects if obj["kind"] in kinds
        for rule in obj["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.fixture(scope="module")
def everything(tools, chart_default, chart_all) -> list[dict]:
    objects = chart_default + chart_all
    if (MANIFESTS / "crd.yaml").exists():
        objects += kustomize(tools)
    return objects


def test_no_wildcards_and_no_secrets_in_any_role(everything):
    assert any(o["kind"] in {"Role", "ClusterRole"} for o in everything)
    assert rbac_violations(everything) == []


def test_every_container_is_locked_down(everything):
    assert any(o["kind"] == "Deployment" for o in everything)
    assert workload_violations(everything) == []


def test_cluster_wide_operator_gets_exactly_what_it_uses(chart_default):
    assert permissions(chart_default, {"ClusterRole"}) == OPERATOR_PERMISSIONS


def test_namespaced_operator_gets_the_same_split_by_scope(chart_all):
    namespaced = permissions(chart_all, {"Role"})
    cluster = permissions(chart_all, {"ClusterRole"})
    crds = {p for p in OPERATOR_PERMISSIONS if p[1] == "customresourcedefinitions"}
    assert namespaced == OPERATOR_PERMISSIONS - crds
    # kopf resolves its --namespace patterns by listing namespace names.
    assert cluster == crds | {("", "namespaces", "list"), ("", "namespaces", "watch")}


def test_the_policy_catches_wildcards_and_secrets():
    role = {
        "kind": "ClusterRole",
        "metadata": {"name": "too-much"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["*"]},
            {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]},
        ],
    }
    found = rbac_violations([role])
    assert len(found) == 3
    assert "secrets" in found[0] and "verbs" in found[1] and "apiGroups" in found[2]


def test_the_policy_catches_each_missing_lockdown():
    pod = {"containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}
    found = container_violations("pod/x", pod)
    for needle in ("runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
                   "drop lacks ALL", "adds capabilities", "seccompProfile"):
        assert any(needle in f for f in found), needle
    pod_level = {"securityContext": {"runAsNonRoot": True, "runAsUser": 0,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{"name": "c", "securityContext": {
                     "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                     "capabilities": {"drop": ["ALL"]}}}]}
    assert container_violations("pod/y", pod_level) == ["pod/y container c: runAsUser is 0"]


EXAMPLES = sorted((MANIFESTS / "examples").glob("*.yaml"))


def worker_jobs(example: Path) -> list[dict]:
    """The two Jobs the operator builds for an example resource, as its reconciler does."""
    [cr] = read_yaml(example)
    cr["metadata"] |= {"namespace": "team-a", "uid": "0b7c6c1e-1111-2222-3333-444455556666",
                       "creationTimestamp": "2026-01-02T03:04:05Z"}
    settings = OperatorSettings(default_staging_url="s3://staging/batchinfer")
    spec = validate_spec(cr["spec"], settings)
    run = run_values(cr, spec, settings)
    return [shards_job(cr, spec, run, settings), gather_job(cr, spec, run, settings)]


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_worker_pods_the_operator_builds_are_locked_down(example):
    jobs = worker_jobs(example)
    assert workload_violations(jobs) == []
    for job in jobs:
        pod = job["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert {"name": "scratch", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]
        assert not any("hostPath" in volume for volume in pod["volumes"])


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, latest_kubernetes()])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_worker_jobs_validate_against_the_api_schemas(example, version):
    assert all(validate(job, version) for job in worker_jobs(example))
