"""The fast CPU backend against the reference backend: same caches, same batch, same output.

Cases mix prefill, prefix hits / chunks (queries are the last q_len of a longer context),
and decode, with lengths on and across block boundaries, scattered physical blocks and every
grouped-query ratio the supported models use.
"""

import numpy as np
import pytest

from kernels import get_backend
from kernels.cpu.build import cpu_flags
from worker.platform import Platform, paddle

CPU = Platform(device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def backends():
    return get_backend("cpu", CPU), get_backend("reference", CPU)


def make_batch(seq_specs, num_heads, num_kv_heads, head_dim, block_size, seed):
    """seq_specs [(seq_len, q_len)] -> caches filled with random K/V and a flat query batch."""
    rng = np.random.default_rng(seed)
    max_blocks = max(-(-s // block_size) for s, _ in seq_specs)
    num_blocks = len(seq_specs) * max_blocks + 3
    free = list(rng.permutation(np.arange(1, num_blocks)))  # scattered, non-contiguous
    tables = np.zeros((len(seq_specs), max_blocks), np.int32)
    for b, (seq_len, _) in enumerate(seq_specs):
        nb = -(-seq_len // block_size)
        tables[b, :nb] = [free.pop() for _ in range(nb)]
    shape = (num_blocks, num_kv_heads, block_size, head_dim)
    k_cache = rng.standard_normal(shape).astype(np.float32)
    v_cache = rng.standard_normal(shape).astype(np.float32)
    q_lens = [q for _, q in seq_specs]
    query = rng.standard_normal((sum(q_lens), num_heads, head_dim)).astype(np.float32)
    qsl = np.concatenate([[0], np.cumsum(q_lens)]).astype(np.int32)
    lens = np.array([s for s, _ in seq_specs], np.int32)
    return query, k_cache, v_cache, qsl, lens, tables


def attend(backend, query, k_cache, v_cache, qsl, lens, tables, scale, **kw):
    out = backend.paged_attention(paddle.to_tensor(query), paddle.to_tensor(k_cache),
                                  paddle.to_tensor(v_cache), qsl, lens, tables, scale, **kw)
    return out.numpy()


def check(backends, seq_specs, num_heads, num_kv_heads, head_dim=128, block_size=16, seed=0, **kw):
    fast, ref = backends
    batch = make_batch(seq_specs, num_heads, num_kv_heads, head_dim, block_size, seed)
    scale = head_dim**-0.5
    got, want = attend(fast, *batch, scale, **kw), attend(ref, *batch, scale)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


MIXED = [
    (37, 37),  # prefill across three blocks, not a multiple of the tile
    (40, 7),  # prefix hit / chunk: 33 cached tokens, 7 new, crossing a block boundary
    (16, 16),  # prefill of exactly one block
    (33, 1),  # decode, first slot of a new block
    (32, 1),  # decode at a block's last slot
    (1, 1),  # a one-token prompt
    (100, 20),  # a chunk longer than the query tile, spanning two blocks
]


@pytest.mark.parametrize("num_heads,num_kv_heads", [(4, 4), (4, 2), (8, 2), (16, 2), (4, 1)])
def test_mixed_batch_matches_reference(backends, num_heads, num_kv_heads):
    check(backends, MIXED, num_heads, num_kv_heads, seed=num_heads * 10 + num_kv_heads)


@pytest.mark.parametrize("head_dim,block_size", [(64, 64), (128, 64), (128, 24), (96, 8), (8, 4)])
def test_head_dims_and_block_sizes(backends, head_dim, block_size):
    specs = [(block_size * 3 + 1, 1), (block_size * 2, block_size + 3), (5, 5), (block_size, 1)]
    check(backends, specs, 8, 2, head_dim=head_dim, block_size=block_size, seed=head_dim)


@pytest.mark.parametrize("wide", [False, True], ids=["avx2", "avx512"])
@pytest.mark.parametrize("tiled_rows", [1, 10**9], ids=["all-tiled", "row-by-row"])
@pytest.mark.parametrize("head_dim", [8, 20, 40, 48, 128])
def test_both_qk_pv_paths_at_every_head_dim(backends, tiled_rows, head_dim, wide):
    """The register-tile path (many rows: prefill) and the row-by-row one (few: decode) on the
    same batches, forced each way: K transposed whole (head_dim % 8 == 0) or element by element
    (20), V in whole 16-column tiles (AVX-512: pairs of them, then one: 48) or with a remainder
    (8, 20, 40). The AVX-512 tiles are refused by name on a CPU without AVX-512F."""
    if wide and "avx512f" not in cpu_flags():
        with pytest.raises(Exception, match="without AVX-512F"):
            check(backends, MIXED, 8, 2, head_dim=head_dim, tiled_rows=tiled_rows, wide=True)
        return
    check(backends, MIXED, 8, 2, head_dim=head_dim, block_size=16, seed=head_dim, tiled_rows=tiled_rows, wide=wide)


def test_decode_only_long_contexts(backends):
    check(backends, [(300, 1), (257, 1), (64, 1), (129, 1)], 16, 2, block_size=64, seed=3)


def test_prefill_only(backends):
    check(backends, [(130, 130), (64, 64), (3, 3)], 16, 2, block_size=64, seed=4)


def test_large_scores_stay_finite(backends):
    """Online softmax must not overflow where a naive exp would: scores in the hundreds."""
    fast, ref = backends
    query, k_cache, v_cache, qsl, lens, tables = make_batch([(70, 5), (90, 1)], 8, 2, 64, 16, 5)
    got = attend(fast, query * 40, k_cache, v_cache, qsl, lens, tables, 1.0)
    want = attend(ref, query * 40, k_cache, v_cache, qsl, lens, tables, 1.0)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_write_kv_matches_reference(backends):
    fast, ref = backends
    rng = np.random.default_rng(7)
    shape = [6, 2, 8, 16]
    key = rng.standard_normal((10, 2, 16)).astype(np.float32)
    value = rng.standard_normal((10, 2, 16)).astype(np.float32)
    slots = rng.choice(6 * 8, size=10, replace=False).astype(np.int64)
    caches = []
    for backend in (fast, ref):
        kc, vc = paddle.zeros(shape), paddle.zeros(shape)
        backend.write_kv(kc, vc, paddle.to_tensor(key), paddle.to_tensor(value), slots)
        caches.append((kc.numpy(), vc.numpy()))
    np.testing.assert_array_equal(caches[0][0], caches[1][0])
    np.testing.assert_array_equal(caches[0][1], caches[1][1])
    assert np.count_nonzero(caches[0][0]) == key.size


def test_write_kv_rejects_a_slot_outside_the_cache(backends):
    fast, _ = backends
    kc, vc = paddle.zeros([2, 1, 4, 8]), paddle.zeros([2, 1, 4, 8])
    kv = paddle.ones([1, 1, 8])
    with pytest.raises(Exception, match="outside the cache"):
        fast.write_kv(kc, vc, kv, kv, np.array([8], np.int64))
    assert float(kc.abs().sum()) == 0.0


def test_attention_rejects_a_block_id_outside_the_cache(backends):
    fast, _ = backends
    query, k_cache, v_cache, qsl, lens, tables = make_batch([(20, 1), (9, 9)], 4, 2, 8, 4, 8)
    tables[1, 0] = k_cache.shape[0]
    with pytest.raises(Exception, match="sequence 1: block id"):
        attend(fast, query, k_cache, v_cache, qsl, lens, tables, 1.0)
