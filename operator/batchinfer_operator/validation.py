"""Validate a CR's spec (pydantic + URL policy) and derive the per-run values from it."""

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from batchinfer_operator.settings import OperatorSettings
from batchinfer_operator.spec import BatchInferenceSpec
from batchinfer_operator.url_policy import URLPolicyError, check_url

STAGING_DIR_BESIDE_OUTPUT = ".batchinfer-staging"


class InvalidSpecError(ValueError):
    """The CR's spec cannot be run; the message names the field and what is wrong."""


def _pydantic_message(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        problems.append(f"spec.{where}: {err['msg']}" if where != "spec" else f"spec: {err['msg']}")
    return "; ".join(problems)


def validate_spec(raw: Any, settings: OperatorSettings) -> BatchInferenceSpec:
    if not isinstance(raw, dict):
        raise InvalidSpecError("spec: must be an object")
    try:
        spec = BatchInferenceSpec.model_validate(raw)
    except ValidationError as exc:
        raise InvalidSpecError(_pydantic_message(exc)) from None
    schemes, mounts, hosts = settings.allowed_url_schemes, spec.mount_paths(), settings.allowed_hosts
    try:
        check_url("input.url", spec.input.url, schemes, mounts, allowed_hosts=hosts)
        check_url("output.url", spec.output.url, schemes, mounts, allowed_hosts=hosts)
        if spec.output.error_url is not None:
            check_url("output.errorUrl", spec.output.error_url, schemes, mounts, allowed_hosts=hosts)
        if spec.staging_url is not None:
            check_url("staging.url", spec.staging_url, schemes, mounts, allowed_hosts=hosts)
        check_url("model", spec.model, schemes, mounts, image_paths_ok=True, allowed_hosts=hosts)
    except URLPolicyError as exc:
        raise InvalidSpecError(str(exc)) from None
    if spec.staging_url is None and not spec.output.url.startswith("s3://") and not settings.default_staging_url:
        raise InvalidSpecError(
            "spec.staging.url: required when the output is not on S3 and the operator has no default staging URL"
        )
    return spec


def staging_base(spec: BatchInferenceSpec, settings: OperatorSettings) -> str:
    """spec.staging, else beside an S3 output, else the operator's default."""
    if spec.staging_url is not None:
        return spec.staging_url
    if spec.output.url.startswith("s3://"):
        parent = spec.output.url.rsplit("/", 1)[0] if spec.output.url.count("/") > 2 else spec.output.url
        return f"{parent.rstrip('/')}/{STAGING_DIR_BESIDE_OUTPUT}"
    assert settings.default_staging_url, "validate_spec guarantees a staging location"
    return settings.default_staging_url


def staging_url(base: str, namespace: str, name: str, uid: str) -> str:
    """One prefix per CR, keyed by its uid, so a recreated CR never sees old shards."""
    return f"{base.rstrip('/')}/{namespace}/{name}-{uid}/"


def batch_id(uid: str) -> str:
    """Deterministic per CR: every shard and a rerun of the gather agree on record ids."""
    return uid.replace("-", "").lower()


def created_unix(creation_timestamp: str) -> int:
    return int(datetime.fromisoformat(creation_timestamp.replace("Z", "+00:00")).timestamp())
