"""The `reference` backend: plain Paddle ops, runs on any device, the oracle in tests.

Prefill-like sequences (several query tokens) get one masked matmul each against their
gathered blocks; all single-token (decode) sequences are batched into one padded matmul.
Grouped-query attention never materialises repeated K/V: query heads are folded into the
kv-head axis (query head h reads kv head h // group, as in HF's repeat_kv).
"""

import numpy as np

from worker.platform import paddle

_NEG_INF = float("-inf")
_MAX_SCORE_ELEMS = 1 << 26  # 256 MB of float32 attention scores per query tile


def _host(x) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.numpy()


def _device(x, dtype: str):
    return paddle.to_tensor(x, dtype=dtype) if isinstance(x, np.ndarray) else x.astype(dtype)


def write_kv(key_cache, value_cache, key, value, slot_mapping) -> None:
    """Scatter key/value [T, Hkv, D] into the caches [NB, Hkv, BS, D] at `slot_mapping` [T]."""
    num_kv_heads, block_size = key_cache.shape[1], key_cache.shape[2]
    slots = _device(slot_mapping, "int64")
    heads = paddle.arange(num_kv_heads, dtype="int64").unsqueeze(0)  # [1, Hkv]
    blocks = (slots // block_size).unsqueeze(1).expand([-1, num_kv_heads])
    offsets = (slots % block_size).unsqueeze(1).expand([-1, num_kv_heads])
    heads = heads.expand_as(blocks)
    paddle.index_put_(key_cache, (blocks, heads, offsets), key.astype(key_cache.dtype))
    paddle.index_put_(value_cache, (blocks, heads, offsets), value.astype(value_cache.dtype))


def _gather_kv(cache, block_ids: np.ndarray, length: int):
    """[nb] block ids -> [Hkv, length, D] contiguous keys (or values) of one sequence."""
    blocks = paddle.index_select(cache, paddle.to_tensor(block_ids, dtype="int64"), axis=0)
    nb, hkv, bs, d = blocks.shape
    return blocks.transpose([1, 0, 2, 3]).reshape([hkv, nb * bs, d])[:, :length]


def _attend_one(q, key_cache, value_cache, block_ids, seq_len: int, scale: float,
                max_score_elems: int = _MAX_SCORE_ELEMS):
    """q [ql, Hq, D] of one sequence whose context is `seq_len` tokens -> [ql, Hq, D].

    Queries go in tiles so the float32 score matrix stays under `max_score_elems` however
    long the context is (a chunk of 8k tokens against 32k would otherwise need gigabytes).
    """
    q_len, num_heads, _ = q.shape
    k = _gather_kv(key_cache, block_ids, seq_len).astype("float32")
    v = _gather_kv(value_cache, block_ids, seq_len).astype("float32")
    tile = max(1, max_score_elems // (num_heads * seq_len))
    first = seq_len - q_len  # bottom-right causal: query j sits at position first + j
    outs = [_attend_tile(q[s : s + tile], k, v, first + s, scale) for s in range(0, q_len, tile)]
    return outs[0] if len(outs) == 1 else paddle.concat(outs, axis=0)


def _attend_tile(q, k, v, first_pos: int, scale: float):
    """q [n, Hq, D] at positions first_pos.. against k, v [Hkv, >= first_pos + n, D]."""
    n, num_heads, head_dim = q.shape
    num_kv_heads = k.shape[0]
    group = num_heads // num_kv_heads
    length = first_pos + n  # later keys are masked for every query of the tile: skip them
    k, v = k[:, :length], v[:, :length]
    qf = q.astype("float32").transpose([1, 0, 2]).reshape([num_kv_heads, group * n, head_dim])
    scores = paddle.matmul(qf, k, transpose_y=True) * scale  # [Hkv, group*n, length]
    allowed = np.arange(length)[None, :] <= (first_pos + np.arange(n))[:, None]
    mask = np.where(np.tile(allowed, (group, 1)), 0.0, _NEG_INF).astype(np.float32)
    probs = paddle.nn.functional.softmax(scores + paddle.to_tensor(mask), axis=-1)
    out = paddle.matmul(probs, v).reshape([num_heads, n, head_dim]).transpose([1, 0, 2])
    return out.astype(q.dtype)


def _attend_decode(q, key_cache, value_cache, block_tables: np.ndarray, lens: np.ndarray, scale):
    """q [n, Hq, D], one query token per sequence at its last position -> [n, Hq, D]."""
    n, num_heads, head_dim = q.shape
    _, num_kv_heads, block_size, _ = key_cache.shape
    group = num_heads // num_kv_heads
    max_blocks = int(-(-lens.max() // block_size))
    ids = paddle.to_tensor(block_tables[:, :max_blocks].reshape(-1), dtype="int64")
    span = max_blocks * block_size

    def gather(cache):
        blocks = paddle.index_select(cache, ids, axis=0)  # [n*mb, Hkv, BS, D]
        blocks = blocks.reshape([n, max_blocks, num_kv_heads, block_size, head_dim])
        return blocks.transpose([0, 2, 1, 3, 4]).reshape([n, num_kv_heads, span, head_dim])

    k, v = gather(key_cache).astype("float32"), gather(value_cache).astype("float32")
    qf = q.astype("float32").reshape([n, num_kv_heads, group, head_dim])
    scores = paddle.matmul(qf, k, transpose_y=True) * scale  # [n, Hkv, group, span]
    mask = np.where(np.arange(span)[None, :] < lens[:, None], 0.0, _NEG_INF).astype(np.float32)
    scores = scores + paddle.to_tensor(mask).reshape([n, 1, 1, span])
    probs = paddle.nn.functional.softmax(scores, axis=-1)
    return paddle.matmul(probs, v).reshape([n, num_heads, head_dim]).astype(q.dtype)


def paged_attention(query, key_cache, value_cache, query_start_loc, seq_lens, block_tables, scale):
    """query [T, Hq, D] against the paged caches; returns [T, Hq, D] in the same row order."""
    qsl, lens, tables = _host(query_start_loc), _host(seq_lens), _host(block_tables)
    q_lens = np.diff(qsl)
    block_size = key_cache.shape[2]
    pieces, rows = [], []  # outputs in computation order, and the batch rows they belong to
    decode = np.flatnonzero(q_lens == 1)
    if decode.size:
        decode_rows = qsl[decode].astype(np.int64)
        q = paddle.index_select(query, paddle.to_tensor(decode_rows), axis=0)
        pieces.append(_attend_decode(q, key_cache, value_cache, tables[decode], lens[decode], scale))
        rows.append(decode_rows)
    for b in np.flatnonzero(q_lens > 1):
        start, end, seq_len = int(qsl[b]), int(qsl[b + 1]), int(lens[b])
        block_ids = tables[b, : -(-seq_len // block_size)]
        pieces.append(_attend_one(query[start:end], key_cache, value_cache, block_ids, seq_len, scale))
        rows.append(np.arange(start, end, dtype=np.int64))
    if not pieces:
        return paddle.zeros_like(query)
    if len(pieces) == 1 and (decode.size == 0 or decode.size == len(q_lens)):
        return pieces[0]  # already in batch order
    order = np.concatenate(rows)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    return paddle.index_select(paddle.concat(pieces, axis=0), paddle.to_tensor(inverse), axis=0)
