"""Fixtures of the reliability suite: the bundled tiny model (shared with tests/batch) and the
real local servers (tests/servers.py, plus the fault-injecting ones in faults.py); the
operator as its own process (operator_run.py)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.batch.conftest import tiny_model  # noqa: F401
from tests.operator.conftest import NAMESPACE, controller, kube  # noqa: F401
from tests.operator.kube_api import KubeAPI
from tests.reliability.operator_run import OperatorProcess


@pytest.fixture
def operator(tmp_path: Path, kube: KubeAPI, s3_server: Any) -> Iterator[OperatorProcess]:
    """The operator as its own process (not started yet), with the staging Secret in place."""
    from tests.operator.test_operator_success import s3_secret  # runs `worker --help`: only when used

    kube.request("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", s3_secret(s3_server))
    with OperatorProcess(tmp_path) as op:
        yield op
