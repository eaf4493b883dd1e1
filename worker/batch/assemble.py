"""Publish checkpoint chunks as the final output, for run-batch and gather alike.

Two facts are only known once all lines are seen in order: a line's global NUMBER (a shard
knows its byte offset, not how many lines precede it; the number counts the input's lines as
an editor does, blank ones included, from the lines each chunk spans) and whether its custom_id was already
used by an EARLIER line (perhaps in another shard). Chunk metadata tells us, without reading
the chunks, which rows need rewriting: error rows get "line N: " prefixed to their message,
and served rows whose custom_id was seen before become duplicate_custom_id errors. Chunks
needing neither are copied verbatim (server side on S3). Same chunks -> same bytes.
With an error file, the same rows are split off into it (worker.batch.error_lines) instead.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from worker.batch import errors as E
from worker.batch.checkpoint import NO_ID, ChunkMeta, ChunkStats
from worker.batch.error_lines import error_file_line
from worker.batch.lines import iter_lines
from worker.batch.responses import LineErrorBody, OutputLine, Response
from worker.storage.concat import Source, concat


@dataclass(frozen=True)
class ChunkRef:
    url: str
    meta: ChunkMeta


@dataclass
class Fixes:
    first_line: int  # 1-based global number of the first line the chunk spans
    row_lines: list[int]  # each row's line within the span (ChunkMeta.row_lines)
    errors: dict[int, str | None] = field(default_factory=dict)  # error rows -> the field named
    duplicates: set[int] = field(default_factory=set)  # served rows reusing a custom_id

    def __bool__(self) -> bool:
        return bool(self.errors or self.duplicates)

    def number(self, row: int) -> int:
        return self.first_line + (self.row_lines[row] if self.row_lines else row)


@dataclass(frozen=True)
class _Row:
    data: bytes  # the staged line, without its newline
    failed: OutputLine | None = None  # an error row, numbered (None: served)
    param: str | None = None


def plan(chunks: Iterable[ChunkRef], stats: ChunkStats) -> Iterator[tuple[ChunkRef, Fixes]]:
    """Walk the chunks in order; accumulates the final counts into stats."""
    seen: set[str] = set()
    line = 1
    for chunk in chunks:
        meta = chunk.meta
        params = meta.error_params or [None] * len(meta.error_rows)  # chunks staged before params were kept
        fixes = Fixes(first_line=line, row_lines=meta.row_lines, errors=dict(zip(meta.error_rows, params)))
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
        line += meta.stats.lines if meta.physical_lines is None else meta.physical_lines
        if meta.stats.lines:  # a chunk of blank lines only holds no row to write
            yield chunk, fixes


def _inline(planned: list[tuple[ChunkRef, Fixes]]) -> Iterator[Source]:
    """Every line in input order, error lines FastDeploy-style (the default)."""
    for chunk, fixes in planned:
        if fixes:
            rows = _rows(chunk.url, fixes)
            yield Source(stream=(r.failed.to_bytes() if r.failed else r.data + b"\n" for r in rows))
        else:
            yield Source(url=chunk.url)


def _served(planned: list[tuple[ChunkRef, Fixes]]) -> Iterator[Source]:
    for chunk, fixes in planned:
        if fixes:
            yield Source(stream=(r.data + b"\n" for r in _rows(chunk.url, fixes) if not r.failed))
        else:
            yield Source(url=chunk.url)


def _rejected(planned: list[tuple[ChunkRef, Fixes]]) -> Iterator[Source]:
    for chunk, fixes in planned:
        if fixes:
            yield Source(stream=(error_file_line(r.failed, r.param).to_bytes()
                                 for r in _rows(chunk.url, fixes) if r.failed))


def assemble(chunks: Iterable[ChunkRef], dest: str, tmp_dir: str | None = None,
             error_dest: str | None = None) -> tuple[ChunkStats, dict]:
    """Write the final output to dest atomically; with error_dest, the output holds only the
    served lines and error_dest the others (published first: the output marks completion).
    Returns the final counts and copy stats."""
    stats = ChunkStats()
    planned = list(plan(chunks, stats))
    if error_dest is None:
        return stats, concat(_inline(planned), dest, tmp_dir)
    concat(_rejected(planned), error_dest, tmp_dir)
    return stats, concat(_served(planned), dest, tmp_dir)


def _rows(url: str, fixes: Fixes) -> Iterator[_Row]:
    for row, raw in enumerate(iter_lines(url)):
        number = fixes.number(row)
        if row in fixes.errors:
            line = OutputLine.model_validate_json(raw.data)
            line.error.message = f"line {number}: {line.error.message}"
            yield _Row(raw.data, line, fixes.errors[row])
        elif row in fixes.duplicates:
            yield _Row(raw.data, _duplicate(OutputLine.model_validate_json(raw.data), number), "custom_id")
        else:
            yield _Row(raw.data)


def _duplicate(line: OutputLine, number: int) -> OutputLine:
    message = f"line {number}: custom_id: {line.custom_id!r} was already used by an earlier line"
    return OutputLine(id=line.id, custom_id=line.custom_id,
                      response=Response(status_code=400, request_id=line.response.request_id, body=None),
                      error=LineErrorBody(code=E.DUPLICATE_CUSTOM_ID, message=message))
