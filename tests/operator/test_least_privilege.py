"""Least privilege, from the API server's own record: every call the operator's ServiceAccount
made in the whole suite (the audit log) is granted by the shipped RBAC, none was refused, and
every rule of it was used (or says here why it is kept)."""

import time
from pathlib import Path

import pytest
import yaml

from tests.cluster import audit
from tests.cluster.api import KubeClient
from tests.cluster.control_plane import ControlPlane, kubeconfig_text
from tests.cluster.harness import CR_PATH, OPERATOR_NAMESPACE, OPERATOR_USER, cr
from tests.cluster.operator_process import OperatorProcess

RBAC = Path(__file__).resolve().parents[2] / "manifests/rbac.yaml"
Grant = tuple[str, str, str]  # verb, apiGroup, resource[/subresource]
# Granted, never called by the code, kept on purpose.
EXPLAINED: dict[Grant, str] = {
    # The OwnerReferencesPermissionEnforcement admission plugin checks this grant when a Job
    # names its run with blockOwnerDeletion; the operator itself never calls it.
    ("update", "batchinfer.io", "batchinferences/finalizers"): "checked by admission, not called",
    # kopf patches or updates through whichever verb its version uses; both are its own writes.
    ("update", "batchinfer.io", "batchinferences"): "kopf's own writes (finalizer, annotations)",
    ("update", "batchinfer.io", "batchinferences/status"): "kopf's own writes",
}


def grants(rules: list[dict]) -> set[Grant]:
    return {(verb, group, resource) for rule in rules for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def cluster_role_rules() -> list[dict]:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    return next(d for d in docs if d["kind"] == "ClusterRole")["rules"]


def problems(calls: list[audit.Call], rules: list[dict]) -> list[str]:
    """What is wrong with a role for these calls: refusals, and calls it does not grant."""
    used = {(c.verb, c.group, c.resource) for c in calls}
    refused = sorted({f"refused by the server: {c.verb} {c.resource}" for c in calls if not c.authorized})
    return refused + [f"used, not granted: {verb} {group}/{resource}" for verb, group, resource in
                      sorted(used - grants(rules))]


def handler_errors(kube: KubeClient, name: str) -> list[dict]:
    return [e for e in kube.items("/api/v1/namespaces/{ns}/events")
            if e["involvedObject"]["name"] == name and e["type"] in ("Warning", "Error")
            and "Handler" in e.get("message", "") and "failed" in e.get("message", "")]


def calls_of(control_plane: ControlPlane, user: str) -> list[audit.Call]:
    calls = [c for c in audit.calls(control_plane.audit_log) if c.user == user]
    if not calls:
        pytest.fail(f"{user} made no call: run this test with the operator's tests (it reads their record)")
    return calls


@pytest.mark.after_cluster_tests
def test_every_call_is_granted_none_refused_and_every_grant_used(control_plane: ControlPlane) -> None:
    calls, rules = calls_of(control_plane, OPERATOR_USER), cluster_role_rules()
    assert problems(calls, rules) == []
    unused = grants(rules) - {(c.verb, c.group, c.resource) for c in calls} - set(EXPLAINED)
    assert unused == set(), "granted, never used: drop the rule or explain it"


def test_a_role_without_one_grant_is_caught(
    control_plane: ControlPlane, admin: KubeClient, kube: KubeClient, tmp_path: Path
) -> None:
    """The check can fail: the operator run as an account whose role lacks `patch` on the
    status subresource is refused by the real server, and the check names that grant. kopf's
    handler error reaches the run as an Event (kopf 1.45 posts its loggers only when told to)."""
    rules = [r | {"verbs": [v for v in r["verbs"] if v != "patch"]} if r["resources"] == ["batchinferences/status"]
             else r for r in cluster_role_rules()]
    account, ns = "reduced-operator", OPERATOR_NAMESPACE
    admin.create("/apis/rbac.authorization.k8s.io/v1/clusterroles",
                 {"metadata": {"name": account}, "rules": rules})
    admin.create(f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": account}})
    admin.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "metadata": {"name": account}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                   "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}]})
    config = tmp_path / "reduced.kubeconfig"
    config.write_text(kubeconfig_text(control_plane.url, control_plane.ca_file, admin.create_token(ns, account)))
    user = f"system:serviceaccount:{ns}:{account}"
    with OperatorProcess(tmp_path, config) as operator:
        operator.start()
        kube.create(CR_PATH, cr("refused", model="/models/m", input={"url": "http://169.254.169.254/in.jsonl"},
                                output={"url": "s3://b/out.jsonl"}, shards=1))
        deadline = time.monotonic() + 60
        while not handler_errors(kube, "refused"):  # kopf's own error, posted as an Event on the run
            assert time.monotonic() < deadline, operator.log()[-3000:]
            time.sleep(0.5)
    found = problems(calls_of(control_plane, user), rules)
    assert "refused by the server: patch batchinferences/status" in found, found
    assert "used, not granted: patch batchinfer.io/batchinferences/status" in found, found
