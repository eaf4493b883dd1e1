"""Fixtures of the reliability suite: the bundled tiny model (shared with tests/batch) and the
real local servers (tests/servers.py, plus the fault-injecting ones in faults.py)."""

from tests.batch.conftest import tiny_model  # noqa: F401
from tests.operator.conftest import controller, kube  # noqa: F401
