"""Stream the input's lines whose FIRST BYTE lies in [start, end), each with its byte offset.

A shard reads from start-1: if that byte is a newline, a line begins exactly at start and is
ours; otherwise the line in progress belongs to the previous shard and is skipped. A line that
starts before end is read to its newline even past end. Adjacent shards therefore partition
the file's lines exactly, with no pre-pass and no coordination.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from worker import storage


@dataclass(frozen=True)
class RawLine:
    offset: int  # byte offset of the line's first byte in the whole input
    end: int  # offset just past its newline (the next line's offset)
    data: bytes  # without the trailing newline
    index: int = 0  # its place among the lines read by this iter_lines call, blank ones included


def has_line_start(url: str, start: int, end: int) -> bool:
    """Whether a line begins in [start, end), by iter_lines' rule (a line begins at 0 and after
    each newline), reading only bytes [start-1, end-1): a shard inside one long line learns it
    has nothing to do without reading the rest of that line."""
    if start >= end:
        return False
    if start == 0:
        return True
    with _reading(url, start - 1, end - 1) as blocks:
        return any(b"\n" in block for block in blocks)


def iter_lines(url: str, start: int = 0, end: int | None = None) -> Iterator[RawLine]:
    if end is not None and start >= end:
        return
    read_from = max(0, start - 1)
    with _reading(url, read_from) as blocks:
        yield from _split(blocks, read_from, start, end)


@contextmanager
def _reading(url: str, start: int, end: int | None = None) -> Iterator[Iterator[bytes]]:
    blocks = storage.read(url, start, end)
    try:
        yield blocks
    finally:
        close = getattr(blocks, "close", None)
        if close:
            close()  # stops a ranged read that runs to the end of the object


def _split(blocks: Iterator[bytes], pos: int, start: int, end: int | None) -> Iterator[RawLine]:
    buf = bytearray()
    line_start = pos
    index = 0
    skipping = start > 0  # until we pass the newline at or after start-1
    for block in blocks:
        buf += block
        cut = 0
        while (nl := buf.find(b"\n", cut)) >= 0:
            offset = line_start + cut
            if skipping:
                skipping = False
            else:
                if end is not None and offset >= end:
                    return
                yield RawLine(offset, line_start + nl + 1, bytes(buf[cut:nl]), index)
                index += 1
            cut = nl + 1
        del buf[:cut]
        line_start += cut
    if buf and not skipping and (end is None or line_start < end):
        yield RawLine(line_start, line_start + len(buf), bytes(buf), index)
