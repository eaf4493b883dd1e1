"""Checkpoint chunks: `part-KKKK.jsonl` of a fixed number of output lines, each followed by its
`part-KKKK.json` metadata, which is written last and so marks the chunk complete. A restarted
run keeps the complete chunks and resumes reading the input at the last one's end offset."""

from collections.abc import Callable, Iterator

from pydantic import BaseModel, Field

from worker import storage
from worker.batch.build import LineResult
from worker.batch.ids import BatchIdentity, custom_id_hash
from worker.batch.lines import RawLine
from worker.logs import get_logger

log = get_logger(__name__)
NO_ID = "0" * 16  # stands for a line without a usable custom_id


class ChunkStats(BaseModel):
    lines: int = 0
    served: int = 0
    failed: dict[str, int] = Field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    def add(self, r: LineResult) -> None:
        self.lines += 1
        if r.error_code is None:
            self.served += 1
        else:
            self.failed[r.error_code] = self.failed.get(r.error_code, 0) + 1
        self.prompt_tokens += r.prompt_tokens
        self.completion_tokens += r.completion_tokens
        self.cached_tokens += r.cached_tokens

    def merge(self, other: "ChunkStats") -> None:
        for name in ("lines", "served", "prompt_tokens", "completion_tokens", "cached_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for code, count in other.failed.items():
            self.failed[code] = self.failed.get(code, 0) + count


class ChunkMeta(BaseModel):
    """A chunk spans the input from the previous chunk's end (or where its run started reading)
    to its last row, or past a run's trailing blank lines: blank lines are not rows, but error
    messages number lines as an editor does, so the chunk says where its rows lie."""

    index: int
    start_offset: int
    end_offset: int
    physical_lines: int | None = Field(None, description="input lines the chunk spans, blank ones "
                                       "included (None: chunks staged before: as many as rows)")
    row_lines: list[int] = Field(default_factory=list, description="each row's line within the span, "
                                 "0-based; empty when they are 0, 1, 2, ... (no blank line among them)")
    error_rows: list[int] = Field(description="rows of the chunk that are error lines")
    error_params: list[str | None] = Field(default_factory=list,
                                           description="the field each error row names, as error_rows")
    id_hashes: str = Field(description="16 hex digits per row: its custom_id's hash, or zeros")
    stats: ChunkStats


class RunManifest(BaseModel):
    """What a checkpoint belongs to; a restart with different values starts over."""

    input_url: str
    input_size: int
    start: int
    end: int
    chunk_lines: int
    engine: str = ""
    identity: BatchIdentity


MANIFEST_NAME = "manifest.json"


def chunk_name(index: int) -> str:
    return f"part-{index:04d}.jsonl"


def meta_name(index: int) -> str:
    return f"part-{index:04d}.json"


def load_manifest(prefix: str) -> RunManifest | None:
    url = storage.join(prefix, MANIFEST_NAME)
    return RunManifest.model_validate_json(storage.read_bytes(url)) if storage.exists(url) else None


def save_manifest(prefix: str, manifest: RunManifest) -> None:
    storage.write_bytes(storage.join(prefix, MANIFEST_NAME), manifest.model_dump_json().encode())


def iter_metas(prefix: str) -> Iterator[ChunkMeta]:
    """The complete chunks, in order (probing by index: plain HTTP cannot list)."""
    index = 0
    while storage.exists(url := storage.join(prefix, meta_name(index))):
        yield ChunkMeta.model_validate_json(storage.read_bytes(url))
        index += 1


def total_stats(metas: list[ChunkMeta]) -> ChunkStats:
    total = ChunkStats()
    for meta in metas:
        total.merge(meta.stats)
    return total


def clear(prefix: str) -> None:
    for meta in list(iter_metas(prefix)):
        storage.delete(storage.join(prefix, meta_name(meta.index)))
        storage.delete(storage.join(prefix, chunk_name(meta.index)))
    storage.delete(storage.join(prefix, MANIFEST_NAME))


class ChunkWriter:
    """Receives output lines in input order and publishes a chunk every chunk_lines lines.
    start: the byte offset where the run reads from; the RawLine.index values count from there.
    on_commit: called with each chunk's metadata once the chunk is committed (the metrics)."""

    def __init__(self, prefix: str, chunk_lines: int, first_index: int, start: int, tmp_dir: str | None = None,
                 on_commit: Callable[[ChunkMeta], None] | None = None):
        self.prefix, self.chunk_lines, self.index, self.tmp_dir = prefix, chunk_lines, first_index, tmp_dir
        self.on_commit = on_commit
        self._writer = None
        self._meta: ChunkMeta | None = None
        self._hashes: list[str] = []
        self._row_lines: list[int] = []
        self._span_line, self._span_offset = 0, start  # where the next chunk's span begins

    def add(self, raw: RawLine, result: LineResult) -> None:
        if self._writer is None:
            self._open()
        meta = self._meta
        self._row_lines.append(raw.index - self._span_line)
        if result.error_code is not None:
            meta.error_rows.append(meta.stats.lines)
            meta.error_params.append(result.error_param)
        # A made-up custom_id must not make a later line's real one a duplicate.
        self._hashes.append(NO_ID if result.derived_id else custom_id_hash(result.line.custom_id))
        meta.stats.add(result)
        meta.end_offset = raw.end
        self._writer.write(result.line.to_bytes())
        if meta.stats.lines >= self.chunk_lines:
            self._flush(self._span_line + self._row_lines[-1] + 1)

    def finish(self, lines_read: int, end_offset: int) -> None:
        """Publish the last chunk, with the blank lines that end the run in its span: without
        them a later line's number would be off. Blank lines after a full chunk get a chunk of
        no rows. lines_read: lines the run read; end_offset: where the last one ends."""
        if self._writer is None and lines_read > self._span_line:
            self._open()
        if self._writer is not None:
            self._meta.end_offset = end_offset
            self._flush(lines_read)

    def _open(self) -> None:
        self._writer = storage.make_writer(storage.join(self.prefix, chunk_name(self.index)), self.tmp_dir)
        self._meta = ChunkMeta(index=self.index, start_offset=self._span_offset, end_offset=self._span_offset,
                               error_rows=[], id_hashes="", stats=ChunkStats())

    def _flush(self, span_end_line: int) -> None:
        """Publish the current chunk, then its metadata (the commit mark)."""
        meta = self._meta
        self._writer.commit()
        meta.id_hashes = "".join(self._hashes)
        meta.physical_lines = span_end_line - self._span_line
        if self._row_lines != list(range(len(self._row_lines))):
            meta.row_lines = self._row_lines
        storage.write_bytes(storage.join(self.prefix, meta_name(self.index)), meta.model_dump_json().encode(),
                            self.tmp_dir)
        log.info("chunk.done", chunk=self.index, lines=meta.stats.lines, end_offset=meta.end_offset)
        if self.on_commit is not None:
            self.on_commit(meta)
        self._span_line, self._span_offset = span_end_line, meta.end_offset
        self._writer, self._meta, self._hashes, self._row_lines = None, None, [], []
        self.index += 1

    def abort(self) -> None:
        if self._writer is not None:
            storage.abort_quietly(self._writer)
            self._writer = None
