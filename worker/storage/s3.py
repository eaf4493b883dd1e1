"""S3 and S3-compatible stores through boto3: ranged GETs, multipart uploads completed only
at commit (so the key never holds a partial object)."""

import functools
import os
from collections.abc import Iterator

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from worker.logs import get_logger
from worker.storage.errors import NotFoundError, StorageError, TransientError
from worker.storage.retry import resumable_read, with_retries
from worker.storage.url import StorageURL

PART_SIZE = 8 << 20
MIN_PART = 5 << 20  # S3's floor for every part but the last
READ_SIZE = 1 << 16
log = get_logger(__name__)


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def client():
    return _client(endpoint_url())


@functools.lru_cache(maxsize=4)
def _client(endpoint: str | None):
    # Credentials come from boto3's standard chain (env, shared files, IRSA); never from us.
    config = Config(retries={"max_attempts": 5, "mode": "standard"},
                    s3={"addressing_style": "path"} if endpoint else {})
    return boto3.client("s3", endpoint_url=endpoint, config=config)


def translate(u: StorageURL, exc: Exception) -> StorageError:
    """Map a botocore exception onto our typed errors."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = err.get("Code", "")
        if code in ("NoSuchKey", "404", "NoSuchBucket", "NotFound"):
            return NotFoundError(u.raw, f"{code}", status)
        if status and (status >= 500 or status == 429) or code in ("SlowDown", "RequestTimeout"):
            return TransientError(u.raw, code, status)
        return StorageError(u.raw, f"{code}: {err.get('Message', '')}", status)
    return TransientError(u.raw, f"{type(exc).__name__}")


def call(u: StorageURL, what: str, fn):
    def once():
        try:
            return fn()
        except (ClientError, BotoCoreError) as exc:
            raise translate(u, exc) from None

    return with_retries(once, what)


def size(u: StorageURL) -> int:
    head = call(u, "s3.head", lambda: client().head_object(Bucket=u.bucket, Key=u.key))
    return int(head["ContentLength"])


def exists(u: StorageURL) -> bool:
    try:
        size(u)
        return True
    except NotFoundError:
        return False


def read(u: StorageURL, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    return resumable_read(u.raw, lambda pos, stop: _read_once(u, pos, stop), start, end)


def _read_once(u: StorageURL, pos: int, end: int | None) -> Iterator[bytes]:
    if end is not None and pos >= end:
        return
    want = f"bytes={pos}-" if end is None else f"bytes={pos}-{end - 1}"
    try:
        resp = client().get_object(Bucket=u.bucket, Key=u.key, Range=want)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "InvalidRange":
            return  # pos is at or past the end
        raise translate(u, exc) from None
    except BotoCoreError as exc:
        raise translate(u, exc) from None
    body = resp["Body"]
    try:
        yield from body.iter_chunks(READ_SIZE)
    except (BotoCoreError, OSError) as exc:
        raise TransientError(u.raw, f"stream broken: {type(exc).__name__}") from None
    finally:
        body.close()


def list_keys(u: StorageURL, recursive: bool = False) -> list[tuple[str, int]]:
    """(key relative to the prefix u, size) of the objects under u/, sorted by key."""
    prefix = u.key.rstrip("/") + "/" if u.key else ""
    kw = {"Bucket": u.bucket, "Prefix": prefix} | ({} if recursive else {"Delimiter": "/"})
    out: list[tuple[str, int]] = []
    pages = call(u, "s3.list", lambda: list(client().get_paginator("list_objects_v2").paginate(**kw)))
    for page in pages:
        out += [(o["Key"][len(prefix):], int(o["Size"])) for o in page.get("Contents", [])]
    return sorted(out)


def list_names(u: StorageURL) -> list[str]:
    return [name for name, _ in list_keys(u)]


def discard_partial_writes(u: StorageURL) -> int:
    """Abort the multipart uploads a killed S3Writer left under the prefix u (they cost money)."""
    return _abort_uploads(u, u.key.rstrip("/") + "/" if u.key else "", exact=False)


def discard_stale_uploads(u: StorageURL) -> int:
    """Abort the open multipart uploads of exactly the key u: a killed writer's. S3 cannot
    tell a dead writer's upload from a live one's; one destination has one writer at a time
    (one gather pod; one process per shard), so any upload found is a dead one's."""
    return _abort_uploads(u, u.key, exact=True)


