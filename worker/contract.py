"""The contract between the operator and the worker pods it starts: the command lines, the
environment, the shard summary a pod leaves in its termination message, where a model may
live, and how a URL is shown. Both sides import it; it imports only pydantic, so the
operator image never loads paddle (tests/operator/test_worker_contract.py checks all of it)."""

from typing import Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

WORKER_EXECUTABLE = "worker"
RUN_SHARD = "run-shard"
GATHER = "gather"
CLEAN_STAGING = "clean-staging"

# The flags the operator passes (the worker also accepts FastDeploy's longer spellings).
FLAG_INPUT = "--input"
FLAG_OUTPUT = "--output"
FLAG_STAGING = "--staging"
FLAG_NUM_SHARDS = "--num-shards"
FLAG_MODEL = "--model"
FLAG_BATCH_ID = "--batch-id"
FLAG_CREATED = "--created"
FLAG_ERROR_FILE = "--error-file"
FLAG_DELETE_STAGING = "--delete-staging"
FLAG_CHUNK_LINES = "--chunk-lines"  # output lines per checkpoint chunk: also how often progress moves
# gather of a run that stopped early: the unfinished lines become error lines with this code.
FLAG_CLOSE_UNFINISHED = "--close-unfinished"
ClosingCode = Literal["batch_cancelled", "batch_expired"]  # OpenAI's codes
CLOSING_CODES = get_args(ClosingCode)

# Set by the Job controller in every pod of an Indexed Job.
ENV_SHARD_INDEX = "JOB_COMPLETION_INDEX"
# Where the worker writes its summary: the container's terminationMessagePath.
ENV_TERMINATION_LOG = "BATCHINFER_TERMINATION_LOG"
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_LIMIT = 4096  # bytes the kubelet keeps of a termination message

# EngineArgs' default, which the CRD's rule on engine.maxNumBatchedTokens also assumes.
DEFAULT_MAX_NUM_SEQS = 64


def shard_range(size: int, index: int, num_shards: int) -> tuple[int, int]:
    """Byte range [i*size/N, (i+1)*size/N) of shard i (integer floor, so ranges tile exactly):
    the worker serves it, the operator counts a finished shard's bytes with it."""
    if not 0 <= index < num_shards:
        raise ValueError(f"shard index {index} is outside [0, {num_shards})")
    return index * size // num_shards, (index + 1) * size // num_shards


def engine_flag(field: str) -> str:
    """The flag of an engine argument (EngineArgs' field name, FastDeploy's spelling)."""
    return "--" + field.replace("_", "-")


def negated_flag(field: str) -> str:
    """The off switch of a boolean engine argument."""
    return "--no-" + field.replace("_", "-")


def model_location_problem(model: str) -> str | None:
    """Why the worker cannot load a model from there, or None: it reads a model directory
    from a local path or mirrors an s3:// prefix; http(s) cannot list a directory."""
    if model.startswith("s3://") or model.startswith("/"):
        return None
    return "must be an s3:// URI or an absolute path (the worker cannot list a model directory over http(s))"


def redact(url: str) -> str:
    """The URL without user info, query or fragment: presigned URLs carry their secrets there,
    and URLs reach logs, CR statuses and Events. Local paths are shown as they are."""
    parts = urlsplit(url)
    if not parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


class ShardSummary(BaseModel):
    """What a `worker run-shard` or `gather` pod reports: its summary.json in staging and its
    termination message, which the operator sums into the CR's status."""

    # A newer worker may report more than an older operator reads.
    model_config = ConfigDict(extra="ignore")

    requests: int = Field(ge=0, description="input lines = output lines")
    served: int = Field(ge=0)
    failed: dict[str, int] = Field(description="error lines by error code")
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    elapsed_s: float = Field(description="wall time of this attempt")
    serving_s: float | None = Field(None, description="elapsed_s without loading the model; the rates are per it")
    resumed_lines: int = Field(0, description="lines taken from checkpoint chunks of earlier attempts")
    requests_per_s: float = Field(description="lines completed by this attempt per second of serving")
    completion_tokens_per_s: float = Field(description="completion tokens of this attempt per second of serving")
    chunks: int = 0
    shard_index: int | None = None
    num_shards: int | None = None
    # The input bytes a shard covered, [byte_start, byte_end) of input_bytes: gather checks
    # that the staged shards cover the whole input, exactly.
    byte_start: int | None = None
    byte_end: int | None = None
    input_bytes: int | None = None

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())


# -- Worker metrics (issue 16): every worker pod serves Prometheus text on a named port. -------
# Names follow vLLM's (`vllm:` -> `batchinfer:`, same suffixes) where one fits.
METRICS_PORT_NAME = "metrics"  # the container port's name, which the PodMonitor selects
DEFAULT_METRICS_PORT = 8000  # run-shard and gather listen here unless told otherwise (0: off)
METRICS_PATH = "/metrics"
FLAG_METRICS_PORT = "--metrics-port"
ENV_METRICS_PORT = "BATCHINFER_WORKER_METRICS_PORT"
# The address to listen on (default all): the pod template sets the pod's IP, which is where it
# is scraped, so pods sharing one network namespace (the tests' kubelet player) do not collide.
ENV_METRICS_ADDRESS = "BATCHINFER_WORKER_METRICS_ADDRESS"

# The "done" counters move when a checkpoint chunk is committed, so a line counts once however
# often its pod restarts. Their `attempt` label says whose work it was: `resumed` (chunks of an
# earlier attempt, counted at start) or `current` (this process). Progress: sum over both.
LABEL_ATTEMPT = "attempt"
ATTEMPT_RESUMED = "resumed"
ATTEMPT_CURRENT = "current"
LABEL_CODE = "code"  # the error code of a failed line
LABEL_PHASE = "phase"
METRIC_INPUT_BYTES_DONE = "batchinfer:input_bytes_done_total"  # of [range start, range end)
METRIC_RANGE_START = "batchinfer:range_start_bytes"  # the pod's byte range of the input
METRIC_RANGE_END = "batchinfer:range_end_bytes"
METRIC_INPUT_SIZE = "batchinfer:input_size_bytes"  # the whole input: run progress = sum(done) / this
METRIC_REQUEST_SUCCESS = "batchinfer:request_success_total"  # served lines
METRIC_REQUEST_FAILURE = "batchinfer:request_failure_total"  # error lines, by code
METRIC_PROMPT_TOKENS = "batchinfer:prompt_tokens_total"
METRIC_GENERATION_TOKENS = "batchinfer:generation_tokens_total"
METRIC_PHASE = "batchinfer:phase"  # 1 for the phase the pod is in, else 0
PHASES = ("loading", "serving", "publishing", "done")
