"""config.json forms of Qwen3, Qwen3-MoE and ERNIE 4.5 MoE, and the refusal of what does not run."""

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


# baidu/ERNIE-4.5-21B-A3B-PT's config.json (the MoE keys and shapes; vocabulary and context as there).
ERNIE_21B_A3B = {
    "architectures": ["Ernie4_5_MoeForCausalLM"], "model_type": "ernie4_5_moe", "hidden_size": 2560,
    "intermediate_size": 12288, "max_position_embeddings": 131072, "moe_intermediate_size": 1536, "moe_k": 6,
    "moe_layer_end_index": 27, "moe_layer_interval": 1, "moe_layer_start_index": 1, "moe_num_experts": 64,
    "moe_num_shared_experts": 2, "num_attention_heads": 20, "num_hidden_layers": 28, "num_key_value_heads": 4,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": True, "use_bias": False,
    "vocab_size": 103424, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
}


def test_ernie_moe_real_config():
    c = ModelConfig.from_dict(ERNIE_21B_A3B)
    assert c.rope_interleaved and not c.qk_norm and c.head_dim == 128 and c.tie_word_embeddings
    m = c.moe
    assert (m.num_experts, m.top_k, m.intermediate_size, m.shared_intermediate_size) == (64, 6, 1536, 3072)
    assert m.sparse_layers == tuple(range(1, 28)) and not c.is_sparse(0)
    assert m.scoring == "softmax" and m.norm_topk_prob and m.correction_bias  # paddleformers' defaults


def test_ernie_moe_layer_pattern():
    c = ModelConfig.from_dict({**ERNIE_21B_A3B, "num_hidden_layers": 8, "moe_layer_start_index": 2,
                               "moe_layer_end_index": 6, "moe_layer_interval": 2})
    assert c.moe.sparse_layers == (3, 5)  # (i + 1) % 2 == 0 and 2 <= i <= 6
    c = ModelConfig.from_dict({**ERNIE_21B_A3B, "num_hidden_layers": 4, "moe_layer_end_index": -1,
                               "moe_num_shared_experts": 0, "scoring_func": "sigmoid", "moe_use_aux_free": False})
    assert c.moe.sparse_layers == (1, 2, 3) and c.moe.shared_intermediate_size == 0
    assert c.moe.scoring == "sigmoid" and not c.moe.correction_bias


def test_ernie_moe_errors_name_the_field():
    with pytest.raises(ValueError, match="moe_num_experts=\\[64, 64\\]: per-modality"):
        ModelConfig.from_dict({**ERNIE_21B_A3B, "moe_num_experts": [64, 64]})
    with pytest.raises(ValueError, match="moe_layer_interval=0"):
        ModelConfig.from_dict({**ERNIE_21B_A3B, "moe_layer_interval": 0})
    with pytest.raises(ValueError, match="top_k=65 exceeds num_experts=64"):
        ModelConfig.from_dict({**ERNIE_21B_A3B, "moe_k": 65})
    with pytest.raises(ValueError, match="scoring"):
        ModelConfig.from_dict({**ERNIE_21B_A3B, "scoring_func": "relu"})
    with pytest.raises(ModelConfigError, match="use_bias=true is not supported"):
        ModelConfig.from_dict({**ERNIE_21B_A3B, "use_bias": True})


def test_ernie_vl_is_refused_by_name(tmp_path):
    raw = json.loads((make_model(tmp_path, "e") / "config.json").read_text())
    with pytest.raises(ModelConfigError, match="Ernie4_5_VLMoeForConditionalGeneration.*is not supported"):
        ModelConfig.from_dict({**raw, "architectures": ["Ernie4_5_VLMoeForConditionalGeneration"]})
