"""config.json forms of Qwen3 and Qwen3-MoE (HF), and the refusal of what does not run yet."""

import json

import pytest

from tests.model.conftest import make_model
from worker.models.config import ModelConfig, ModelConfigError

QWEN3_MOE = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": 1024,
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 6, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 32, "rope_theta": 1e6, "rms_norm_eps": 1e-6,
    "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "norm_topk_prob": True,
    "decoder_sparse_step": 1, "mlp_only_layers": [], "use_sliding_window": False, "attention_bias": False,
}


def test_qwen3_dense_config(tmp_path):
    c = ModelConfig.from_pretrained(make_model(tmp_path, "q3", family="qwen3", head_dim=32))
    assert c.architecture == "Qwen3ForCausalLM" and c.qk_norm and not c.rope_interleaved
    assert not c.qkv_bias and c.moe is None and c.head_dim == 32


def test_qwen3_moe_layer_pattern():
    c = ModelConfig.from_dict(QWEN3_MOE)
    assert c.qk_norm and c.moe.num_experts == 8 and c.moe.top_k == 2 and c.moe.norm_topk_prob
    assert c.moe.sparse_layers == (0, 1, 2, 3, 4, 5)
    c = ModelConfig.from_dict({**QWEN3_MOE, "decoder_sparse_step": 2, "mlp_only_layers": [3]})
    assert c.moe.sparse_layers == (1, 5) and c.is_sparse(1) and not c.is_sparse(3) and not c.is_sparse(0)
    assert ModelConfig.from_dict({**QWEN3_MOE, "num_experts": 0}).moe is None  # every layer dense


def test_qwen3_moe_errors_name_the_field():
    with pytest.raises(ValueError, match="top_k=9 exceeds num_experts=8"):
        ModelConfig.from_dict({**QWEN3_MOE, "num_experts_per_tok": 9})
    with pytest.raises(ValueError, match="decoder_sparse_step=0"):
        ModelConfig.from_dict({**QWEN3_MOE, "decoder_sparse_step": 0})
    with pytest.raises(ModelConfigError, match="use_sliding_window=true is not supported"):
        ModelConfig.from_dict({**QWEN3_MOE, "use_sliding_window": True})


def test_ernie_moe_is_refused_by_name(tmp_path):
    raw = json.loads((make_model(tmp_path, "e") / "config.json").read_text())
    with pytest.raises(ModelConfigError, match="Ernie4_5_MoeForCausalLM.*is not supported"):
        ModelConfig.from_dict({**raw, "architectures": ["Ernie4_5_MoeForCausalLM"]})
