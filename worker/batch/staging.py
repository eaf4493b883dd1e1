"""The staging layout, shared by run-shard (writes it) and gather (reads it, then removes it):
`PREFIX/shards/NNNNN/` holds a shard's checkpoint chunks and, once it is finished,
`summary.json`; `PREFIX/gathered.json` marks a published output while staging is removed."""

from worker import storage
from worker.batch import checkpoint


def shard_prefix(staging_url: str, index: int) -> str:
    return storage.join(staging_url, "shards", f"{index:05d}")


def shard_summary_url(staging_url: str, index: int) -> str:
    return storage.join(shard_prefix(staging_url, index), "summary.json")


def gathered_url(staging_url: str) -> str:
    return storage.join(staging_url, "gathered.json")


def remove(staging_url: str, num_shards: int) -> int:
    """Delete what the run staged, by name (plain HTTP cannot list). Each shard's chunks go last
    first (their metadata is found by probing 0, 1, 2...) and the gathered mark goes last of all,
    so a gather retried halfway still finds the mark and only finishes the removal."""
    removed = 0
    for index in range(num_shards):
        prefix = shard_prefix(staging_url, index)
        for meta in reversed(list(checkpoint.iter_metas(prefix))):
            storage.delete(storage.join(prefix, checkpoint.chunk_name(meta.index)))
            storage.delete(storage.join(prefix, checkpoint.meta_name(meta.index)))
            removed += 1
        storage.delete(storage.join(prefix, checkpoint.MANIFEST_NAME))
        storage.delete(shard_summary_url(staging_url, index))
    storage.delete(gathered_url(staging_url))
    return removed
