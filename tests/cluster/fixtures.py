"""pytest fixtures of the real control plane (one per test session) and of each test on it: a
namespace of its own, the kubelet player, the operator process as the chart's ServiceAccount."""

import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.api import KubeClient
from tests.cluster.control_plane import ControlPlane, assets_dir, kubeconfig_text
from tests.cluster.harness import OPERATOR_ACCOUNT, OPERATOR_NAMESPACE, Cluster
from tests.cluster.kubelet import KubeletPlayer, node_manifest
from tests.cluster.operator_process import OperatorProcess
from tests.deploy.tools import ROOT, ensure_tools

MISSING = ("real-cluster tests skipped: KUBEBUILDER_ASSETS does not name a directory with etcd, kube-apiserver "
           "and kube-controller-manager; run `.ci/k8s-assets` (unpacks ../shared/k8s) and export "
           "KUBEBUILDER_ASSETS=$PWD/.cache/k8s/bin, or just `make test`")
CRD = "batchinferences.batchinfer.io"


def cluster_required() -> bool:
    """Under .ci/run (CI=true) a missing control plane fails the run: no silent skip in CI."""
    return os.environ.get("CI", "").lower() in ("1", "true") or bool(os.environ.get("BATCHINFER_REQUIRE_CLUSTER"))


def wait_until(what: str, predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.2)


def kubectl(control_plane: ControlPlane, *args: str) -> str:
    proc = subprocess.run([str(ensure_tools().kubectl), f"--kubeconfig={control_plane.workdir / 'admin.kubeconfig'}",
                           *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def _install(control_plane: ControlPlane, admin: KubeClient) -> str:
    """The plain install, `kubectl apply -k manifests/`, as the README says; returns its output."""
    (control_plane.workdir / "admin.kubeconfig").write_text(
        kubeconfig_text(control_plane.url, control_plane.ca_file, control_plane.admin_token, "admin"))
    applied = kubectl(control_plane, "apply", "-k", str(ROOT / "manifests"))
    wait_until("the CRD established", lambda: any(
        c["type"] == "Established" and c["status"] == "True" for c in
        ((admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}") or {})
         .get("status", {}).get("conditions") or [])))
    admin.create("/api/v1/nodes", node_manifest())
    return applied


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    assets = assets_dir()
    if assets is None:
        if cluster_required():
            pytest.fail(MISSING.replace("skipped", "required (CI)"))
        pytest.skip(MISSING)
    with ControlPlane(assets, tmp_path_factory.mktemp("control-plane")) as cp:
        cp.install_output = _install(cp, KubeClient(cp.url, cp.admin_token, cp.ca_file))
        yield cp


@pytest.fixture(scope="session")
def admin(control_plane: ControlPlane) -> KubeClient:
    return KubeClient(control_plane.url, control_plane.admin_token, control_plane.ca_file)


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane, admin: KubeClient) -> Path:
    """A kubeconfig with a token of the ServiceAccount the chart's RBAC binds (not admin)."""
    token = admin.create_token(OPERATOR_NAMESPACE, OPERATOR_ACCOUNT)
    path = control_plane.workdir / "operator.kubeconfig"
    path.write_text(kubeconfig_text(control_plane.url, control_plane.ca_file, token, OPERATOR_ACCOUNT))
    return path


def fresh_namespace(admin: KubeClient, hint: str) -> str:
    name = f"{re.sub(r'[^a-z0-9]+', '-', hint.lower()).strip('-')[:40].strip('-')}-{secrets.token_hex(3)}"
    admin.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    # Pods are refused until the ServiceAccount controller has made the namespace's `default`.
    wait_until(f"ServiceAccount default in {name}",
               lambda: admin.get(f"/api/v1/namespaces/{name}/serviceaccounts/default") is not None)
    return name


@pytest.fixture
def kube(admin: KubeClient, request: pytest.FixtureRequest) -> Iterator[KubeClient]:
    """Admin on a namespace of this test's own, deleted afterwards (its runs with it)."""
    namespace = fresh_namespace(admin, request.node.name)
    yield admin.for_namespace(namespace)
    admin.delete(f"/api/v1/namespaces/{namespace}")


@pytest.fixture
def kubelet(kube: KubeClient, tmp_path: Path) -> Iterator[KubeletPlayer]:
    with KubeletPlayer(kube, tmp_path / "pods") as player:
        yield player
    assert not player.errors, player.errors


@pytest.fixture
def operator(kube: KubeClient, operator_kubeconfig: Path, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator process for this test's namespace (not started yet)."""
    with OperatorProcess(tmp_path, operator_kubeconfig) as op:
        yield op


@pytest.fixture
def cluster(kube: KubeClient, kubelet: KubeletPlayer, operator: OperatorProcess,
            control_plane: ControlPlane) -> Cluster:
    return Cluster(kube=kube, kubelet=kubelet, operator=operator, audit_log=control_plane.audit_log)
