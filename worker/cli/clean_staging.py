"""`worker clean-staging`: delete what a failed run staged (the operator runs it in a pod with
the run's credentials once no shard pod can still write; a published run's gather does it itself)."""

import argparse
import sys

from pydantic import BaseModel, Field

from worker import storage
from worker.batch import staging
from worker.batch.errors import BatchRunError
from worker.batch.flags import validated
from worker.contract import FLAG_NUM_SHARDS, FLAG_STAGING
from worker.logs import get_logger

HELP = "Delete what a run staged (its shards' chunks, manifests and summaries)"
log = get_logger(__name__)


class CleanStagingFlags(BaseModel):
    staging_url: str
    num_shards: int = Field(ge=1)


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--staging-url", FLAG_STAGING, dest="staging_url", required=True)
    parser.add_argument(FLAG_NUM_SHARDS, type=int, required=True)


def run(args: argparse.Namespace) -> int:
    try:
        flags = validated(CleanStagingFlags, args)
        removed = staging.remove(flags.staging_url, flags.num_shards)
    except (BatchRunError, storage.StorageError) as exc:
        print(f"worker clean-staging: error: {exc}", file=sys.stderr)
        return 1
    log.info("staging.removed", staging=storage.parse_url(flags.staging_url).safe, chunks=removed)
    return 0
