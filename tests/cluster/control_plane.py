"""A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver and kube-controller-manager
from the directory named by KUBEBUILDER_ASSETS (envtest's convention, plus the controller
manager). Its own CA and serving certificate, static tokens, RBAC, a ServiceAccount signing key,
free ports, data in a temporary directory and an audit log. No kubelet: tests play it."""

import datetime
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
ADMIN_USER = "test-admin"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
# Every request, with its verb, resource, user and response code (the least-privilege test reads
# it); the bodies of status writes and Job creations too (tests check every status ever written).
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Request
  verbs: [patch, update]
  resources: [{group: batchinfer.io, resources: [batchinferences/status]}]
- level: Request
  verbs: [create]
  resources: [{group: batch, resources: [jobs]}]
- level: Metadata
"""
# No node lifecycle: the kubelet player's Node is never tainted or its pods evicted.
CONTROLLERS = "*,-node-lifecycle-controller,-taint-eviction-controller,-device-taint-eviction-controller," \
              "-node-ipam-controller"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started; says which part and the tail of its log."""


def assets_dir() -> Path | None:
    """The directory of the binaries, or None when KUBEBUILDER_ASSETS is unset or incomplete."""
    root = os.environ.get("KUBEBUILDER_ASSETS")
    if not root or not all((Path(root) / name).is_file() for name in BINARIES):
        return None
    return Path(root)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _certificate(subject: str, key: rsa.RSAPrivateKey, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None,
                 ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer[0].subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def write_pki(directory: Path) -> None:
    """ca.crt, apiserver.crt/.key (SAN 127.0.0.1, localhost) and the ServiceAccount key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate("batchinfer-test-ca", ca_key, None, ca=True)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = _certificate("kube-apiserver", server_key, (ca, ca_key), ca=False)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (directory / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "ca.key").write_bytes(_pem_key(ca_key))
    (directory / "apiserver.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (directory / "apiserver.key").write_bytes(_pem_key(server_key))
    (directory / "sa.key").write_bytes(_pem_key(sa_key))
    (directory / "sa.pub").write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def kubeconfig_text(server: str, ca_file: Path, token: str, user: str = "test") -> str:
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters: [{{name: test, cluster: {{server: '{server}', certificate-authority: '{ca_file}'}}}}]\n"
        f"users: [{{name: {user}, user: {{token: '{token}'}}}}]\n"
        f"contexts: [{{name: test, context: {{cluster: test, user: {user}}}}}]\n"
    )


@dataclass
class ControlPlane:
    """`with ControlPlane(assets, workdir) as cp:`; cp.url, cp.admin_token, cp.ca_file, cp.audit_log."""

    assets: Path
    workdir: Path
    admission_plugins: tuple[str, ...] = ("OwnerReferencesPermissionEnforcement",)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pki = self.workdir / "pki"
        self.admin_token = secrets.token_hex(16)
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        self.port, self.kcm_port = free_port(), free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca_file = self.pki / "ca.crt"
        self.audit_log = self.workdir / "audit.log"

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> "ControlPlane":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        write_pki(self.pki)
        kcm_token = secrets.token_hex(16)
        (self.workdir / "tokens.csv").write_text(
            f'{self.admin_token},{ADMIN_USER},uid-admin,"system:masters"\n'
            f"{kcm_token},{CONTROLLER_MANAGER_USER},uid-kcm\n")
        (self.workdir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        (self.workdir / "kcm.kubeconfig").write_text(kubeconfig_text(self.url, self.ca_file, kcm_token, "kcm"))
        self._spawn("etcd", self._etcd_args())
        self._wait("etcd", lambda: requests.get(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2).ok)
        self._spawn("kube-apiserver", self._apiserver_args())
        self._wait("kube-apiserver", lambda: requests.get(
            f"{self.url}/readyz", verify=self.ca_file, timeout=2,
            headers={"Authorization": f"Bearer {self.admin_token}"}).ok)
        self._spawn("kube-controller-manager", self._controller_manager_args())
        self._wait("the default ServiceAccount", lambda: requests.get(
            f"{self.url}/api/v1/namespaces/default/serviceaccounts/default", verify=self.ca_file, timeout=2,
            headers={"Authorization": f"Bearer {self.admin_token}"}).ok)

    def stop(self) -> None:
        """Stops what it started, by pid, newest first."""
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(15)

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.workdir / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen([str(self.assets / name), *args], stdout=log,
                                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _wait(self, what: str, ready, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise ControlPlaneError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            try:
                if ready():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        last = list(self.processes)[-1]
        raise ControlPlaneError(f"{what} not ready after {timeout:.0f} s:\n{self.log_tail(last)}")

    # -- flags ------------------------------------------------------------------------------------
    def _etcd_args(self) -> list[str]:
        client, peer = f"http://127.0.0.1:{self.etcd_port}", f"http://127.0.0.1:{self.etcd_peer_port}"
        return ["--name=test", f"--data-dir={self.workdir / 'etcd'}", f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}", f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=test={peer}",
                "--unsafe-no-fsync"]  # test data only: durability costs seconds per write here

    def _apiserver_args(self) -> list[str]:
        pki = self.pki
        args = [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}", f"--token-auth-file={self.workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC", f"--service-account-issuer={self.url}",
            f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/24", "--endpoint-reconciler-type=none", "--profiling=false",
            f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}", f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
        ]
        if self.admission_plugins:
            args.append(f"--enable-admission-plugins={','.join(self.admission_plugins)}")
        return args

    def _controller_manager_args(self) -> list[str]:
        kubeconfig = self.workdir / "kcm.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", "--bind-address=127.0.0.1",
            f"--secure-port={self.kcm_port}", "--leader-elect=false", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={self.pki / 'sa.key'}", f"--root-ca-file={self.ca_file}",
            f"--controllers={CONTROLLERS}",
        ]
