"""Bounded retries with exponential backoff for transient storage failures."""

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from worker.logs import get_logger
from worker.storage.errors import TransientError

log = get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 8.0

    def delay(self, attempt: int) -> float:
        return min(self.max_seconds, self.base_seconds * (2**attempt))


def default_policy() -> RetryPolicy:
    # Tests shorten the backoff through the environment; production keeps the defaults.
    base = float(os.environ.get("BATCHINFER_RETRY_BASE_SECONDS", "0.5"))
    attempts = int(os.environ.get("BATCHINFER_RETRY_ATTEMPTS", "6"))
    return RetryPolicy(attempts=attempts, base_seconds=base)


def with_retries(fn: Callable[[], T], what: str, policy: RetryPolicy | None = None) -> T:
    """Call fn, retrying TransientError up to policy.attempts times in total."""
    policy = policy or default_policy()
    for attempt in range(policy.attempts):
        try:
            return fn()
        except TransientError as exc:
            if attempt + 1 >= policy.attempts:
                raise
            delay = policy.delay(attempt)
            log.warning("storage.retry", what=what, url=exc.url, status=exc.status,
                        attempt=attempt + 1, delay_s=delay, error=str(exc))
            time.sleep(delay)
    raise AssertionError("unreachable")


def resumable_read(
    url: str,
    read_once: Callable[[int, int | None], Iterator[bytes]],
    start: int,
    end: int | None,
    policy: RetryPolicy | None = None,
) -> Iterator[bytes]:
    """Yield bytes [start, end) from read_once(pos, end); a stream broken by a TransientError
    is reopened at the last byte received, up to policy.attempts failures in total."""
    policy = policy or default_policy()
    pos, failures = start, 0
    while end is None or pos < end:
        try:
            for block in read_once(pos, end):
                pos += len(block)
                yield block
            return
        except TransientError as exc:
            failures += 1
            if failures >= policy.attempts:
                raise
            delay = policy.delay(failures - 1)
            log.warning("storage.retry", what="read", url=url, offset=pos, attempt=failures,
                        delay_s=delay, error=str(exc))
            time.sleep(delay)
