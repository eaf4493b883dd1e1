"""Shared fixtures: real local servers for storage tests (tests/servers.py) and the real
Kubernetes control plane with the kubelet player (tests/cluster/)."""

import os

import pytest

from worker.contract import ENV_METRICS_PORT

from tests.servers import _moto_server, http_server, s3_server  # noqa: F401

pytest_plugins = ["tests.cluster.fixtures"]

# run-shard and gather serve metrics on a fixed port by default, as pods do; tests run many at
# once on one host, so they serve none unless a test asks (the pod template sets its own).
os.environ.setdefault(ENV_METRICS_PORT, "0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_cluster_tests` read what the whole suite did to the control plane: last."""
    items.sort(key=lambda item: item.get_closest_marker("after_cluster_tests") is not None)
