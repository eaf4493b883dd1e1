"""`worker gather`: concatenate the shards' staging chunks, in index order, into the output
URL, published atomically (S3 server-side copy where staging and output share S3)."""

import argparse
import os
import sys
import time
from collections.abc import Mapping

from pydantic import BaseModel, Field, model_validator

from worker import storage
from worker.batch import checkpoint
from worker.batch.assemble import ChunkRef, assemble
from worker.batch.close import close_shard
from worker.batch.errors import BatchRunError
from worker.batch.flags import validated
from worker.batch.ids import BatchIdentity
from worker.batch.runner import input_size
from worker.batch import staging
from worker.batch.staging import shard_prefix, shard_summary_url
from worker.batch.summary import Summary, write_termination_message
from worker.cli.metrics_flags import add_metrics_flags, served_metrics
from worker.cli.run_batch import add_error_file_flag
from worker.contract import (CLOSING_CODES, DEFAULT_METRICS_PORT, ENV_TERMINATION_LOG, FLAG_BATCH_ID,
                             FLAG_CLOSE_UNFINISHED, FLAG_CREATED, FLAG_DELETE_STAGING, FLAG_INPUT, FLAG_NUM_SHARDS,
                             FLAG_OUTPUT, FLAG_STAGING, ClosingCode)
from worker.logs import get_logger

HELP = "Concatenate finished shards from staging into the output URL"
log = get_logger(__name__)


class GatherFlags(BaseModel):
    staging_url: str
    num_shards: int = Field(ge=1)
    output_file: str
    error_file: str | None = None
    close_unfinished: ClosingCode | None = None
    input_file: str | None = None
    batch_id: str | None = None
    created: int | None = Field(None, ge=0)
    output_tmp_dir: str | None = None
    delete_staging: bool = False
    summary_file: str | None = None
    termination_message_path: str | None = None

    @model_validator(mode="after")
    def _closing_needs_the_input(self) -> "GatherFlags":
        if self.close_unfinished and None in (self.input_file, self.batch_id, self.created):
            raise ValueError(f"{FLAG_CLOSE_UNFINISHED} needs {FLAG_INPUT}, {FLAG_BATCH_ID} and {FLAG_CREATED}")
        return self


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--staging-url", FLAG_STAGING, dest="staging_url", required=True)
    parser.add_argument(FLAG_NUM_SHARDS, type=int, required=True)
    parser.add_argument("-o", "--output-file", FLAG_OUTPUT, dest="output_file", required=True,
                        help="output JSONL: path, http(s):// (PUT) or s3://")
    parser.add_argument("--output-tmp-dir", help="local directory for the file before an HTTP upload")
    add_error_file_flag(parser)
    parser.add_argument(FLAG_DELETE_STAGING, dest="delete_staging", action="store_true",
                        help="once the output is published, delete what the run staged")
    parser.add_argument("--summary-file", help="also write the batch summary as JSON here")
    parser.add_argument("--termination-message-path", help=f"default: ${ENV_TERMINATION_LOG}, else none")
    add_metrics_flags(parser, DEFAULT_METRICS_PORT)
    closing = parser.add_argument_group("a run stopped early (cancelled or expired)")
    closing.add_argument(FLAG_CLOSE_UNFINISHED, choices=CLOSING_CODES,
                         help="first write each unfinished shard's remaining lines as error lines with this code")
    closing.add_argument("-i", "--input-file", FLAG_INPUT, dest="input_file", help="the run's input")
    closing.add_argument(FLAG_BATCH_ID, help="the run's batch id (the ids of the closed lines)")
    closing.add_argument(FLAG_CREATED, type=int, help="the run's created time")


def parse_flags(args: argparse.Namespace, environ: Mapping[str, str]) -> GatherFlags:
    if args.termination_message_path is None:
        args.termination_message_path = environ.get(ENV_TERMINATION_LOG)
    return validated(GatherFlags, args)


def run(args: argparse.Namespace) -> int:
    try:
        flags = parse_flags(args, os.environ)
        # Its phase only: the counts are the shards' (summing them again would count each line twice).
        with served_metrics(args, os.environ, DEFAULT_METRICS_PORT) as metrics:
            metrics.set_phase("publishing")
            summary = gather(flags)
            metrics.set_phase("done")
    except BatchRunError as exc:
        print(f"worker gather: error: {exc}", file=sys.stderr)
        return 1
    print(summary.render())
    return 0


