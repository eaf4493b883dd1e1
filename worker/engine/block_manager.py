"""The KV-cache block manager: fixed-size blocks, ref counts and prefix caching.

A block is registered under a chained hash (hash of its parent block's hash and its token
ids) as soon as a step is SCHEDULED that fills it (the vLLM v1 way), so a sequence admitted
later in the same step already reuses it. That is safe because the block's K/V are written in
that same forward pass before any attention reads them (every layer of
worker/models/decoder.py calls write_kv for all tokens of the flat batch, then
paged_attention), and every scheduled step runs: after it, every registered block is
computed. A freed cached block keeps its hash in an LRU free list and can still be hit until
it is handed out again; handing it out drops the stale hash. Blocks without a hash are handed
out before any cached block. At most `num_tokens - 1` tokens can hit, so the last token is
always recomputed (its logits are needed) and no step ever writes into a shared block.
"""

from collections import OrderedDict
from dataclasses import dataclass

from worker.engine.sequence import Sequence

NO_HASH = -1


class OutOfBlocksError(RuntimeError):
    """The caller asked for blocks without checking can_allocate / can_append first."""


def chain_hash(parent_hash: int, token_ids: tuple[int, ...]) -> int:
    return hash((parent_hash, token_ids))


@dataclass
class Block:
    block_id: int
    ref_count: int = 0
    hash: int = NO_HASH
    token_ids: tuple[int, ...] = ()


def num_blocks_for(num_tokens: int, block_size: int) -> int:
    return -(-num_tokens // block_size)


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.hash_to_block_id: dict[int, int] = {}
        # Insertion order is the LRU order: the first key is handed out next.
        self.free_block_ids: OrderedDict[int, None] = OrderedDict((i, None) for i in range(num_blocks))

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_block_ids)

    # -- prefix cache look-up -------------------------------------------------------------

    def get_computed_blocks(self, seq: Sequence) -> list[int]:
        """Block ids of the longest cached prefix of `seq` (pure: changes nothing)."""
        if not self.enable_prefix_caching:
            return []
        hits: list[int] = []
        parent = NO_HASH
        for i in range((seq.num_tokens - 1) // self.block_size):
            tokens = tuple(seq.token_ids[i * self.block_size : (i + 1) * self.block_size])
            parent = chain_hash(parent, tokens)
            block_id = self.hash_to_block_id.get(parent)
            # Comparing the tokens makes a hash collision a miss instead of wrong text.
            if block_id is None or self.blocks[block_id].token_ids != tokens:
                break
            hits.append(block_id)
        return hits

    # -- allocation -----------------------------------------------------------------------

    def can_allocate(self, computed_blocks: list[int], num_tokens: int) -> bool:
        """Can a new sequence hold `num_tokens` tokens, reusing `computed_blocks`?"""
        revived = sum(1 for b in computed_blocks if self.blocks[b].ref_count == 0)
        new = num_blocks_for(num_tokens, self.block_size) - len(computed_blocks)
        return revived + max(new, 0) <= self.num_free_blocks

    def allocate(self, seq: Sequence, computed_blocks: list[int], num_new_tokens: int) -> None:
        """Give `seq` its cached prefix plus room for `num_new_tokens` more tokens."""
        assert not seq.block_table, f"seq {seq.seq_id} already holds blocks"
        num_cached = len(computed_blocks) * self.block_size
        if not self.can_allocate(computed_blocks, num_cached + num_new_tokens):
            raise OutOfBlocksError(f"seq {seq.seq_id}: not enough free blocks")
        for block_id in computed_blocks:
            block = self.blocks[block_id]
            if block.ref_count == 0:
                del self.free_block_ids[block_id]
            block.ref_count += 1
            seq.block_table.append(block_id)
            seq.block_hashes.append(block.hash)
        seq.num_computed_tokens = num_cached
        if seq.num_preemptions == 0:
            seq.num_cached_tokens = num_cached
        self.append_slots(seq, num_new_tokens)

    def can_append(self, seq: Sequence, num_new_tokens: int) -> bool:
        return self._num_missing_blocks(seq, num_new_tokens) <= self.num_free_blocks

    def append_slots(self, seq: Sequence, num_new_tokens: int) -> None:
        """Make sure the block table covers the next `num_new_tokens` tokens."""
        missing = self._num_missing_blocks(seq, num_new_tokens)
        if missing > self.num_free_blocks:
            raise OutOfBlocksError(f"seq {seq.seq_id}: needs {missing} blocks, {self.num_free_blocks} free")
        for _ in range(missing):
            seq.block_table.append(self._take_free_block())

    def _num_missing_blocks(self, seq: Sequence, num_new_tokens: int) -> int:
        needed = num_blocks_for(seq.num_computed_tokens + num_new_tokens, self.block_size)
        return max(needed - len(seq.block_table), 0)

    def _take_free_block(self) -> int:
        block_id, _ = self.free_block_ids.popitem(last=False)
        block = self.blocks[block_id]
        assert block.ref_count == 0, f"free block {block_id} has ref_count {block.ref_count}"
        if block.hash != NO_HASH and self.hash_to_block_id.get(block.hash) == block_id:
            del self.hash_to_block_id[block.hash]
        block.hash, block.token_ids, block.ref_count = NO_HASH, (), 1
        return block_id

    # -- release and registration ---------------------------------------------------------

    def free(self, seq: Sequence) -> None:
        """Release `seq`'s blocks; tail blocks first, so the LRU evicts them first."""
        for block_id in reversed(seq.block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            assert block.ref_count >= 0, f"block {block_id} freed twice"
            if block.ref_count == 0:
                self.free_block_ids[block_id] = None
                if block.hash == NO_HASH:  # worthless: hand it out before cached blocks
                    self.free_block_ids.move_to_end(block_id, last=False)
        seq.block_table = []
        seq.block_hashes = []
        seq.num_computed_tokens = 0

    def cache_full_blocks(self, seq: Sequence, num_tokens: int | None = None) -> None:
        """Register `seq`'s blocks that are full once its first `num_tokens` tokens have K/V.

        The scheduler passes num_computed_tokens + this step's new tokens, at scheduling time:
        only blocks fully covered by this step (or earlier ones) are registered, never the
        blocks of a chunked prefill's later chunks. Defaults to the tokens already computed.
        """
        if not self.enable_prefix_caching:
            return
        bs = self.block_size
        if num_tokens is None:
            num_tokens = seq.num_computed_tokens
        assert num_tokens <= seq.num_tokens, f"seq {seq.seq_id}: {num_tokens} > {seq.num_tokens} tokens"
        num_full = min(num_tokens // bs, len(seq.block_table))
        for i in range(len(seq.block_hashes), num_full):
            parent = seq.block_hashes[-1] if seq.block_hashes else NO_HASH
            tokens = tuple(seq.token_ids[i * bs : (i + 1) * bs])
            h = chain_hash(parent, tokens)
            seq.block_hashes.append(h)
            block = self.blocks[seq.block_table[i]]
            # First writer wins: an identical block computed concurrently stays private (and
            # hashless, so it is recycled before real cache entries).
            if block.hash == NO_HASH and self.hash_to_block_id.setdefault(h, block.block_id) == block.block_id:
                block.hash, block.token_ids = h, tokens
