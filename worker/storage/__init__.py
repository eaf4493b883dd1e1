"""One small storage layer for s3://, http(s):// and local paths: streaming reads of byte
ranges, atomic publishes, retries. Imports nothing heavy (the operator image shares it)."""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from worker.logs import get_logger
from worker.storage import http, local, s3
from worker.storage.errors import NotFoundError, StorageError, TransientError, UnsupportedURLError
from worker.storage.url import StorageURL, is_local, join, parse_url

__all__ = [
    "NotFoundError", "StorageError", "TransientError", "UnsupportedURLError", "StorageURL",
    "parse_url", "join", "is_local", "size", "read", "read_bytes", "exists", "list_names",
    "check_writable", "delete", "discard_partial_writes", "abort_quietly", "make_writer", "open_writer",
    "write_bytes", "write_stream",
]

log = get_logger(__name__)
_BACKENDS = {"local": local, "http": http, "s3": s3}


def _backend(url: str):
    u = parse_url(url)
    return _BACKENDS[u.scheme], u


def size(url: str) -> int:
    backend, u = _backend(url)
    return backend.size(u)


def read(url: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Stream bytes [start, end) of url (to the end when end is None)."""
    backend, u = _backend(url)
    return backend.read(u, start, end)


def read_bytes(url: str) -> bytes:
    """A whole small object (summaries, manifests); never use it for user data."""
    return b"".join(read(url))


def exists(url: str) -> bool:
    backend, u = _backend(url)
    return backend.exists(u)


def list_names(url: str) -> list[str]:
    """Names of the objects directly under the prefix url (not supported over plain HTTP)."""
    backend, u = _backend(url)
    if backend is http:
        raise StorageError(u.safe, "an HTTP server cannot list a prefix")
    return backend.list_names(u)


def delete(url: str) -> None:
    backend, u = _backend(url)
    backend.delete(u)


def check_writable(url: str) -> None:
    """Preflight for a local target; remote targets only show it when written."""
    backend, u = _backend(url)
    if backend is local:
        local.check_writable(u)


def discard_partial_writes(prefix: str) -> int:
    """Clean up after writers killed before commit under a prefix (nothing to do over HTTP:
    an HTTP writer sends nothing before its single PUT)."""
    backend, u = _backend(prefix)
    return 0 if backend is http else backend.discard_partial_writes(u)


def make_writer(url: str, tmp_dir: str | None = None):
    backend, u = _backend(url)
    if backend is local:
        return local.LocalWriter(u)
    if backend is http:
        return http.HTTPWriter(u, tmp_dir)
    return s3.S3Writer(u)


@contextmanager
def open_writer(url: str, tmp_dir: str | None = None):
    """A writer whose content appears at url only if the block exits without an exception;
    otherwise, or if publishing fails, its temp file or upload is dropped."""
    writer = make_writer(url, tmp_dir)
    try:
        yield writer
        writer.commit()
    except BaseException:
        abort_quietly(writer)
        raise


def abort_quietly(writer) -> None:
    """Abort without hiding the error that made us abort behind one of the abort's own."""
    try:
        writer.abort()
    except (StorageError, OSError) as exc:
        log.warning("storage.abort_failed", url=writer.url, error=str(exc))


def write_bytes(url: str, data: bytes, tmp_dir: str | None = None) -> None:
    with open_writer(url, tmp_dir) as w:
        w.write(data)


def write_stream(url: str, chunks: Iterable[bytes], tmp_dir: str | None = None) -> None:
    with open_writer(url, tmp_dir) as w:
        for chunk in chunks:
            w.write(chunk)
