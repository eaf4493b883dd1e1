"""Local files (a laptop, or a volume mounted into the pod): temp file + rename to publish."""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from worker.storage.errors import NotFoundError, StorageError
from worker.storage.url import StorageURL

READ_SIZE = 1 << 20


def _path(u: StorageURL) -> Path:
    return Path(u.key)


def size(u: StorageURL) -> int:
    try:
        return _path(u).stat().st_size
    except FileNotFoundError:
        raise NotFoundError(u.raw, "no such file") from None
    except OSError as exc:
        raise StorageError(u.raw, f"cannot stat: {exc.strerror}") from exc


def read(u: StorageURL, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    try:
        f = open(_path(u), "rb")  # noqa: SIM115 (closed by the generator)
    except FileNotFoundError:
        raise NotFoundError(u.raw, "no such file") from None
    except OSError as exc:
        raise StorageError(u.raw, f"cannot open: {exc.strerror}") from exc
    return _iter_file(f, start, end)


def _iter_file(f, start: int, end: int | None) -> Iterator[bytes]:
    with f:
        f.seek(start)
        remaining = None if end is None else max(0, end - start)
        while remaining is None or remaining > 0:
            block = f.read(READ_SIZE if remaining is None else min(READ_SIZE, remaining))
            if not block:
                return
            if remaining is not None:
                remaining -= len(block)
            yield block


def exists(u: StorageURL) -> bool:
    return _path(u).is_file()


def list_names(u: StorageURL) -> list[str]:
    p = _path(u)
    return sorted(x.name for x in p.iterdir() if x.is_file()) if p.is_dir() else []


def check_writable(u: StorageURL) -> None:
    """Fail now, not after hours of work, when the target directory is not writable."""
    LocalWriter(u).abort()


def discard_partial_writes(u: StorageURL) -> int:
    """Remove temp files a killed LocalWriter left in the directory u."""
    p = _path(u)
    stale = list(p.glob(".*.tmp")) if p.is_dir() else []
    for f in stale:
        f.unlink(missing_ok=True)
    return len(stale)


def delete(u: StorageURL) -> None:
    _path(u).unlink(missing_ok=True)


class LocalWriter:
    """Writes to a temp file beside the target; commit() renames it into place atomically."""

    def __init__(self, u: StorageURL):
        self.url = u.raw
        target = _path(u)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise StorageError(u.raw, f"cannot create: {exc.strerror}") from exc
        self._target, self._tmp = target, Path(tmp)
        self._f = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self._f.write(data)

    def commit(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self._tmp, self._target)

    def abort(self) -> None:
        self._f.close()
        self._tmp.unlink(missing_ok=True)
