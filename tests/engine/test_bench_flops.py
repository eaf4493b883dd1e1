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


def test_generate_flops_equal_the_engine_steps_they_stand_for(tmp_path):
    """The peers are credited with dense_generate_flops; our engine counts its real steps. They
    must agree, and on a shared-prefix workload with caching on the prefix counts once."""
    from worker.bench.engine_run import make_engine, run_workload
    from worker.bench.flops import dense_generate_flops
    from worker.bench.models import model_dir
    from worker.bench.workloads import QUICK_BIG, Workload

    model = model_dir(tmp_path, QUICK_BIG)
    config = ModelConfig.from_pretrained(model)
    engine, recorder = make_engine(str(model), prefix_caching=True, max_model_len=256)
    for w in (Workload(name="plain", num_requests=3, prompt_len=20, output_len=4),
              Workload(name="shared", num_requests=4, shared_prefix_len=128, prompt_len=8, output_len=3)):
        result = run_workload(engine, recorder, w)
        assert result.cached_tokens == (w.num_requests - 1) * w.shared_prefix_len
        assert result.model_flops == dense_generate_flops(config, w.total_prompt_len, w.output_len,
                                                          w.num_requests, w.shared_prefix_len), w.name
