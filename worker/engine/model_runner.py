"""ModelRunner: loads the model, owns the paged KV cache, runs one flat batch per step.

The host side (scheduler, block manager) hands over an InputBatch of NumPy arrays; the
runner turns it into tensors once and returns float32 logits of the sampled rows as NumPy.
"""

import os
from pathlib import Path

import numpy as np

from kernels import get_backend
from worker.engine.input_batch import InputBatch
from worker.logs import get_logger
from worker.models.config import ModelConfig
from worker.models.decoder import AttentionInputs, DecoderForCausalLM
from worker.models.weight_loader import load_weights
from worker.platform import Platform, paddle

log = get_logger(__name__)

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# CPU: the KV cache shares RAM with the weights and the host; take a modest slice by default.
_CPU_KV_FRACTION = 0.1
_CPU_KV_MAX_BYTES = 1 << 30
# No point in more blocks than this many full-length sequences could fill.
_MAX_FULL_SEQUENCES = 64
# CPU: a step whose every layer has fewer multiply-adds than this in its projections and in its
# attention runs on one thread. Each of the ~25 ops of a layer pays a thread wake-up and a
# barrier when run in parallel, tens of microseconds when another process holds a core: a
# 2-layer hidden-64 model decodes 64 sequences in 2.4 ms a step on one thread, 2.1 on two on
# an idle machine, but 2.5 vs 7.9 ms with the other core busy (`worker bench --only
# scheduler`). One sequence of ERNIE-0.3B (16M per layer) or a long context stays parallel.
_PARALLEL_MACS = 1 << 22


class KVCacheConfigError(ValueError):
    """The KV cache cannot be sized or allocated as asked."""


class BatchError(ValueError):
    """An InputBatch violates the runner's limits (token budget, cache slots)."""


def block_bytes(config: ModelConfig, block_size: int, dtype: str) -> int:
    """Bytes of one block across all layers, keys and values."""
    per_layer = config.num_key_value_heads * block_size * config.head_dim * _DTYPE_BYTES[dtype]
    return 2 * config.num_hidden_layers * per_layer


def layer_macs(config: ModelConfig, batch: InputBatch) -> tuple[int, int]:
    """Multiply-adds of one decoder layer for this batch, roughly (a threshold's input):
    (projections, counted as 3 x hidden x (q + kv + intermediate); attention QK + PV)."""
    c = config
    per_token = 3 * c.hidden_size * (c.q_size + c.kv_size + c.intermediate_size)
    query_keys = int(np.dot(np.diff(batch.query_start_loc).astype(np.int64), batch.seq_lens))
    return batch.num_tokens * per_token, 2 * c.q_size * query_keys


def _cpu_available_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _gpu_free_bytes(utilization: float) -> int:  # pragma: no cover - no GPU here
    props = paddle.device.cuda.get_device_properties()
    return int(props.total_memory * utilization) - int(paddle.device.cuda.memory_reserved())


