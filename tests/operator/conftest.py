"""Fixtures of the operator's tests; the real control plane's are in tests/cluster/fixtures.py."""

import subprocess
from pathlib import Path

import pytest

from tests.cluster.kubelet import VENV_BIN


def worker_has(command: str) -> bool:
    result = subprocess.run([f"{VENV_BIN}/worker", "--help"], capture_output=True, text=True)
    return command in result.stdout


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled tiny model, written by a subprocess: paddle stays out of this process."""
    out = tmp_path_factory.mktemp("tiny") / "model"
    subprocess.run([f"{VENV_BIN}/worker", "make-tiny-model", str(out)], check=True, capture_output=True)
    return out
