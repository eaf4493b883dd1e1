"""The BatchInference status as pydantic models (what the reducer returns and the CRD declares)."""

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def wire(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class ShardCounts(StatusModel):
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    active: int = 0


class RequestCounts(StatusModel):
    total: int = 0
    completed: int = 0
    failed: int = 0
    # How many shard summaries were summed: counts never go backwards when pods are gone.
    shards_reported: int = 0


class Condition(StatusModel):
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class BatchInferenceStatus(StatusModel):
    phase: Phase = Phase.PENDING
    message: str = ""
    observed_generation: int | None = None
    batch_id: str | None = None
    staging_url: str | None = None
    shards: ShardCounts = Field(default_factory=ShardCounts)
    request_counts: RequestCounts = Field(default_factory=RequestCounts)
    # Printer columns cannot compute, so "done/total" strings are kept beside the numbers.
    shards_display: str = "0/0"
    requests_display: str = "0/0"
    start_time: str | None = None
    completion_time: str | None = None
    conditions: list[Condition] = Field(default_factory=list)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
