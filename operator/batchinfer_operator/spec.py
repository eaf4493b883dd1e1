"""The BatchInference spec as pydantic models: the same fields and rules as the CRD's schema."""

import hashlib
import re
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from worker.contract import DEFAULT_MAX_NUM_SEQS, model_location_problem


# A Go duration as Kubernetes writes them (1h30m, 90m, 45s), without the sub-second units.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?[hms])+$"
_DURATION_UNITS = {"h": 3600, "m": 60, "s": 1}


def duration_seconds(text: str) -> float:
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in re.findall(r"([0-9.]+)([hms])", text))


class SpecModel(BaseModel):
    """camelCase on the wire (Kubernetes style), snake_case in Python; unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class Location(SpecModel):
    url: str = Field(min_length=1, max_length=2048)


class Output(Location):
    error_url: str | None = Field(None, min_length=1, max_length=2048,
                                  description="rejected lines go here (OpenAI's error file); else inline")


class Staging(SpecModel):
    url: str | None = Field(None, min_length=1, max_length=2048)
    keep: bool = Field(False, description="keep the staged shards after the run ends (else the gather deletes them)")


class Credentials(SpecModel):
    # Mounted into every worker pod as environment (envFrom); the operator never reads it.
    secret_name: str = Field(min_length=1, max_length=253)


class EngineSpec(SpecModel):
    """Engine flags of `worker run-shard`, under FastDeploy's names (see worker.engine.engine_args)."""

    max_model_len: int | None = Field(None, ge=2)
    max_num_seqs: int | None = Field(None, ge=1)
    max_num_batched_tokens: int | None = Field(None, ge=1)
    block_size: int | None = Field(None, ge=1)
    tensor_parallel_size: int | None = Field(None, ge=1, le=1, description="1 until tensor parallelism lands")
    enable_prefix_caching: bool | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = None
    num_gpu_blocks_override: int | None = Field(None, ge=1, description="KV-cache blocks instead of sizing from memory")

    @model_validator(mode="after")
    def _as_the_worker_checks(self) -> "EngineSpec":
        max_num_seqs = self.max_num_seqs or DEFAULT_MAX_NUM_SEQS
        if self.max_num_batched_tokens is not None and self.max_num_batched_tokens < max_num_seqs:
            raise ValueError(f"maxNumBatchedTokens must be >= maxNumSeqs (default {DEFAULT_MAX_NUM_SEQS})")
        return self


class ResourceRequirements(SpecModel):
    limits: dict[str, str | int] = Field(default_factory=dict)
    requests: dict[str, str | int] = Field(default_factory=dict)


# Volume sources a worker pod may mount. hostPath (and the like) would hand anyone who can
# create a BatchInference the node's file system through the operator's service account.
ALLOWED_VOLUME_SOURCES = frozenset(
    {"persistentVolumeClaim", "emptyDir", "configMap", "secret", "csi", "ephemeral", "nfs"}
)


class WorkerSpec(SpecModel):
    """Where and how the worker pods run; Kubernetes objects are passed through unchanged."""

    image: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None
    priority_class_name: str | None = None
    service_account_name: str | None = None
    image_pull_secrets: list[dict[str, str]] = Field(default_factory=list)
    env: list[dict[str, Any]] = Field(default_factory=list)
    volumes: list[dict[str, Any]] = Field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list)
    scratch_size_limit: str | None = Field(None, description="sizeLimit of the /tmp emptyDir")

    @field_validator("volumes")
    @classmethod
    def _safe_volume_sources(cls, volumes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, volume in enumerate(volumes):
            sources = set(volume) - {"name"}
            if "name" not in volume or len(sources) != 1 or not sources <= ALLOWED_VOLUME_SOURCES:
                raise ValueError(
                    f"volumes[{i}] must have a name and one source of {sorted(ALLOWED_VOLUME_SOURCES)}, "
                    f"got {sorted(volume)}"
                )
        return volumes


class Retries(SpecModel):
    per_shard: int = Field(2, ge=0, le=100, description="backoffLimitPerIndex")
    failed_shards_allowed: int = Field(0, ge=0, description="maxFailedIndexes")


class BatchInferenceSpec(SpecModel):
    model: str = Field(min_length=1, max_length=2048, description="s3:// URI, or a path in the image or a mounted volume")
    input: Location
    output: Output
    staging: Staging | None = None
    credentials: Credentials | None = None
    shards: int = Field(1, ge=1, le=10000)
    parallelism: int | None = Field(None, ge=1)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    worker: WorkerSpec = Field(default_factory=WorkerSpec)
    retries: Retries = Field(default_factory=Retries)
    active_deadline_seconds: int | None = Field(None, ge=1)
    ttl_seconds_after_finished: int | None = Field(None, ge=0, description="of the gather Job only")
    suspend: bool = False
    checkpoint_lines: int | None = Field(None, ge=1, description="lines per checkpoint chunk (the worker's default "
                                         "1000): what a killed pod redoes at most, and how often progress moves")
    queue_name: str | None = Field(None, min_length=1, max_length=63)
    # Stops the run for good: what finished is published, every other request as batch_cancelled.
    cancel: bool = False
    completion_window: str | None = Field(
        None, pattern=DURATION_PATTERN, description="e.g. 24h: then what is unfinished is published as batch_expired")

    @property
    def completion_window_seconds(self) -> float | None:
        return None if self.completion_window is None else duration_seconds(self.completion_window)

    @field_validator("model")
    @classmethod
    def _model_where_the_worker_reads_it(cls, model: str) -> str:
        problem = model_location_problem(model)
        if problem:
            raise ValueError(problem)
        return model

    @model_validator(mode="after")
    def _check(self) -> "BatchInferenceSpec":
        if self.parallelism is not None and self.parallelism > self.shards:
            raise ValueError(f"parallelism ({self.parallelism}) must be <= shards ({self.shards})")
        if self.retries.failed_shards_allowed >= self.shards:
            raise ValueError("retries.failedShardsAllowed must be < shards")
        return self

    @property
    def staging_url(self) -> str | None:
        return self.staging.url if self.staging else None

    @property
    def effective_parallelism(self) -> int:
        return self.parallelism or self.shards

    def built_from(self) -> dict[str, str]:
        """A digest of each field the Jobs and the staged shards are built from (the CRD makes
        them immutable): a Job records them, so a change slipped past the CRD is caught."""
        # staging.keep is left out: the Jobs' digests then match those of before the field existed.
        fields = self.model_dump(mode="json", include={"shards": True, "input": True, "output": True, "model": True,
                                                       "engine": True, "staging": {"url"}})
        return {name: hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
                for name, value in fields.items()}

    def mount_paths(self) -> list[str]:
        return [str(m.get("mountPath", "")) for m in self.worker.volume_mounts if m.get("mountPath")]
