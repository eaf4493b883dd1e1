"""`worker run-batch`: run an OpenAI-batch JSONL file through the engine, as FastDeploy's
`run-batch`, but streaming, resumable, and tolerant of bad lines."""

import argparse
import hashlib
import os
import shutil
import sys
import tempfile

from pydantic import BaseModel, Field

from worker import storage
from worker.batch.assemble import assemble
from worker.batch.engine_loader import engine_loader
from worker.batch.errors import BatchRunError
from worker.batch.flags import add_engine_flags, engine_args, engine_fingerprint, validated
from worker.batch.runner import RangeJob, input_size, run_range
from worker.batch.summary import Summary
from worker.cli.metrics_flags import add_metrics_flags, served_metrics
from worker.contract import (FLAG_BATCH_ID, FLAG_CHUNK_LINES, FLAG_CREATED, FLAG_ERROR_FILE, FLAG_INPUT, FLAG_MODEL,
                             FLAG_OUTPUT)
from worker.engine.engine_args import EngineArgs
from worker.metrics import WorkerMetrics

HELP = "Run a JSONL batch file (local, http(s)://, s3://) through the model"


class RunBatchFlags(BaseModel):
    input_file: str
    output_file: str
    error_file: str | None = None
    model: str
    output_tmp_dir: str | None = None
    summary_file: str | None = None
    served_model_name: list[str] | None = None
    batch_id: str | None = None
    created: int | None = Field(None, ge=0)
    chunk_lines: int = Field(1000, ge=1)
    max_in_flight: int | None = Field(None, ge=1)
    model_cache_dir: str | None = None
    progress: bool = True


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared with run-shard."""
    parser.add_argument(FLAG_MODEL, required=True, help="model directory or s3:// prefix")
    parser.add_argument("--served-model-name", action="append",
                        help="a model name this run serves (repeatable); lines naming another are refused; "
                             "the first is written into responses (default: the model directory's name)")
    parser.add_argument(FLAG_BATCH_ID, help="seed of the per-line ids (default: random, kept across resumes)")
    parser.add_argument(FLAG_CREATED, type=int, help="Unix time stamped on responses (default: the start)")
    parser.add_argument(FLAG_CHUNK_LINES, type=int, default=1000, help="output lines per checkpoint chunk")
    parser.add_argument("--max-in-flight", type=int, help="lines between reading and writing (default 4 x max-num-seqs)")
    parser.add_argument("--model-cache-dir", help="where an s3:// model is downloaded")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_engine_flags(parser)


def add_error_file_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(FLAG_ERROR_FILE, help="put rejected lines here, in OpenAI's error-file shape; the "
                                             "output then holds only served lines (default: inline)")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input-file", FLAG_INPUT, dest="input_file", required=True,
                        help="input JSONL: path, http(s):// or s3:// URL")
    parser.add_argument("-o", "--output-file", FLAG_OUTPUT, dest="output_file", required=True,
                        help="output JSONL: path, http(s):// (PUT) or s3://")
    parser.add_argument("--output-tmp-dir", help="local directory for checkpoints and the file before upload")
    add_error_file_flag(parser)
    parser.add_argument("--summary-file", help="also write the run summary as JSON here (path or URL)")
    add_run_flags(parser)
    add_metrics_flags(parser, default_port=0)


def checkpoint_dir(flags: RunBatchFlags) -> str:
    key = hashlib.sha256(f"{flags.input_file}\n{flags.output_file}".encode()).hexdigest()[:16]
    return os.path.join(flags.output_tmp_dir or tempfile.gettempdir(), f"batchinfer-run-{key}")


def served_models(names: list[str] | None, model: str) -> tuple[str, ...]:
    """The --served-model-name values, else the model directory's (or s3:// prefix's) name."""
    return tuple(names) if names else (model.rstrip("/").rsplit("/", 1)[-1],)


def window(engine: EngineArgs, max_in_flight: int | None) -> int:
    return max_in_flight or 4 * engine.max_num_seqs


def run(args: argparse.Namespace) -> int:
    try:
        flags = validated(RunBatchFlags, args)
        engine = engine_args(args, flags.model)  # the engine's arguments, built once
        with served_metrics(args, os.environ, default_port=0) as metrics:
            summary = _run(flags, engine, metrics)
    except (BatchRunError, storage.StorageError) as exc:
        print(f"worker run-batch: error: {exc}", file=sys.stderr)
        return 1
    print(summary.render())
    return 0


def _run(flags: RunBatchFlags, engine: EngineArgs, metrics: WorkerMetrics) -> Summary:
    load = engine_loader(engine, flags.model_cache_dir)
    size = input_size(flags.input_file)
    for url in filter(None, (flags.output_file, flags.error_file)):
        try:
            storage.check_writable(url)
        except storage.StorageError as exc:
            raise BatchRunError(f"output unwritable: {exc}") from None
    prefix = checkpoint_dir(flags)
    job = RangeJob(input_url=flags.input_file, prefix=prefix, start=0, end=size, input_size=size,
                   chunk_lines=flags.chunk_lines, window=window(engine, flags.max_in_flight),
                   models=served_models(flags.served_model_name, flags.model), batch_id=flags.batch_id,
                   created=flags.created, tmp_dir=flags.output_tmp_dir, progress=flags.progress,
                   engine=engine_fingerprint(engine))
    result = run_range(job, load, metrics)
    metrics.set_phase("publishing")
    try:
        final, _ = assemble(result.chunks, flags.output_file, flags.output_tmp_dir, flags.error_file)
    except storage.StorageError as exc:
        raise BatchRunError(f"output unwritable (checkpoints kept in {prefix}): {exc}") from None
    summary = Summary.build(final, result.this_attempt, result.elapsed_s, len(result.chunks), result.serving_s)
    if flags.summary_file:
        storage.write_bytes(flags.summary_file, summary.to_json() + b"\n", flags.output_tmp_dir)
    _discard_checkpoint(prefix)  # published: the checkpoints have served their purpose
    metrics.set_phase("done")
    return summary


def _discard_checkpoint(prefix: str) -> None:
    """Moved aside first: a kill halfway through rmtree would leave metadata whose chunks are
    gone, and the rerun could not assemble them."""
    trash = prefix + ".published"
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(prefix, trash)
    shutil.rmtree(trash, ignore_errors=True)
