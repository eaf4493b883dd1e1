"""Download a model directory from an s3:// prefix once into a local cache."""

import hashlib
import os
from pathlib import Path

from worker.contract import model_location_problem
from worker.logs import get_logger
from worker.storage import open_writer, read, s3
from worker.storage.errors import StorageError
from worker.storage.url import parse_url

log = get_logger(__name__)


def default_cache_dir() -> Path:
    root = os.environ.get("BATCHINFER_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "batchinfer")
    return Path(root) / "models"


def resolve_model_dir(model: str, cache_dir: str | Path | None = None) -> str:
    """A local directory as is; an s3:// prefix mirrored into cache_dir (same-size files kept)."""
    u = parse_url(model)
    if u.scheme == "local":
        return u.key
    if u.scheme != "s3":
        raise StorageError(u.safe, f"model {model_location_problem(model)}")
    digest = hashlib.sha256(model.rstrip("/").encode()).hexdigest()[:16]
    target = Path(cache_dir or default_cache_dir()) / digest
    download_prefix(model, target)
    return str(target)


def download_prefix(prefix: str, target: Path) -> dict:
    u = parse_url(prefix)
    keys = s3.list_keys(u, recursive=True)
    if not keys:
        raise StorageError(u.raw, "no objects under this prefix")
    stats = {"downloaded": 0, "skipped": 0}
    for rel, nbytes in keys:
        if rel.startswith("/") or ".." in rel.split("/"):
            raise StorageError(u.raw, f"object key {rel!r} escapes the model directory")
        dest = target / rel
        if dest.is_file() and dest.stat().st_size == nbytes:
            stats["skipped"] += 1
            continue
        with open_writer(str(dest)) as w:
            for block in read(f"{prefix.rstrip('/')}/{rel}"):
                w.write(block)
        stats["downloaded"] += 1
    log.info("model.synced", url=u.raw, target=str(target), **stats)
    return stats