def _abort_uploads(u: StorageURL, prefix: str, exact: bool) -> int:
    # One page (1,000 uploads) is enough: a killed writer leaves one, and the exact key sorts first.
    resp = call(u, "s3.list_uploads", lambda: client().list_multipart_uploads(Bucket=u.bucket, Prefix=prefix))
    uploads = [up for up in resp.get("Uploads", []) if not exact or up["Key"] == u.key]
    for up in uploads:
        call(u, "s3.abort", lambda up=up: client().abort_multipart_upload(
            Bucket=u.bucket, Key=up["Key"], UploadId=up["UploadId"]))
        log.info("storage.stale_upload_aborted", bucket=u.bucket, key=up["Key"], initiated=str(up.get("Initiated")))
    return len(uploads)


def delete(u: StorageURL) -> None:
    call(u, "s3.delete", lambda: client().delete_object(Bucket=u.bucket, Key=u.key))


class S3Writer:
    """Buffers one part at a time (bounded memory); the multipart upload is completed only in
    commit(), and abort() cancels it, so readers never see a partial object. Before its first
    request it aborts the uploads of the same key a killed writer left open."""

    def __init__(self, u: StorageURL):
        self.url = u.raw
        self._u = u
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._done = False  # committed or aborted: nothing left to abort

    def write(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= PART_SIZE:
            self.upload_part(bytes(self._buf))
            self._buf.clear()

    def _ensure_upload(self) -> str:
        if self._upload_id is None:
            u = self._u
            discard_stale_uploads(u)
            resp = call(u, "s3.create_multipart",
                        lambda: client().create_multipart_upload(Bucket=u.bucket, Key=u.key))
            self._upload_id = resp["UploadId"]
        return self._upload_id

    def upload_part(self, data: bytes) -> None:
        u, upload_id, number = self._u, self._ensure_upload(), len(self._parts) + 1
        resp = call(u, "s3.upload_part", lambda: client().upload_part(
            Bucket=u.bucket, Key=u.key, UploadId=upload_id, PartNumber=number, Body=data))
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    def copy_part(self, source: StorageURL, start: int, end: int) -> None:
        """Append bytes [start, end) of another object in the same store, server side."""
        u, upload_id, number = self._u, self._ensure_upload(), len(self._parts) + 1
        resp = call(u, "s3.upload_part_copy", lambda: client().upload_part_copy(
            Bucket=u.bucket, Key=u.key, UploadId=upload_id, PartNumber=number,
            CopySource={"Bucket": source.bucket, "Key": source.key},
            CopySourceRange=f"bytes={start}-{end - 1}"))
        self._parts.append({"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]})

    def pending(self) -> int:
        return len(self._buf)

    def flush_part(self) -> None:
        if self._buf:
            self.upload_part(bytes(self._buf))
            self._buf.clear()

    def commit(self) -> None:
        u = self._u
        if self._upload_id is None:  # small object: one plain PUT
            discard_stale_uploads(u)
            data = bytes(self._buf)
            call(u, "s3.put", lambda: client().put_object(Bucket=u.bucket, Key=u.key, Body=data))
            self._done = True
            return
        self.flush_part()
        parts, upload_id = self._parts, self._upload_id
        call(u, "s3.complete", lambda: client().complete_multipart_upload(
            Bucket=u.bucket, Key=u.key, UploadId=upload_id, MultipartUpload={"Parts": parts}))
        self._done = True

    def abort(self) -> None:
        if self._upload_id is not None and not self._done:
            u, upload_id = self._u, self._upload_id
            call(u, "s3.abort", lambda: client().abort_multipart_upload(
                Bucket=u.bucket, Key=u.key, UploadId=upload_id))
        self._done = True
