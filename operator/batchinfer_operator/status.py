"""The BatchInference status as pydantic models (what the reducer returns and the CRD declares)."""

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"
    # A run stopped early: the shard pods stop, then the gather publishes what finished.
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"
    EXPIRING = "Expiring"
    EXPIRED = "Expired"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED, Phase.EXPIRED)


# When each phase was first entered (OpenAI's batch object has the same: in_progress_at, ...).
PHASE_STAMPS = {
    Phase.RUNNING: "in_progress_at", Phase.FINALIZING: "finalizing_at", Phase.SUCCEEDED: "completed_at",
    Phase.FAILED: "failed_at", Phase.CANCELLING: "cancelling_at", Phase.CANCELLED: "cancelled_at",
    Phase.EXPIRING: "expiring_at", Phase.EXPIRED: "expired_at",
}


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


class ShardLive(StatusModel):
    """What a running shard's pod reported last (its figures include earlier attempts')."""

    bytes_done: int = 0
    completed: int = 0
    failed: int = 0
    generation_tokens: int = 0


class Progress(StatusModel):
    """Input bytes done of the whole input; rates are averages since the run began."""

    percent: str | None = None  # "42%": printer columns cannot compute
    bytes_done: int = 0
    bytes_total: int | None = None
    tokens_per_second: float | None = None
    eta: str | None = None
    finished_tokens: int = 0  # completion tokens of the finished shards
    running: dict[str, ShardLive] = Field(default_factory=dict)  # by shard index, unfinished shards only

    def live_counts(self) -> tuple[int, int]:
        return (sum(r.completed for r in self.running.values()), sum(r.failed for r in self.running.values()))


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
    progress: Progress | None = None
    stop_reason: Literal["cancelled", "expired"] | None = None
    output_url: str | None = None  # shown without user info or query (presigned URLs' secrets)
    error_url: str | None = None
    expires_at: str | None = None
    in_progress_at: str | None = None
    finalizing_at: str | None = None
    completed_at: str | None = None
    failed_at: str | None = None
    cancelling_at: str | None = None
    cancelled_at: str | None = None
    expiring_at: str | None = None
    expired_at: str | None = None
    conditions: list[Condition] = Field(default_factory=list)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)