def compute_num_blocks(config: ModelConfig, platform: Platform, block_size: int,
                       kv_cache_memory_bytes: int | None, gpu_memory_utilization: float) -> int:
    if kv_cache_memory_bytes is not None:
        budget = kv_cache_memory_bytes
    elif platform.is_gpu:
        budget = _gpu_free_bytes(gpu_memory_utilization)
    else:
        budget = min(int(_cpu_available_bytes() * _CPU_KV_FRACTION), _CPU_KV_MAX_BYTES)
    blocks = budget // block_bytes(config, block_size, platform.dtype)
    cap = -(-config.max_position_embeddings // block_size) * _MAX_FULL_SEQUENCES
    if blocks < 1:
        raise KVCacheConfigError(
            f"KV cache budget of {budget} bytes holds no block of "
            f"{block_bytes(config, block_size, platform.dtype)} bytes (block_size={block_size})"
        )
    return int(min(blocks, cap))


class ModelRunner:
    def __init__(self, model_dir: str | Path, platform: Platform, block_size: int,
                 num_blocks: int | None, max_num_batched_tokens: int,
                 attention_backend: str | None = None, kv_cache_memory_bytes: int | None = None,
                 gpu_memory_utilization: float = 0.9):
        # block_size and max_num_batched_tokens come validated from EngineArgs.
        self.platform, self.block_size = platform, block_size
        self.max_num_batched_tokens = max_num_batched_tokens
        self.config = ModelConfig.from_pretrained(model_dir)
        self.backend = get_backend(attention_backend, platform)
        weights = load_weights(model_dir, self.config)
        self.model = DecoderForCausalLM(self.config, weights, self.backend, platform.dtype)
        if num_blocks is None:
            num_blocks = compute_num_blocks(self.config, platform, block_size,
                                            kv_cache_memory_bytes, gpu_memory_utilization)
        if num_blocks < 1:
            raise KVCacheConfigError(f"num_blocks={num_blocks} must be positive")
        self.num_blocks = num_blocks
        self.kv_caches = self._allocate_kv_cache()
        # Paddle's CPU thread count, as platform.py set it before import.
        self.max_threads = 1 if platform.is_gpu else int(os.environ.get("OMP_NUM_THREADS", "1").split(",")[0])
        log.info(
            f"total_block_num:{num_blocks} block_size:{block_size} "
            f"cacheable_tokens:{num_blocks * block_size}",
            model_dir=str(model_dir), backend=self.backend.name, device=platform.device,
            dtype=platform.dtype, kv_cache_bytes=num_blocks * block_bytes(self.config, block_size, platform.dtype),
        )

    def _allocate_kv_cache(self) -> list[tuple]:
        c = self.config
        shape = [self.num_blocks, c.num_key_value_heads, self.block_size, c.head_dim]
        return [(paddle.zeros(shape, dtype=self.platform.dtype), paddle.zeros(shape, dtype=self.platform.dtype))
                for _ in range(c.num_hidden_layers)]

    def _check(self, batch: InputBatch) -> None:
        # The batch is built by our own host code: shape mismatches are bugs, not user errors.
        assert batch.query_start_loc.shape == (batch.num_seqs + 1,)
        assert batch.positions.shape == batch.slot_mapping.shape == (batch.num_tokens,)
        assert batch.block_tables.shape[0] == batch.num_seqs
        if batch.num_tokens > self.max_num_batched_tokens:
            raise BatchError(f"batch has {batch.num_tokens} tokens, over max_num_batched_tokens="
                             f"{self.max_num_batched_tokens}")
        if batch.num_tokens and int(batch.slot_mapping.max()) >= self.num_blocks * self.block_size:
            raise BatchError(f"slot {int(batch.slot_mapping.max())} is outside the cache of "
                             f"{self.num_blocks} blocks x {self.block_size}")

    def execute(self, batch: InputBatch) -> np.ndarray:
        """Run one step; returns float32 logits [S + R, V] for batch.logits_indices, in order."""
        self._check(batch)
        if len(batch.logits_indices) == 0 and batch.num_tokens == 0:
            return np.zeros((0, self.config.vocab_size), np.float32)
        threads = self.threads_for(batch)
        if threads != self.max_threads:
            paddle.base.core.set_num_threads(threads)
        try:
            with paddle.no_grad():
                return self._forward(batch)
        finally:  # the rest of the process (other engines, benchmarks) keeps every thread
            if threads != self.max_threads:
                paddle.base.core.set_num_threads(self.max_threads)

    def threads_for(self, batch: InputBatch) -> int:
        """CPU threads for this step: one for a small step, else all (see _PARALLEL_MACS)."""
        return self.max_threads if max(layer_macs(self.config, batch)) >= _PARALLEL_MACS else 1

    def _forward(self, batch: InputBatch) -> np.ndarray:
        attn = AttentionInputs(
            slot_mapping=np.asarray(batch.slot_mapping, np.int64),
            query_start_loc=np.asarray(batch.query_start_loc, np.int32),
            seq_lens=np.asarray(batch.seq_lens, np.int32),
            block_tables=np.asarray(batch.block_tables, np.int32),
        )
        logits = self.model.forward(
            paddle.to_tensor(np.asarray(batch.token_ids, np.int64)),
            np.asarray(batch.positions, np.int64),
            _sample_rows(batch.logits_indices, batch.num_tokens),
            attn, self.kv_caches,
        )
        return logits.numpy()


def _sample_rows(sample_indices: np.ndarray, num_tokens: int):
    """The rows to sample as a tensor, or None when they are every row in order (decode)."""
    if len(sample_indices) == num_tokens and bool((sample_indices == np.arange(num_tokens)).all()):
        return None
    return paddle.to_tensor(np.asarray(sample_indices, np.int64))
