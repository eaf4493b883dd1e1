"""ModelRunner: KV cache sizing and logging, batch checks, greedy decoding against paddleformers."""

import numpy as np
import pytest
from structlog.testing import capture_logs

from tests.model.conftest import CPU, BlockPool, Seq, build_batch
from worker.engine.model_runner import BatchError, KVCacheConfigError, ModelRunner, block_bytes
from worker.models.config import ModelConfig
from worker.platform import paddle


def test_logs_total_block_num_and_allocates_the_layout(tiny_model):
    with capture_logs() as logs:
        r = ModelRunner(tiny_model, CPU, block_size=16, num_blocks=10, max_num_batched_tokens=64)
    assert any(e["event"] == "total_block_num:10 block_size:16 cacheable_tokens:160" for e in logs)
    c = r.config
    assert len(r.kv_caches) == c.num_hidden_layers
    assert r.kv_caches[0][0].shape == [10, c.num_key_value_heads, 16, c.head_dim]


def test_num_blocks_from_a_memory_budget(tiny_model):
    config = ModelConfig.from_pretrained(tiny_model)
    per_block = block_bytes(config, 16, "float32")
    assert per_block == 2 * config.num_hidden_layers * config.num_key_value_heads * 16 * config.head_dim * 4
    r = ModelRunner(tiny_model, CPU, 16, None, 64, kv_cache_memory_bytes=7 * per_block + 5)
    assert r.num_blocks == 7
    assert ModelRunner(tiny_model, CPU, 16, None, 64).num_blocks >= 1  # from available RAM
    with pytest.raises(KVCacheConfigError, match="holds no block"):
        ModelRunner(tiny_model, CPU, 16, None, 64, kv_cache_memory_bytes=per_block - 1)


def test_batch_limits_are_typed_errors(tiny_model):
    r = ModelRunner(tiny_model, CPU, block_size=4, num_blocks=3, max_num_batched_tokens=8)
    with pytest.raises(BatchError, match="9 tokens, over max_num_batched_tokens=8"):
        r.execute(build_batch(BlockPool(4), [(Seq(list(range(3, 12))), 9)]))
    with pytest.raises(BatchError, match="outside the cache of 3 blocks"):
        r.execute(build_batch(BlockPool(4, next_block=3), [(Seq([5, 6]), 2)]))


def reference_greedy(model, prompt: list[int], steps: int) -> list[int]:
    tokens = list(prompt)
    with paddle.no_grad():
        for _ in range(steps):  # full recompute each step: nothing shared with our cache path
            tokens.append(int(model(paddle.to_tensor([tokens])).logits[0, -1].argmax()))
    return tokens[len(prompt):]


def test_greedy_decode_of_a_batch_is_token_identical(tiny_model):
    rng = np.random.default_rng(7)
    prompts = [rng.integers(3, 1024, size=n).tolist() for n in (1, 3, 6, 9, 14, 20, 33, 47)]
    steps = 32
    r = ModelRunner(tiny_model, CPU, block_size=8, num_blocks=80, max_num_batched_tokens=256)
    pool, seqs = BlockPool(8), [Seq(list(p)) for p in prompts]
    work = [(s, len(s.tokens)) for s in seqs]
    for _ in range(steps):
        batch = build_batch(pool, work)
        last = np.cumsum([n for _, n in work]) - 1
        logits = r.execute(type(batch)(**{**batch.__dict__, "sample_indices": last}))
        for s, row in zip(seqs, logits):
            s.tokens.append(int(row.argmax()))
        work = [(s, 1) for s in seqs]
    from paddleformers.transformers import Ernie4_5ForCausalLM

    model = Ernie4_5ForCausalLM.from_pretrained(str(tiny_model), fuse_rms_norm=False)
    model.eval()
    for p, s in zip(prompts, seqs):
        assert s.tokens[len(p):] == reference_greedy(model, p, steps)


def test_small_steps_run_on_one_thread_and_large_ones_on_all(tiny_model):
    r = ModelRunner(tiny_model, CPU, block_size=16, num_blocks=300, max_num_batched_tokens=4096)
    r.max_threads = 2  # as with OMP_NUM_THREADS=2, whatever this machine has
    decode = [(Seq(list(range(3, 200)), num_computed=196), 1) for _ in range(64)]
    assert r.threads_for(build_batch(BlockPool(16), decode)) == 1
    prefill = build_batch(BlockPool(16), [(Seq([5] * 4000), 4000)])
    assert r.threads_for(prefill) == 2
    before = r.execute(build_batch(BlockPool(16), [(Seq([5, 6, 7]), 3)]))
    r.execute(prefill)  # a parallel step between two small ones changes nothing
    assert np.array_equal(r.execute(build_batch(BlockPool(16), [(Seq([5, 6, 7]), 3)])), before)
