"""The bench's model FLOPs: a mixture-of-experts layer counts the router, the top-k routed
experts and the shared expert a token runs, never the experts it skips; dense layers as before."""

from worker.bench.flops import decoder_params, mlp_params
from worker.models.config import ModelConfig

DENSE = {"architectures": ["Ernie4_5ForCausalLM"], "hidden_size": 1024, "intermediate_size": 3072,
         "num_hidden_layers": 18, "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 128,
         "vocab_size": 103424}
MOE = {**DENSE, "architectures": ["Ernie4_5_MoeForCausalLM"], "moe_num_experts": 8, "moe_k": 2,
       "moe_intermediate_size": 1024, "moe_num_shared_experts": 1, "moe_layer_start_index": 1}


def test_dense_layers_count_their_whole_mlp():
    c = ModelConfig.from_dict(DENSE)
    attention = 1024 * (2048 + 2 * 256) + 2048 * 1024
    assert decoder_params(c) == 18 * (attention + 3 * 1024 * 3072) == 254_803_968


def test_moe_layers_count_router_top_k_and_shared_experts():
    c = ModelConfig.from_dict(MOE)
    assert mlp_params(c, 0) == 3 * 1024 * 3072  # layer 0 is dense (moe_layer_start_index=1)
    assert mlp_params(c, 1) == 1024 * 8 + 3 * 1024 * (2 * 1024 + 1024)
    attention = 1024 * (2048 + 2 * 256) + 2048 * 1024
    assert decoder_params(c) == 18 * attention + 3 * 1024 * 3072 + 17 * mlp_params(c, 1)
    all_experts = 17 * 3 * 1024 * 1024 * (8 + 1)
    assert decoder_params(c) < 18 * attention + 3 * 1024 * 3072 + all_experts
