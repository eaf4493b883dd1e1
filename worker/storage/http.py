"""HTTP(S): GET with Range for reads (servers that ignore Range work too), HEAD for size,
a single PUT of a spooled temp file to publish."""

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import requests

from worker.storage import local
from worker.storage.errors import NotFoundError, StorageError, TransientError
from worker.storage.retry import resumable_read, with_retries
from worker.storage.url import StorageURL

READ_SIZE = 1 << 16
TIMEOUT = (10, 60)  # connect, read (seconds between bytes)


def _timeout() -> tuple[float, float]:
    # A stalled server is detected after the read timeout; tests shorten it through the environment.
    read = float(os.environ.get("BATCHINFER_HTTP_TIMEOUT_SECONDS", TIMEOUT[1]))
    return min(TIMEOUT[0], read), read
_session = requests.Session()


def _check(u: StorageURL, resp: requests.Response, ok: tuple[int, ...]) -> None:
    if resp.status_code in ok:
        return
    resp.close()
    code = resp.status_code
    if code == 404:
        raise NotFoundError(u.safe, "not found", code)
    if code in (408, 429) or code >= 500:
        raise TransientError(u.safe, f"server error {resp.reason}", code)
    raise StorageError(u.safe, f"request refused: {resp.reason}", code)


def _request(u: StorageURL, method: str, headers: dict | None = None, **kw) -> requests.Response:
    # Byte ranges and Content-Length must count the stored bytes, not a gzip encoding of them.
    headers = {"Accept-Encoding": "identity", **(headers or {})}
    try:
        return _session.request(method, u.raw, timeout=_timeout(), headers=headers, **kw)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(u.safe, f"{method} failed: {type(exc).__name__}") from None


def size(u: StorageURL) -> int:
    def head() -> int:
        resp = _request(u, "HEAD", allow_redirects=True)
        if resp.status_code == 405:  # HEAD not allowed: ask for one byte instead
            resp = _request(u, "GET", headers={"Range": "bytes=0-0"}, stream=True)
            _check(u, resp, (200, 206))
            resp.close()
            total = resp.headers.get("Content-Range", "").rpartition("/")[2]
            return int(total) if total.isdigit() else int(resp.headers["Content-Length"])
        _check(u, resp, (200,))
        if "Content-Length" not in resp.headers:
            raise StorageError(u.safe, "server gave no Content-Length")
        return int(resp.headers["Content-Length"])

    return with_retries(head, "http.size")


def exists(u: StorageURL) -> bool:
    try:
        size(u)
        return True
    except NotFoundError:
        return False


def read(u: StorageURL, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes [start, end) of the resource; a broken stream resumes from the last byte received."""
    return resumable_read(u.safe, lambda pos, stop: _read_once(u, pos, stop), start, end)


def _read_once(u: StorageURL, pos: int, end: int | None) -> Iterator[bytes]:
    want = f"bytes={pos}-" if end is None else f"bytes={pos}-{end - 1}"
    resp = _request(u, "GET", headers={"Range": want} if pos or end is not None else {}, stream=True)
    if resp.status_code == 416:  # the range starts at or past the end: nothing to read
        resp.close()
        return
    _check(u, resp, (200, 206))
    skip = pos if resp.status_code == 200 else 0  # the server ignored Range: skip to pos
    remaining = None if end is None else end - pos
    try:
        for block in resp.iter_content(READ_SIZE):
            if skip:
                cut = min(skip, len(block))
                block, skip = block[cut:], skip - cut
            if remaining is not None:
                block = block[:remaining]
                remaining -= len(block)
            if block:
                yield block
            if remaining == 0:
                return
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientError(u.safe, f"stream broken: {type(exc).__name__}") from None
    finally:
        resp.close()


def delete(u: StorageURL) -> None:
    resp = with_retries(lambda: _request(u, "DELETE"), "http.delete")
    if resp.status_code not in (200, 202, 204, 404, 405):
        _check(u, resp, ())


class HTTPWriter:
    """Spools to a local temp file; commit() sends it as one PUT, so the target is never partial.
    The spool file's name carries a digest of the target, so the next writer of the same
    target removes what a killed one left."""

    def __init__(self, u: StorageURL, tmp_dir: str | None = None):
        self.url = u.safe
        self._u = u
        spool_dir = Path(tmp_dir or tempfile.gettempdir())
        prefix = f"batchinfer-put-{hashlib.sha256(u.safe.encode()).hexdigest()[:16]}."
        try:
            spool_dir.mkdir(parents=True, exist_ok=True)
            local.remove_stale_temp_files(spool_dir, re.escape(prefix))
            fd, self._spool = local.create_temp_file(spool_dir, prefix)
        except OSError as exc:
            raise StorageError(u.safe, f"cannot create the spool file in {spool_dir}: {exc.strerror}") from exc
        self._f = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self._f.write(data)

    def commit(self) -> None:
        self._f.flush()  # kept open (and locked) until the PUT is done
        length = self._spool.stat().st_size

        def put() -> None:
            with open(self._spool, "rb") as body:
                resp = _request(self._u, "PUT", data=body, headers={"Content-Length": str(length)})
            _check(self._u, resp, (200, 201, 204))

        try:
            with_retries(put, "http.put")
        finally:
            self.abort()

    def abort(self) -> None:
        self._spool.unlink(missing_ok=True)  # before the close that drops our lock
        self._f.close()
