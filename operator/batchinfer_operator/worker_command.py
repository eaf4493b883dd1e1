"""The command lines of the worker pods: every `worker` flag name the operator uses is here."""

from pydantic import BaseModel, ConfigDict

from batchinfer_operator.spec import EngineSpec

WORKER_EXECUTABLE = "worker"
RUN_SHARD = "run-shard"
GATHER = "gather"

# The contract with worker/cli (run_shard.py, gather.py): change both sides together.
FLAG_INPUT = "--input"
FLAG_OUTPUT = "--output"
FLAG_STAGING = "--staging"
FLAG_NUM_SHARDS = "--num-shards"
FLAG_MODEL = "--model"
FLAG_BATCH_ID = "--batch-id"
FLAG_CREATED = "--created"
FLAG_ERROR_FILE = "--error-file"
ENGINE_FLAGS = {
    "max_model_len": "--max-model-len",
    "max_num_seqs": "--max-num-seqs",
    "max_num_batched_tokens": "--max-num-batched-tokens",
    "block_size": "--block-size",
    "tensor_parallel_size": "--tensor-parallel-size",
    "dtype": "--dtype",
    "num_gpu_blocks_override": "--num-gpu-blocks-override",
}
FLAG_PREFIX_CACHING = ("--enable-prefix-caching", "--no-enable-prefix-caching")
# The shard index comes from the Job controller, not from a flag.
ENV_SHARD_INDEX = "JOB_COMPLETION_INDEX"
TERMINATION_LOG = "/dev/termination-log"
# Where the worker writes its JSON summary (the container's terminationMessagePath).
ENV_TERMINATION_LOG = "BATCHINFER_TERMINATION_LOG"


class RunValues(BaseModel):
    """What every pod of one run agrees on."""

    model_config = ConfigDict(frozen=True)

    input_url: str
    output_url: str
    staging_url: str
    num_shards: int
    model: str
    batch_id: str
    created: int
    error_url: str | None = None  # rejected lines go here, in OpenAI's error-file shape


def engine_args(engine: EngineSpec) -> list[str]:
    args: list[str] = []
    for field, flag in ENGINE_FLAGS.items():
        value = getattr(engine, field)
        if value is not None:
            args += [flag, str(value)]
    if engine.enable_prefix_caching is not None:
        args.append(FLAG_PREFIX_CACHING[0] if engine.enable_prefix_caching else FLAG_PREFIX_CACHING[1])
    return args


def run_shard_command(run: RunValues, engine: EngineSpec) -> list[str]:
    return [
        WORKER_EXECUTABLE, RUN_SHARD,
        FLAG_INPUT, run.input_url,
        FLAG_STAGING, run.staging_url,
        FLAG_NUM_SHARDS, str(run.num_shards),
        FLAG_MODEL, run.model,
        FLAG_BATCH_ID, run.batch_id,
        FLAG_CREATED, str(run.created),
        *engine_args(engine),
    ]


def gather_command(run: RunValues) -> list[str]:
    return [
        WORKER_EXECUTABLE, GATHER,
        FLAG_STAGING, run.staging_url,
        FLAG_NUM_SHARDS, str(run.num_shards),
        FLAG_OUTPUT, run.output_url,
        *([FLAG_ERROR_FILE, run.error_url] if run.error_url else []),
    ]
