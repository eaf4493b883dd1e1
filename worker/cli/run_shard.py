"""`worker run-shard`: one pod of the Indexed Job. Serves the input lines whose first byte is
in this shard's byte range into staging chunks, then writes summary.json and the pod's
termination message. Rerunning a finished shard does nothing; a killed one resumes."""

import argparse
import os
import sys
from collections.abc import Mapping

import structlog
from pydantic import BaseModel, Field, model_validator

from worker import storage
from worker.batch.checkpoint import ChunkStats
from worker.batch.engine_loader import engine_loader
from worker.batch.errors import BatchRunError
from worker.batch.flags import engine_args, engine_fingerprint, validated
from worker.batch.runner import RangeJob, input_size, run_range
from worker.batch.staging import shard_prefix, shard_summary_url
from worker.batch.summary import Summary, write_termination_message
from worker.cli.metrics_flags import add_metrics_flags, served_metrics
from worker.cli.run_batch import add_run_flags, served_models, window
from worker.contract import (DEFAULT_METRICS_PORT, ENV_SHARD_INDEX, ENV_TERMINATION_LOG, FLAG_INPUT, FLAG_NUM_SHARDS,
                             FLAG_STAGING, TERMINATION_LOG, shard_range)
from worker.engine.engine_args import EngineArgs
from worker.metrics import WorkerMetrics

HELP = "Serve one shard of a batch file into staging (a pod of the Indexed Job)"


class RunShardFlags(BaseModel):
    input_file: str
    staging_url: str
    model: str
    shard_index: int = Field(ge=0)
    num_shards: int = Field(ge=1)
    batch_id: str
    created: int = Field(ge=0)
    served_model_name: list[str] | None = None
    chunk_lines: int = Field(1000, ge=1)
    max_in_flight: int | None = Field(None, ge=1)
    model_cache_dir: str | None = None
    termination_message_path: str
    progress: bool = True

    @model_validator(mode="after")
    def _index_in_range(self) -> "RunShardFlags":
        if self.shard_index >= self.num_shards:
            raise ValueError(f"shard_index {self.shard_index} must be < num_shards {self.num_shards}")
        return self


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input-file", FLAG_INPUT, dest="input_file", required=True,
                        help="input JSONL: path, http(s):// or s3:// URL")
    parser.add_argument("--staging-url", FLAG_STAGING, dest="staging_url", required=True,
                        help="staging prefix; this shard writes shards/NNNNN/ under it")
    parser.add_argument("--shard-index", type=int, help=f"this shard (default: ${ENV_SHARD_INDEX})")
    parser.add_argument(FLAG_NUM_SHARDS, type=int, required=True)
    parser.add_argument("--termination-message-path",
                        help=f"default: ${ENV_TERMINATION_LOG} or {TERMINATION_LOG}")
    add_run_flags(parser)
    add_metrics_flags(parser, DEFAULT_METRICS_PORT)


def parse_flags(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[RunShardFlags, EngineArgs]:
    """The flags and the engine's arguments (built once), with what the pod's environment adds."""
    if args.shard_index is None:
        args.shard_index = environ.get(ENV_SHARD_INDEX)
    if args.termination_message_path is None:
        args.termination_message_path = environ.get(ENV_TERMINATION_LOG, TERMINATION_LOG)
    flags = validated(RunShardFlags, args)
    return flags, engine_args(args, flags.model)


def run(args: argparse.Namespace) -> int:
    try:
        flags, engine = parse_flags(args, os.environ)
        with served_metrics(args, os.environ, DEFAULT_METRICS_PORT) as metrics:
            summary = _run(flags, engine, metrics)
    except (BatchRunError, storage.StorageError) as exc:  # e.g. staging unreachable
        print(f"worker run-shard: error: {exc}", file=sys.stderr)
        return 1
    print(summary.render())
    return 0


def _run(flags: RunShardFlags, engine: EngineArgs, metrics: WorkerMetrics) -> Summary:
    structlog.contextvars.bind_contextvars(shard_index=flags.shard_index, num_shards=flags.num_shards)
    prefix = shard_prefix(flags.staging_url, flags.shard_index)
    summary_url = shard_summary_url(flags.staging_url, flags.shard_index)
    if storage.exists(summary_url):  # finished before (a retried pod): report it again
        summary = Summary.model_validate_json(storage.read_bytes(summary_url))
        if (summary.shard_index, summary.num_shards) != (flags.shard_index, flags.num_shards):
            raise BatchRunError(f"{summary_url} holds shard {summary.shard_index} of {summary.num_shards}, "
                                f"not {flags.shard_index} of {flags.num_shards}: the shard count changed mid-run")
        _show_finished(metrics, summary)
    else:
        summary = _serve(flags, engine, prefix, metrics)
        metrics.set_phase("publishing")
        storage.write_bytes(summary_url, summary.to_json())
    write_termination_message(flags.termination_message_path, summary.termination_message())
    metrics.set_phase("done")
    return summary


def _show_finished(metrics: WorkerMetrics, summary: Summary) -> None:
    """A shard finished by an earlier attempt: all of it is resumed."""
    metrics.set_phase("publishing")
    if summary.byte_start is None:
        return  # staged before summaries recorded their byte ranges
    stats = ChunkStats(lines=summary.requests, served=summary.served, failed=summary.failed,
                       prompt_tokens=summary.prompt_tokens, completion_tokens=summary.completion_tokens,
                       cached_tokens=summary.cached_tokens)
    metrics.start_range(summary.byte_start, summary.byte_end, summary.input_bytes, stats, summary.byte_end)


def _serve(flags: RunShardFlags, engine: EngineArgs, prefix: str, metrics: WorkerMetrics) -> Summary:
    size = input_size(flags.input_file)
    start, end = shard_range(size, flags.shard_index, flags.num_shards)
    job = RangeJob(input_url=flags.input_file, prefix=prefix, start=start, end=end, input_size=size,
                   chunk_lines=flags.chunk_lines, window=window(engine, flags.max_in_flight),
                   models=served_models(flags.served_model_name, flags.model), batch_id=flags.batch_id,
                   created=flags.created, progress=flags.progress, engine=engine_fingerprint(engine))
    result = run_range(job, engine_loader(engine, flags.model_cache_dir), metrics)
    return Summary.build(result.total, result.this_attempt, result.elapsed_s, len(result.chunks), result.serving_s,
                         shard_index=flags.shard_index, num_shards=flags.num_shards, byte_start=start,
                         byte_end=end, input_bytes=size)
