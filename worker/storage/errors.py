"""Typed storage errors: each names the URL (never credentials) and, when known, the status."""


class StorageError(Exception):
    """A storage operation failed for good (after retries, or not retryable)."""

    def __init__(self, url: str, message: str, status: int | None = None):
        self.url = url
        self.status = status
        where = f"{url} (status {status})" if status is not None else url
        super().__init__(f"{where}: {message}")


class NotFoundError(StorageError):
    """The object or file does not exist."""


class TransientError(StorageError):
    """A failure worth retrying: 5xx, 429, connection reset, timeout."""


class UnsupportedURLError(StorageError):
    """The URL's scheme is not one we serve."""
