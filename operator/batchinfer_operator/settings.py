"""Operator settings, read once from the environment (BATCHINFER_*): a pydantic model."""

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "BATCHINFER_"


class SettingsError(ValueError):
    """An operator setting in the environment is invalid."""


class OperatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    worker_image: str = Field("ghcr.io/batchinfer/worker:0.1.0", min_length=1)
    default_staging_url: str | None = None
    namespaces: tuple[str, ...] = Field((), description="empty: every namespace")
    allowed_url_schemes: frozenset[str] = frozenset({"s3", "http", "https"})
    # Hosts a CR may name although they are link-local or metadata addresses (e.g. a node-local
    # proxy on 169.254.x.x); empty by default: such hosts hand out node credentials.
    allowed_hosts: frozenset[str] = frozenset()
    resync_seconds: float = Field(10.0, gt=0, description="how often each live run is re-checked")
    metrics_port: int = Field(8080, ge=0, le=65535, description="0 disables the metrics endpoint")
    liveness_endpoint: str = "http://0.0.0.0:8081/healthz"
    run_as_user: int = Field(65532, ge=1, description="uid of the worker pods (never root)")

    @field_validator("allowed_url_schemes")
    @classmethod
    def _no_file_scheme(cls, schemes: frozenset[str]) -> frozenset[str]:
        if "file" in schemes:
            raise ValueError("file:// can never be allowed: a CR must not read the pod's files")
        return frozenset(s.lower() for s in schemes)

    @field_validator("allowed_hosts")
    @classmethod
    def _normalise_hosts(cls, hosts: frozenset[str]) -> frozenset[str]:
        return frozenset(h.lower().rstrip(".").strip("[]") for h in hosts)


_LIST_FIELDS = {"namespaces", "allowed_url_schemes", "allowed_hosts"}


def settings_from_env(environ: Mapping[str, str] | None = None) -> OperatorSettings:
    """BATCHINFER_WORKER_IMAGE=..., BATCHINFER_NAMESPACES=a,b; lists are comma-separated."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name in OperatorSettings.model_fields:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None or raw == "":
            continue
        values[name] = [p.strip() for p in raw.split(",") if p.strip()] if name in _LIST_FIELDS else raw
    try:
        return OperatorSettings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(f"invalid operator settings in {ENV_PREFIX}* environment: {exc}") from exc
