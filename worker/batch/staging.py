"""The staging layout, shared by run-shard (writes it) and gather (reads it):
`PREFIX/shards/NNNNN/` holds a shard's checkpoint chunks and, once it is finished,
`summary.json`."""

from worker import storage


def shard_prefix(staging_url: str, index: int) -> str:
    return storage.join(staging_url, "shards", f"{index:05d}")


def shard_summary_url(staging_url: str, index: int) -> str:
    return storage.join(shard_prefix(staging_url, index), "summary.json")
