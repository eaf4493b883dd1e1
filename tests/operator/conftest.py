"""Fixtures of the operator's integration tests: kmock's API emulator, the Job controller played
by the test, and the real operator under kopf's KopfRunner."""

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.job_controller import VENV_BIN, JobController
from tests.operator.kube_api import KubeAPI

NAMESPACE = "default"
CR_PATH = f"/apis/batchinfer.io/v1alpha1/namespaces/{NAMESPACE}/batchinferences"


def worker_has(command: str) -> bool:
    result = subprocess.run([f"{VENV_BIN}/worker", "--help"], capture_output=True, text=True)
    return command in result.stdout


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled tiny model, written by a subprocess: paddle stays out of this process."""
    out = tmp_path_factory.mktemp("tiny") / "model"
    subprocess.run([f"{VENV_BIN}/worker", "make-tiny-model", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeAPI]:
    with KubeAPI() as api:
        monkeypatch.setenv("KUBECONFIG", str(api.kubeconfig(tmp_path)))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.setenv("BATCHINFER_METRICS_PORT", "0")
        yield api


@pytest.fixture
def controller(kube: KubeAPI, tmp_path: Path) -> Iterator[JobController]:
    with JobController(kube, NAMESPACE, tmp_path / "pods") as jc:
        yield jc
    assert not jc.errors, jc.errors


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_operator(*extra: str) -> Iterator[Any]:
    from kopf.testing import KopfRunner

    args = ["run", "-m", "batchinfer_operator", "--standalone", "-A", "--verbose", *extra]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None, runner.output
    assert runner.exit_code == 0, runner.output


def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 90.0, detail: Callable[[], str] = str) -> Any:
    """Poll until predicate() is truthy; fail with `what` (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}: {detail()}")


