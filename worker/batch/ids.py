"""Per-run identity: ids derived from the batch id and each line's BYTE OFFSET in the input.

Why byte offsets, not line numbers: a shard knows where its byte range starts, not how many
lines precede it (that would need a pre-pass over the file). The offset of a line is global
and free, so a shard and a whole-file run give every line the same ids with no coordination.
"""

import hashlib
import time
import uuid

from pydantic import BaseModel, Field


class BatchIdentity(BaseModel):
    """Fixed for a whole run (and for every shard of it): the operator passes the same values."""

    batch_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    created: int = Field(ge=0, description="Unix seconds stamped on every response body")
    model: str = Field(description="Model name written into response bodies")

    @classmethod
    def new(cls, model: str, batch_id: str | None = None, created: int | None = None) -> "BatchIdentity":
        return cls(batch_id=batch_id or uuid.uuid4().hex, created=int(time.time()) if created is None else created,
                   model=model)

    def _digest(self, offset: int, purpose: str) -> str:
        return hashlib.sha256(f"{self.batch_id}:{offset}:{purpose}".encode()).hexdigest()

    def line_id(self, offset: int) -> str:
        return f"batch-{self._digest(offset, 'line')[:32]}"

    def request_id(self, offset: int) -> str:
        return f"batch-req-{self._digest(offset, 'request')[:32]}"

    def completion_id(self, offset: int, chat: bool) -> str:
        h = self._digest(offset, "body")
        uid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"  # uuid-shaped, as the reference
        return f"chatcmpl-{uid}" if chat else f"cmpl-{uid}"


def custom_id_hash(custom_id: str) -> str:
    """16 hex digits standing for a custom_id in chunk metadata (duplicate detection)."""
    return hashlib.blake2b(custom_id.encode("utf-8"), digest_size=8).hexdigest()
