"""End-to-end engine fixtures: tiny model directories and the paddleformers reference."""

from pathlib import Path

import numpy as np
import pytest

from tests.reference import reference_model
from worker.platform import paddle
from worker.tiny_model import TinyModelSpec, write_tiny_model

# Random small configurations: grouped-query attention, >= 2 layers, tied embeddings (ERNIE 4.5);
# Qwen3 untied; Qwen3-MoE with a dense layer 0 and MoE layers of 4 experts, top-2.
CONFIGS = {
    "gqa2-l2": dict(num_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, seed=11),
    "gqa4-l3": dict(num_layers=3, hidden_size=128, num_attention_heads=8, num_key_value_heads=2, seed=23),
    "qwen3-gqa2-l2": dict(family="qwen3", num_layers=2, hidden_size=64, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=32, tie_word_embeddings=False, seed=31),
    "qwen3moe-gqa2-l3": dict(family="qwen3_moe", num_layers=3, hidden_size=64, num_attention_heads=4,
                             num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                             moe_intermediate_size=48, seed=37),
    "erniemoe-gqa2-l3": dict(family="ernie4_5_moe", num_layers=3, hidden_size=64, num_attention_heads=4,
                             num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                             moe_intermediate_size=48, tie_word_embeddings=False, seed=41),
}


def random_prompts(seed: int, count: int, lengths: list[int], low: int = 16, high: int = 1000) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(low, high, size=lengths[i % len(lengths)]).tolist() for i in range(count)]


def reference_greedy(model_dir: Path, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """paddleformers' generate (tests/reference.py's model for the architecture), greedy with its
    KV cache, one prompt at a time."""
    model = reference_model(model_dir)
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
def tiny_dir(tmp_path_factory) -> Path:
    """The bundled tiny model (`worker make-tiny-model`'s default)."""
    return write_tiny_model(tmp_path_factory.mktemp("bundled") / "tiny", TinyModelSpec())


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e-models")


def model_dir(root: Path, name: str) -> Path:
    path = root / name
    if not (path / "config.json").exists():
        write_tiny_model(path, TinyModelSpec(**CONFIGS[name]))
    return path
