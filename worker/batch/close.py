"""Closing the shards of a run that stops before they finish (cancelled, or past its completion
window): each unfinished line becomes a `batch_cancelled` / `batch_expired` error line, written
as checkpoint chunks after the ones the shard finished, with the shard's summary. The gather then
publishes one output line per request, as for any run: nothing is lost and nothing invented."""

import time

from worker import storage
from worker.batch import checkpoint
from worker.batch import errors as E
from worker.batch.build import LineResult, error_result
from worker.batch.checkpoint import ChunkStats, ChunkWriter
from worker.batch.errors import LineError
from worker.batch.ids import BatchIdentity
from worker.batch.lines import RawLine, iter_lines
from worker.batch.parse import custom_id_of
from worker.batch.responses import LineErrorBody, OutputLine
from worker.batch.staging import shard_prefix, shard_summary_url
from worker.batch.summary import Summary
from worker.contract import ClosingCode, shard_range
from worker.logs import get_logger

log = get_logger(__name__)

WHY = {
    E.BATCH_CANCELLED: "the request was not executed because the batch was cancelled",
    E.BATCH_EXPIRED: "the request could not be executed before the completion window expired",
}


def closed_line(ident: BatchIdentity, raw: RawLine, code: ClosingCode) -> LineResult:
    """The line as never sent: no response, the code as the top-level error. A line that is no
    request at all keeps its own error (the one an uninterrupted run gives it)."""
    try:
        custom_id = custom_id_of(raw.data)
    except LineError as exc:
        return error_result(ident, raw.offset, exc)
    line = OutputLine(id=ident.line_id(raw.offset), custom_id=custom_id, response=None,
                      error=LineErrorBody(code=code, message=WHY[code]))
    return LineResult(line, error_code=code)


def close_shard(staging_url: str, index: int, num_shards: int, input_url: str, input_bytes: int,
                ident: BatchIdentity, code: ClosingCode) -> Summary:
    """Write the shard's remaining lines as closed and its summary; a finished shard is left as is."""
    summary_url = shard_summary_url(staging_url, index)
    if storage.exists(summary_url):
        return Summary.model_validate_json(storage.read_bytes(summary_url))
    t0 = time.monotonic()
    prefix = shard_prefix(staging_url, index)
    manifest = checkpoint.load_manifest(prefix)
    ident = manifest.identity if manifest else ident  # the ids the shard's own lines were given
    storage.discard_partial_writes(prefix)  # a pod stopped mid-chunk
    done = list(checkpoint.iter_metas(prefix))
    start, end = shard_range(input_bytes, index, num_shards)
    resume_at = done[-1].end_offset if done else start
    writer = ChunkWriter(prefix, manifest.chunk_lines if manifest else 1000, len(done), resume_at)
    read, last_end, closed = 0, resume_at, 0
    for raw in iter_lines(input_url, resume_at, end):
        read, last_end = raw.index + 1, raw.end
        if raw.data.strip():  # blank lines are not requests
            writer.add(raw, closed_line(ident, raw, code))
            closed += 1
    writer.finish(read, last_end)
    metas = list(checkpoint.iter_metas(prefix))
    total = ChunkStats()
    for meta in metas:
        total.merge(meta.stats)
    summary = Summary.build(total, None, time.monotonic() - t0, len(metas), shard_index=index, num_shards=num_shards,
                            byte_start=start, byte_end=end, input_bytes=input_bytes)
    storage.write_bytes(summary_url, summary.to_json())
    log.info("shard.closed", shard_index=index, code=code, closed=closed, finished=total.lines - closed)
    return summary
