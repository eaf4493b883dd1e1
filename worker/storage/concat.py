"""Concatenate objects (and rewritten byte streams) into one published object. When the
target is S3 and a source is an S3 object, its bytes are copied server side (UploadPartCopy),
within S3's rule that every part but the last is at least 5 MiB."""

from collections.abc import Iterable
from dataclasses import dataclass

from worker.storage import open_writer, read, s3, size
from worker.storage.url import parse_url


@dataclass(frozen=True)
class Source:
    """A segment of the output: an object copied verbatim, or bytes produced on the fly."""

    url: str | None = None
    stream: Iterable[bytes] | None = None


def concat(sources: Iterable[Source], dest: str, tmp_dir: str | None = None) -> dict:
    """Write the sources, in order, to dest atomically; returns byte counts by method."""
    stats = {"copied_server_side": 0, "streamed": 0}
    with open_writer(dest, tmp_dir) as writer:
        server_side = isinstance(writer, s3.S3Writer)
        for src in sources:
            if src.url is not None and server_side and parse_url(src.url).scheme == "s3":
                _copy_object(writer, src.url, stats)
            else:
                for block in src.stream if src.url is None else read(src.url):
                    writer.write(block)
                    stats["streamed"] += len(block)
    return stats


def _copy_object(writer: "s3.S3Writer", url: str, stats: dict) -> None:
    n, pos = size(url), 0
    if writer.pending():  # top the buffered part up to the 5 MiB floor first
        pos = min(n, s3.MIN_PART - writer.pending())
        for block in read(url, 0, pos):
            writer.write(block)
        stats["streamed"] += pos
        if writer.pending() >= s3.MIN_PART:
            writer.flush_part()
    if n - pos >= s3.MIN_PART and not writer.pending():
        src = parse_url(url)
        while pos < n:  # S3 caps one copied part at 5 GiB
            stop = min(n, pos + (5 << 30))
            writer.copy_part(src, pos, stop)
            stats["copied_server_side"] += stop - pos
            pos = stop
        return
    for block in read(url, pos, n):
        writer.write(block)
    stats["streamed"] += n - pos
