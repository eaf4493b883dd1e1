"""Shared fixtures: real local servers for storage tests (see tests/servers.py)."""

from tests.servers import _moto_server, http_server, s3_server  # noqa: F401
