"""`worker gather`: concatenate the shards' staging chunks, in index order, into the output
URL, published atomically (S3 server-side copy where staging and output share S3)."""

import argparse
import os
import sys
import time
from collections.abc import Mapping

from pydantic import BaseModel, Field

from worker import storage
from worker.batch import checkpoint
from worker.batch.assemble import ChunkRef, assemble
from worker.batch.errors import BatchRunError
from worker.batch.flags import validated
from worker.batch.staging import shard_prefix, shard_summary_url
from worker.batch.summary import Summary, write_termination_message
from worker.cli.metrics_flags import add_metrics_flags, served_metrics
from worker.cli.run_batch import add_error_file_flag
from worker.contract import DEFAULT_METRICS_PORT, ENV_TERMINATION_LOG, FLAG_NUM_SHARDS, FLAG_OUTPUT, FLAG_STAGING
from worker.logs import get_logger

HELP = "Concatenate finished shards from staging into the output URL"
log = get_logger(__name__)


class GatherFlags(BaseModel):
    staging_url: str
    num_shards: int = Field(ge=1)
    output_file: str
    error_file: str | None = None
    output_tmp_dir: str | None = None
    summary_file: str | None = None
    termination_message_path: str | None = None


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--staging-url", FLAG_STAGING, dest="staging_url", required=True)
    parser.add_argument(FLAG_NUM_SHARDS, type=int, required=True)
    parser.add_argument("-o", "--output-file", FLAG_OUTPUT, dest="output_file", required=True,
                        help="output JSONL: path, http(s):// (PUT) or s3://")
    parser.add_argument("--output-tmp-dir", help="local directory for the file before an HTTP upload")
    add_error_file_flag(parser)
    parser.add_argument("--summary-file", help="also write the batch summary as JSON here")
    parser.add_argument("--termination-message-path", help=f"default: ${ENV_TERMINATION_LOG}, else none")
    add_metrics_flags(parser, DEFAULT_METRICS_PORT)


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


def gather(flags: GatherFlags) -> Summary:
    t0 = time.monotonic()
    try:
        summaries = [shard_summary(flags.staging_url, i) for i in range(flags.num_shards)]
        check_coverage(summaries)
        chunks = [c for i, s in enumerate(summaries) for c in shard_chunks(flags.staging_url, i, s)]
        total, copy_stats = assemble(chunks, flags.output_file, flags.output_tmp_dir, flags.error_file)
    except storage.StorageError as exc:
        raise BatchRunError(f"gather failed: {exc}") from None
    log.info("gather.done", output=storage.parse_url(flags.output_file).safe, chunks=len(chunks), **copy_stats)
    summary = Summary.build(total, None, time.monotonic() - t0, len(chunks), num_shards=flags.num_shards)
    if flags.summary_file:
        storage.write_bytes(flags.summary_file, summary.to_json() + b"\n", flags.output_tmp_dir)
    if flags.termination_message_path:
        write_termination_message(flags.termination_message_path, summary.termination_message())
    return summary
