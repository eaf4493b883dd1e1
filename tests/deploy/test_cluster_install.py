"""Both installs into the real API server: `kubectl apply -k manifests/` (done by the session's
control plane fixture, on a fresh cluster) and `helm install` of the chart; then the operator
started exactly as the chart's Deployment says (command, args, env) serves the bundled example CR."""

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster import audit
from tests.cluster.api import KubeClient
from tests.cluster.control_plane import ControlPlane, free_port, kubeconfig_text
from tests.cluster.harness import POD_ENV, Cluster
from tests.cluster.kubelet import VENV_BIN
from tests.deploy.render import CHART, MANIFESTS
from tests.deploy.tools import Tools
from tests.operator.conftest import tiny_model  # noqa: F401
from tests.operator.test_operator_success import ENGINE, input_bytes, run_batch_whole, s3_secret

RELEASE = "bi"


def test_kubectl_apply_k_manifests_is_accepted(control_plane: ControlPlane, admin: KubeClient) -> None:
    applied = control_plane.install_output
    for obj in ("namespace/batchinfer-system", "customresourcedefinition.apiextensions.k8s.io/"
                "batchinferences.batchinfer.io", "serviceaccount/batchinfer-operator",
                "clusterrole.rbac.authorization.k8s.io/batchinfer-operator",
                "clusterrolebinding.rbac.authorization.k8s.io/batchinfer-operator",
                "service/batchinfer-operator-metrics", "deployment.apps/batchinfer-operator"):
        assert f"{obj} created" in applied, applied
    deployment = admin.get("/apis/apps/v1/namespaces/batchinfer-system/deployments/batchinfer-operator")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "batchinfer-operator"


def helm_install(tools: Tools, control_plane: ControlPlane, namespace: str, *values: str) -> str:
    proc = subprocess.run(
        [str(tools.helm), "install", RELEASE, str(CHART), "--namespace", namespace,
         f"--kubeconfig={control_plane.workdir / 'admin.kubeconfig'}", *values],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def deployment_container(kube: KubeClient) -> dict[str, Any]:
    deployments = kube.items("/apis/apps/v1/namespaces/{ns}/deployments")
    assert [d["metadata"]["name"] for d in deployments] == [f"{RELEASE}-batchinfer-operator"]
    pod_spec = deployments[0]["spec"]["template"]["spec"]
    return pod_spec["containers"][0] | {"serviceAccountName": pod_spec["serviceAccountName"]}


def example_cr(cluster: Cluster, http_server: Any, s3_server: Any, model: Path) -> dict[str, Any]:
    """The bundled example, pointed at this machine's servers, the model on a claim."""
    example = yaml.safe_load((MANIFESTS / "examples" / "http-in-put-out.yaml").read_text())
    spec = example["spec"]
    spec["input"]["url"], spec["output"]["url"] = http_server.url("in.jsonl"), http_server.url("out.jsonl")
    spec["staging"]["url"], spec["credentials"]["secretName"] = s3_server.url("staging"), "staging-s3"
    spec["engine"] = ENGINE  # the small engine of the byte-for-byte comparison
    claim = cluster.model_claim(model, POD_ENV)
    spec["model"], spec["worker"] = claim["model"], spec["worker"] | claim["worker"]
    return spec


@pytest.mark.timeout(400)
def test_helm_install_then_the_deployments_own_container_serves_a_cr(
    tools: Tools, control_plane: ControlPlane, admin: KubeClient, cluster: Cluster, http_server: Any,
    s3_server: Any, tiny_model: Path, tmp_path: Path,
) -> None:
    health, metrics = free_port(), free_port()
    out = helm_install(tools, control_plane, cluster.namespace, f"--set=healthPort={health}",
                       f"--set=metrics.port={metrics}")
    assert "STATUS: deployed" in out, out
    container = deployment_container(cluster.kube)
    token = admin.create_token(cluster.namespace, container["serviceAccountName"])
    kubeconfig = tmp_path / "sa.kubeconfig"
    kubeconfig.write_text(kubeconfig_text(control_plane.url, control_plane.ca_file, token))
    cluster.operator.kubeconfig = kubeconfig
    # Exactly the container's command line and environment; `kopf` is this virtualenv's.
    argv = [str(VENV_BIN / container["command"][0]), *container["command"][1:], *container.get("args", [])]
    cluster.operator.start(argv, env={e["name"]: e.get("value", "") for e in container["env"]})

    http_server.store.files["/in.jsonl"] = input_bytes()
    cluster.kube.create("/api/v1/namespaces/{ns}/secrets", s3_secret(s3_server))
    cluster.create_cr("http-batch", **example_cr(cluster, http_server, s3_server, tiny_model))
    status = cluster.wait_phase("http-batch", {"Succeeded", "Failed"}, timeout=300)
    assert status["phase"] == "Succeeded", status
    meta = cluster.cr("http-batch")["metadata"]
    from batchinfer_operator.validation import batch_id, created_unix

    expected, _ = run_batch_whole(tmp_path, tiny_model, batch_id(meta["uid"]), created_unix(meta["creationTimestamp"]))
    assert http_server.store.files["/out.jsonl"] == expected
    user = f"system:serviceaccount:{cluster.namespace}:{container['serviceAccountName']}"
    calls = [c for c in audit.calls(control_plane.audit_log) if c.user == user]
    assert ("create", "jobs", 201) in {(c.verb, c.resource, c.code) for c in calls}  # it was this account
    assert [c for c in calls if not c.authorized] == []  # the chart's RBAC granted everything it asked
