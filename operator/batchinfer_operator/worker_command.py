"""The command lines of the worker pods, from the names in worker.contract (shared with the
worker CLI; tests/operator/test_worker_contract.py parses every line built here with it)."""

from pydantic import BaseModel, ConfigDict

from batchinfer_operator.spec import EngineSpec
from worker.contract import (CLEAN_STAGING, FLAG_BATCH_ID, FLAG_CHUNK_LINES, FLAG_CLOSE_UNFINISHED, FLAG_CREATED,
                             FLAG_DELETE_STAGING, FLAG_ERROR_FILE, FLAG_INPUT, FLAG_MODEL, FLAG_NUM_SHARDS,
                             FLAG_OUTPUT, FLAG_STAGING, GATHER, RUN_SHARD, WORKER_EXECUTABLE, ClosingCode,
                             engine_flag, negated_flag)


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
    delete_staging: bool = True
    checkpoint_lines: int | None = None


def engine_args(engine: EngineSpec) -> list[str]:
    """The engine fields the CR sets, as flags: EngineSpec's fields are EngineArgs' names."""
    args: list[str] = []
    for field, value in engine.model_dump(exclude_none=True).items():
        if isinstance(value, bool):
            args.append(engine_flag(field) if value else negated_flag(field))
        else:
            args += [engine_flag(field), str(value)]
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
        *([FLAG_CHUNK_LINES, str(run.checkpoint_lines)] if run.checkpoint_lines else []),
        *engine_args(engine),
    ]


def clean_staging_command(run: RunValues) -> list[str]:
    return [WORKER_EXECUTABLE, CLEAN_STAGING, FLAG_STAGING, run.staging_url, FLAG_NUM_SHARDS, str(run.num_shards)]


def gather_command(run: RunValues, closing: ClosingCode | None = None) -> list[str]:
    """closing: the run stopped early; the shards' unfinished lines get this error code."""
    return [
        WORKER_EXECUTABLE, GATHER,
        FLAG_STAGING, run.staging_url,
        FLAG_NUM_SHARDS, str(run.num_shards),
        FLAG_OUTPUT, run.output_url,
        *([FLAG_ERROR_FILE, run.error_url] if run.error_url else []),
        *([FLAG_DELETE_STAGING] if run.delete_staging else []),
        *([FLAG_CLOSE_UNFINISHED, closing, FLAG_INPUT, run.input_url, FLAG_BATCH_ID, run.batch_id,
           FLAG_CREATED, str(run.created)] if closing else []),
    ]
