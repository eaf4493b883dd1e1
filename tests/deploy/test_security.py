"""Least privilege and locked-down containers in everything we install or create."""

from __future__ import annotations

import pytest
from batchinfer_operator.jobs import gather_job, shards_job
from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.spec import BatchInferenceSpec
from batchinfer_operator.worker_command import RunValues

from tests.deploy.policy import container_violations, rbac_violations, workload_violations
from tests.deploy.render import MANIFESTS, OLDEST_KUBERNETES, kustomize, latest_kubernetes, validate

# What the operator may do, exactly: adding a permission must be a deliberate test change.
OPERATOR_PERMISSIONS = {
    ("apiextensions.k8s.io", "customresourcedefinitions", verb) for verb in ("get", "list", "watch")
} | {
    ("batchinfer.io", "batchinferences", verb) for verb in ("get", "list", "watch", "patch", "update")
} | {
    ("batchinfer.io", "batchinferences/status", verb) for verb in ("patch", "update")
} | {
    ("batch", "jobs", verb) for verb in ("get", "list", "watch", "create", "patch", "delete")
} | {
    ("", "pods", verb) for verb in ("get", "list", "watch")
} | {
    ("", "events", verb) for verb in ("create", "patch")
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


def worker_jobs() -> list[dict]:
    """The two Jobs the operator builds for a run that uses every pod-shaping spec field."""
    cr = {"metadata": {"name": "demo", "namespace": "team-a", "uid": "0b7c6c1e-1111-2222-3333-444455556666"}}
    spec = BatchInferenceSpec.model_validate({
        "model": "/models/ernie",
        "input": {"url": "s3://in/requests.jsonl"},
        "output": {"url": "s3://out/results.jsonl"},
        "credentials": {"secretName": "s3-creds"},
        "shards": 4,
        "worker": {
            "resources": {"limits": {"nvidia.com/gpu": 1}},
            "env": [{"name": "FLAGS_x", "value": "1"}],
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}],
            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
            "scratchSizeLimit": "20Gi",
        },
    })
    run = RunValues(input_url="s3://in/requests.jsonl", output_url="s3://out/results.jsonl",
                    staging_url="s3://out/.staging/x", num_shards=4, model="/models/ernie",
                    batch_id="batch-x", created=1700000000)
    settings = OperatorSettings()
    return [shards_job(cr, spec, run, settings), gather_job(cr, spec, run, settings)]


def test_worker_pods_the_operator_builds_are_locked_down():
    jobs = worker_jobs()
    assert workload_violations(jobs) == []
    for job in jobs:
        pod = job["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert {"name": "scratch", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, latest_kubernetes()])
def test_worker_jobs_validate_against_the_api_schemas(version):
    assert all(validate(job, version) for job in worker_jobs())
