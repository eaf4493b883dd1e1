"""End-to-end engine fixtures: tiny model directories and the paddleformers reference."""

from pathlib import Path

import numpy as np
import pytest

from worker.platform import paddle
from worker.tiny_model import TinyModelSpec, write_tiny_model

# Two random small configurations: grouped-query attention, >= 2 layers, tied embeddings.
CONFIGS = {
    "gqa2-l2": dict(num_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, seed=11),
    "gqa4-l3": dict(num_layers=3, hidden_size=128, num_attention_heads=8, num_key_value_heads=2, seed=23),
}


def random_prompts(seed: int, count: int, lengths: list[int], low: int = 16, high: int = 1000) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(low, high, size=lengths[i % len(lengths)]).tolist() for i in range(count)]


def reference_greedy(model_dir: Path, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """paddleformers' Ernie4_5ForCausalLM.generate, greedy with its KV cache, one prompt at a time."""
    from paddleformers.transformers import Ernie4_5ForCausalLM

    model = Ernie4_5ForCausalLM.from_pretrained(str(model_dir), fuse_rms_norm=False)
    model.eval()
    outputs = []
    with paddle.no_grad():
        for prompt in prompts:
            ids, _ = model.generate(
                input_ids=paddle.to_tensor([prompt]),
                max_new_tokens=max_new_tokens,
                decode_strategy="greedy_search",
                use_cache=True,
                eos_token_id=-1,  # never stop early: compare a fixed number of tokens
            )
            outputs.append(ids[0].tolist())
    return outputs


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e-models")


def model_dir(root: Path, name: str) -> Path:
    path = root / name
    if not (path / "config.json").exists():
        write_tiny_model(path, TinyModelSpec(**CONFIGS[name]))
    return path