def shard_summary(staging_url: str, index: int) -> Summary:
    """A finished shard's summary; refuses a shard without summary.json."""
    summary_url = shard_summary_url(staging_url, index)
    if not storage.exists(summary_url):
        raise BatchRunError(f"shard {index} is not finished: {summary_url} is missing")
    return Summary.model_validate_json(storage.read_bytes(summary_url))


def check_coverage(summaries: list[Summary]) -> None:
    """The staged shards must cover the input's bytes exactly, one after another: a shard count
    changed under a run would otherwise publish an output missing lines."""
    n = len(summaries)
    for i, s in enumerate(summaries):
        if s.num_shards != n or s.shard_index != i:
            raise BatchRunError(f"staging does not cover the input: shard {i} was staged as shard {s.shard_index} "
                                f"of {s.num_shards}, gather was asked for {n} shard(s)")
    ranges = [(s.byte_start, s.byte_end, s.input_bytes) for s in summaries]
    if any(None in r for r in ranges):
        return  # staged before the summaries recorded their byte ranges
    size, at = ranges[0][2], 0
    for i, (start, end, input_bytes) in enumerate(ranges):
        if start != at or input_bytes != size:
            raise BatchRunError(f"staging does not cover the input: shard {i} covers bytes [{start}, {end}) of "
                                f"{input_bytes}, expected to start at byte {at} of {size}")
        at = end
    if at != size:
        raise BatchRunError(f"staging does not cover the input: the shards end at byte {at} of {size}")


def shard_chunks(staging_url: str, index: int, summary: Summary) -> list[ChunkRef]:
    prefix = shard_prefix(staging_url, index)
    chunks = [ChunkRef(storage.join(prefix, checkpoint.chunk_name(m.index)), m)
              for m in checkpoint.iter_metas(prefix)]
    if len(chunks) != summary.chunks:
        raise BatchRunError(f"shard {index} has {len(chunks)} chunks in staging, its summary says {summary.chunks}")
    return chunks


def close_unfinished(flags: GatherFlags) -> None:
    ident = BatchIdentity.new("", flags.batch_id, flags.created)
    size = input_size(flags.input_file)
    for index in range(flags.num_shards):
        close_shard(flags.staging_url, index, flags.num_shards, flags.input_file, size, ident,
                    flags.close_unfinished)


def publish(flags: GatherFlags) -> Summary:
    t0 = time.monotonic()
    if flags.close_unfinished:
        close_unfinished(flags)
    summaries = [shard_summary(flags.staging_url, i) for i in range(flags.num_shards)]
    check_coverage(summaries)
    chunks = [c for i, s in enumerate(summaries) for c in shard_chunks(flags.staging_url, i, s)]
    total, copy_stats = assemble(chunks, flags.output_file, flags.output_tmp_dir, flags.error_file)
    log.info("gather.done", output=storage.parse_url(flags.output_file).safe, chunks=len(chunks), **copy_stats)
    return Summary.build(total, None, time.monotonic() - t0, len(chunks), num_shards=flags.num_shards)


def gather(flags: GatherFlags) -> Summary:
    mark = staging.gathered_url(flags.staging_url)
    try:
        if flags.delete_staging and storage.exists(mark):  # published by an attempt that died removing staging
            summary = Summary.model_validate_json(storage.read_bytes(mark))
        else:
            summary = publish(flags)
        if flags.delete_staging:
            storage.write_bytes(mark, summary.to_json())
    except storage.StorageError as exc:
        raise BatchRunError(f"gather failed: {exc}") from None
    if flags.delete_staging:
        try:
            log.info("staging.removed", chunks=staging.remove(flags.staging_url, flags.num_shards))
        except storage.StorageError as exc:  # the output is published: a cleanup failure loses nothing
            log.warning("staging.kept", staging=storage.parse_url(flags.staging_url).safe, error=str(exc))
    if flags.summary_file:
        storage.write_bytes(flags.summary_file, summary.to_json() + b"\n", flags.output_tmp_dir)
    if flags.termination_message_path:
        write_termination_message(flags.termination_message_path, summary.termination_message())
    return summary
