"""Local files (a laptop, or a volume mounted into the pod): temp file + rename to publish.

Every temp file we create is named `<prefix><16 hex digits>.tmp` and held under an exclusive
flock by its writer while open. The kernel drops the lock when the writer's process dies (even
by SIGKILL), so a later writer of the same destination can tell a dead writer's leftover from
a live writer's file and remove only the former."""

import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

from worker.logs import get_logger
from worker.storage.errors import NotFoundError, StorageError
from worker.storage.url import StorageURL

READ_SIZE = 1 << 20
TEMP_SUFFIX = ".tmp"
_TOKEN = r"[0-9a-f]{16}"  # secrets.token_hex(8)
log = get_logger(__name__)


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
    """Remove the temp files killed LocalWriters left in the directory u (any destination)."""
    return remove_stale_temp_files(_path(u), r"\..+\.")  # `.<any name>.<token>.tmp`


def create_temp_file(directory: Path, prefix: str) -> tuple[int, Path]:
    """A new temp file `<prefix><token>.tmp` in directory, opened for writing and locked."""
    path = directory / f"{prefix}{secrets.token_hex(8)}{TEMP_SUFFIX}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    # A cleaner could lock (and remove) the file between open and flock; only a concurrent
    # writer of the same destination can, and its commit then fails with a clear error.
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd, path


def remove_stale_temp_files(directory: Path, prefix: str) -> int:
    """Remove the files `<prefix><token>.tmp` in directory (prefix: a regex) whose writer is
    gone (nobody holds their lock). Returns how many."""
    pattern = re.compile(prefix + _TOKEN + re.escape(TEMP_SUFFIX))
    try:
        names = [e.name for e in os.scandir(directory) if pattern.fullmatch(e.name) and e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return 0
    return sum(_remove_if_abandoned(directory / name) for name in names)


def _remove_if_abandoned(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # its writer committed or aborted meanwhile
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its writer is alive
    finally:
        os.close(fd)  # also releases our lock; unlinking needs no open file
    path.unlink(missing_ok=True)
    log.info("storage.stale_temp_removed", path=str(path))
    return True


def delete(u: StorageURL) -> None:
    _path(u).unlink(missing_ok=True)


class LocalWriter:
    """Writes to a temp file `.<name>.<token>.tmp` beside the target; commit() renames it
    into place atomically. It first removes the temp files of the same target whose writer
    was killed (a rerun cleans up after the run it replaces)."""

    def __init__(self, u: StorageURL):
        self.url = u.raw
        target = _path(u)
        prefix = f".{target.name}."
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(target.parent, re.escape(prefix))
            fd, self._tmp = create_temp_file(target.parent, prefix)
        except OSError as exc:
            raise StorageError(u.raw, f"cannot create: {exc.strerror}") from exc
        self._target = target
        self._f = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self._f.write(data)

    def commit(self) -> None:
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
            os.replace(self._tmp, self._target)  # still open: our lock holds until it is renamed
            self._f.close()
        except OSError as exc:
            raise StorageError(self.url, f"cannot publish: {exc.strerror}") from exc

    def abort(self) -> None:
        """Drop the temp file (nothing to drop after a commit)."""
        self._tmp.unlink(missing_ok=True)  # before the close that drops our lock
        self._f.close()
