"""Publish checkpoint chunks as the final output, for run-batch and gather alike.

Two facts are only known once all lines are seen in order: a line's global NUMBER (a shard
knows its byte offset, not how many lines precede it) and whether its custom_id was already
used by an EARLIER line (perhaps in another shard). Chunk metadata tells us, without reading
the chunks, which rows need rewriting: error rows get "line N: " prefixed to their message,
and served rows whose custom_id was seen before become duplicate_custom_id errors. Chunks
needing neither are copied verbatim (server side on S3). Same chunks -> same bytes.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from worker.batch import errors as E
from worker.batch.checkpoint import NO_ID, ChunkMeta, ChunkStats
from worker.batch.lines import iter_lines
from worker.batch.responses import LineErrorBody, OutputLine, Response
from worker.storage.concat import Source, concat


@dataclass(frozen=True)
class ChunkRef:
    url: str
    meta: ChunkMeta


@dataclass
class Fixes:
    first_line: int  # 1-based global number of the chunk's first row
    errors: set[int] = field(default_factory=set)  # rows whose message needs the line number
    duplicates: set[int] = field(default_factory=set)  # served rows reusing a custom_id


def plan(chunks: Iterable[ChunkRef], stats: ChunkStats) -> Iterator[tuple[ChunkRef, Fixes]]:
    """Walk the chunks in order; accumulates the final counts into stats."""
    seen: set[str] = set()
    line = 1
    for chunk in chunks:
        meta = chunk.meta
        fixes = Fixes(first_line=line, errors=set(meta.error_rows))
        hashes = meta.id_hashes
        for row in range(meta.stats.lines):
            h = hashes[16 * row:16 * row + 16]
            if h == NO_ID:
                continue
            if h in seen and row not in fixes.errors:
                fixes.duplicates.add(row)
            seen.add(h)
        stats.merge(meta.stats)
        if fixes.duplicates:
            stats.served -= len(fixes.duplicates)
            stats.failed[E.DUPLICATE_CUSTOM_ID] = stats.failed.get(E.DUPLICATE_CUSTOM_ID, 0) + len(fixes.duplicates)
        line += meta.stats.lines
        yield chunk, fixes


def sources(chunks: Iterable[ChunkRef], stats: ChunkStats) -> Iterator[Source]:
    for chunk, fixes in plan(chunks, stats):
        if fixes.errors or fixes.duplicates:
            yield Source(stream=_rewrite(chunk.url, fixes))
        else:
            yield Source(url=chunk.url)


def assemble(chunks: Iterable[ChunkRef], dest: str, tmp_dir: str | None = None) -> tuple[ChunkStats, dict]:
    """Write the final output to dest atomically; returns the final counts and copy stats."""
    stats = ChunkStats()
    copy_stats = concat(sources(chunks, stats), dest, tmp_dir)
    return stats, copy_stats


def _rewrite(url: str, fixes: Fixes) -> Iterator[bytes]:
    for row, raw in enumerate(iter_lines(url)):
        number = fixes.first_line + row
        if row in fixes.errors:
            line = OutputLine.model_validate_json(raw.data)
            line.error.message = f"line {number}: {line.error.message}"
            yield line.to_bytes()
        elif row in fixes.duplicates:
            yield _duplicate(OutputLine.model_validate_json(raw.data), number).to_bytes()
        else:
            yield raw.data + b"\n"


def _duplicate(line: OutputLine, number: int) -> OutputLine:
    message = f"line {number}: custom_id: {line.custom_id!r} was already used by an earlier line"
    return OutputLine(id=line.id, custom_id=line.custom_id,
                      response=Response(status_code=400, request_id=line.response.request_id, body=None),
                      error=LineErrorBody(code=E.DUPLICATE_CUSTOM_ID, message=message))
