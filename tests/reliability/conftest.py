"""Fixtures of the reliability suite: the bundled tiny model (shared with tests/batch), the real
local servers (tests/servers.py, plus the fault-injecting ones in faults.py) and, for the
operator's faults, the real control plane (tests/cluster/) with the staging Secret in place."""

from typing import Any

import pytest

from tests.batch.conftest import tiny_model  # noqa: F401
from tests.cluster.harness import Cluster


@pytest.fixture
def staged(cluster: Cluster, s3_server: Any) -> Cluster:
    """The cluster of this test with the Secret that holds moto's S3 credentials."""
    from tests.operator.test_operator_success import s3_secret  # runs `worker --help`: only when used

    cluster.kube.create("/api/v1/namespaces/{ns}/secrets", s3_secret(s3_server))
    return cluster
