"""The reference paged-attention backend against a dense causal attention written in NumPy."""

import numpy as np
import pytest

from kernels import UnknownBackendError, get_backend
from worker.platform import Platform, paddle

CPU = Platform(device="cpu", dtype="float32")


def dense_attention(q, k, v, scale):
    """q [ql, Hq, D] are the last ql positions of k, v [L, Hkv, D]; loops, no shared code."""
    q_len, num_heads, _ = q.shape
    seq_len, num_kv_heads, _ = k.shape
    group = num_heads // num_kv_heads
    out = np.zeros_like(q)
    for j in range(q_len):
        pos = seq_len - q_len + j
        for h in range(num_heads):
            kh, vh = k[: pos + 1, h // group], v[: pos + 1, h // group]
            s = kh @ q[j, h] * scale
            p = np.exp(s - s.max())
            out[j, h] = (p / p.sum()) @ vh
    return out


def run_case(seq_specs, num_heads, num_kv_heads, head_dim=8, block_size=4, seed=0):
    """seq_specs: [(seq_len, q_len)]. Writes every sequence's K/V through write_kv, then attends."""
    rng = np.random.default_rng(seed)
    backend = get_backend("reference", CPU)
    max_blocks = max(-(-s // block_size) for s, _ in seq_specs)
    num_blocks = len(seq_specs) * max_blocks + 3
    free = list(rng.permutation(np.arange(1, num_blocks)))  # scattered, non-contiguous blocks
    kc = paddle.zeros([num_blocks, num_kv_heads, block_size, head_dim])
    vc = paddle.zeros([num_blocks, num_kv_heads, block_size, head_dim])
    tables = np.zeros((len(seq_specs), max_blocks), np.int32)
    queries, expected, qsl = [], [], [0]
    for b, (seq_len, q_len) in enumerate(seq_specs):
        nb = -(-seq_len // block_size)
        tables[b, :nb] = [free.pop() for _ in range(nb)]
        k = rng.standard_normal((seq_len, num_kv_heads, head_dim)).astype(np.float32)
        v = rng.standard_normal((seq_len, num_kv_heads, head_dim)).astype(np.float32)
        pos = np.arange(seq_len)
        slots = tables[b, pos // block_size].astype(np.int64) * block_size + pos % block_size
        backend.write_kv(kc, vc, paddle.to_tensor(k), paddle.to_tensor(v), slots)
        q = rng.standard_normal((q_len, num_heads, head_dim)).astype(np.float32)
        queries.append(q)
        expected.append(dense_attention(q, k, v, head_dim**-0.5))
        qsl.append(qsl[-1] + q_len)
    out = backend.paged_attention(
        paddle.to_tensor(np.concatenate(queries)), kc, vc,
        np.array(qsl, np.int32), np.array([s for s, _ in seq_specs], np.int32), tables,
        head_dim**-0.5,
    )
    np.testing.assert_allclose(out.numpy(), np.concatenate(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_heads,num_kv_heads", [(4, 4), (4, 2), (8, 2), (4, 1)])
def test_prefill_prefix_chunk_decode_in_one_batch(num_heads, num_kv_heads):
    specs = [
        (9, 9),  # prefill across three blocks
        (11, 3),  # chunk / prefix hit: 8 cached tokens, 3 new, crossing a block boundary
        (4, 4),  # prefill of exactly one block
        (13, 1),  # decode, first token of a new block
        (8, 1),  # decode at a block's last slot
        (5, 2),
    ]
    run_case(specs, num_heads, num_kv_heads)


def test_decode_only_and_prefill_only_batches():
    run_case([(1, 1), (7, 1), (16, 1)], 4, 2, block_size=8)
    run_case([(17, 17), (3, 3)], 6, 3, block_size=8)


def test_write_kv_places_tokens_by_slot():
    backend = get_backend(None, CPU)
    kc = paddle.zeros([3, 2, 4, 2])
    vc = paddle.zeros([3, 2, 4, 2])
    key = paddle.to_tensor(np.arange(8, dtype=np.float32).reshape(2, 2, 2))
    backend.write_kv(kc, vc, key, -key, np.array([5, 10]))
    k = kc.numpy()
    np.testing.assert_array_equal(k[1, :, 1], key.numpy()[0])  # slot 5 = block 1, offset 1
    np.testing.assert_array_equal(k[2, :, 2], key.numpy()[1])  # slot 10 = block 2, offset 2
    assert np.count_nonzero(k) == np.count_nonzero(key.numpy())
    np.testing.assert_array_equal(vc.numpy(), -k)


def test_unknown_backend_is_a_typed_error():
    with pytest.raises(UnknownBackendError, match="'nope' is unknown"):
        get_backend("nope", CPU)
    assert get_backend("auto", CPU).name in ("cpu", "reference")  # reference when cpu cannot build


def test_long_prefill_is_tiled_and_still_exact():
    """Tiles of 1..7 query rows (the score budget forced tiny) equal the dense result."""
    from kernels.reference import _attend_one

    rng = np.random.default_rng(3)
    seq_len, q_len, hq, hkv, d, bs = 23, 14, 4, 2, 8, 4
    k = rng.standard_normal((seq_len, hkv, d)).astype(np.float32)
    v = rng.standard_normal((seq_len, hkv, d)).astype(np.float32)
    q = rng.standard_normal((q_len, hq, d)).astype(np.float32)
    nb = -(-seq_len // bs)
    kc = np.zeros((nb, hkv, bs, d), np.float32)
    vc = np.zeros_like(kc)
    for p in range(seq_len):
        kc[p // bs, :, p % bs], vc[p // bs, :, p % bs] = k[p], v[p]
    expected = dense_attention(q, k, v, d**-0.5)
    for budget in (1, hq * seq_len * 3, hq * seq_len * 7, 1 << 26):
        out = _attend_one(paddle.to_tensor(q), paddle.to_tensor(kc), paddle.to_tensor(vc),
                          np.arange(nb), seq_len, d**-0.5, max_score_elems=budget)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
