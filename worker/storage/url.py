"""Storage URLs: `s3://bucket/key`, `http(s)://...` and local paths, parsed once into plain data."""

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from worker.contract import redact
from worker.storage.errors import UnsupportedURLError

Scheme = Literal["s3", "http", "local"]


@dataclass(frozen=True)
class StorageURL:
    scheme: Scheme
    raw: str
    bucket: str = ""  # s3 only
    key: str = ""  # s3 only

    def __str__(self) -> str:
        return self.safe

    @property
    def safe(self) -> str:
        """The URL without user info or query string: presigned URLs carry secrets there."""
        return redact(self.raw)


def parse_url(url: str) -> StorageURL:
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise UnsupportedURLError(url, "s3 URL has no bucket")
        return StorageURL("s3", url, bucket=parts.netloc, key=parts.path.lstrip("/"))
    if parts.scheme in ("http", "https"):
        return StorageURL("http", url)
    if parts.scheme == "file":
        return StorageURL("local", url, key=parts.path)
    if parts.scheme == "" or (len(parts.scheme) == 1 and url[1:3] in (":\\", ":/")):
        return StorageURL("local", url, key=url)
    raise UnsupportedURLError(url, f"scheme {parts.scheme!r} is not one of s3, http(s), a local path")


def is_local(url: str) -> bool:
    return parse_url(url).scheme == "local"


def join(base: str, *names: str) -> str:
    """Append path segments to a URL or path prefix (a trailing slash on base is optional)."""
    out = base.rstrip("/")
    for name in names:
        out = f"{out}/{name.strip('/')}"
    return out
