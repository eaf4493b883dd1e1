"""Our decoder + paged cache against paddleformers' model of the same directory: ERNIE 4.5,
Qwen3 (per-head q/k norm), Qwen3-MoE and ERNIE 4.5 MoE (a dense layer, then MoE layers of 4+
experts, top-2; ERNIE's with a shared expert and a score correction bias)."""

import numpy as np
import pytest

from tests.model.conftest import CPU, BlockPool, Seq, build_batch, make_model, reference_logits, rel_err
from worker.engine.model_runner import ModelRunner

TOL = 1e-4
# Random small configurations: GQA ratios, >= 2 layers, tied embeddings, head_dim != hidden/heads.
CONFIGS = {
    "gqa2": dict(num_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, seed=1),
    "gqa3_hd8": dict(num_layers=3, hidden_size=48, num_attention_heads=6, num_key_value_heads=2,
                     head_dim=8, intermediate_size=96, seed=2),
    "mqa_hd24": dict(num_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=1,
                     head_dim=24, intermediate_size=64, seed=3, vocab_size=1500),
    "qwen3_gqa3_hd16": dict(family="qwen3", num_layers=2, hidden_size=48, num_attention_heads=6,
                            num_key_value_heads=2, head_dim=16, intermediate_size=96, seed=4),
    "qwen3moe_e6_top2": dict(family="qwen3_moe", num_layers=3, hidden_size=48, num_attention_heads=6,
                             num_key_value_heads=2, head_dim=8, num_experts=6, num_experts_per_tok=2,
                             moe_intermediate_size=40, tie_word_embeddings=False, seed=6),
    # decoder_sparse_step=2: layers 1 and 3 sparse; top-3 without renormalisation.
    "qwen3moe_step2_top3": dict(family="qwen3_moe", num_layers=4, hidden_size=32, num_attention_heads=4,
                                num_key_value_heads=2, num_experts=5, num_experts_per_tok=3,
                                norm_topk_prob=False, decoder_sparse_step=2, mlp_only_layers=(),
                                moe_intermediate_size=24, seed=7),
    # Layer 0 dense, 1 and 2 MoE; one shared expert; a random e_score_correction_bias.
    "erniemoe_e6_top2": dict(family="ernie4_5_moe", num_layers=3, hidden_size=48, num_attention_heads=6,
                             num_key_value_heads=2, head_dim=8, num_experts=6, num_experts_per_tok=2,
                             moe_intermediate_size=40, tie_word_embeddings=False, seed=8),
    # moe_layer_interval=2: layers 1 and 3 sparse; two shared experts (one SwiGLU twice as wide).
    "erniemoe_interval2_shared2": dict(family="ernie4_5_moe", num_layers=4, hidden_size=32, num_attention_heads=4,
                                       num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                                       moe_layer_interval=2, moe_num_shared_experts=2, moe_intermediate_size=24,
                                       seed=9),
    # Sigmoid scoring (scoring_func), top-3 of 5.
    "erniemoe_sigmoid_top3": dict(family="ernie4_5_moe", num_layers=2, hidden_size=32, num_attention_heads=4,
                                  num_key_value_heads=1, num_experts=5, num_experts_per_tok=3,
                                  moe_scoring="sigmoid", moe_intermediate_size=24, seed=10),
}


def prompts_for(seed: int, vocab: int = 1024) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(3, vocab, size=n).tolist() for n in (1, 5, 9, 17, 30)]


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def case(request, tmp_path_factory):
    spec = CONFIGS[request.param]
    model_dir = make_model(tmp_path_factory.mktemp("parity"), request.param, **spec)
    prompts = prompts_for(spec["seed"])
    return model_dir, prompts, reference_logits(model_dir, prompts)


def runner(model_dir, backend=None, block_size=4, num_blocks=64):
    return ModelRunner(model_dir, CPU, block_size=block_size, num_blocks=num_blocks,
                       max_num_batched_tokens=512, attention_backend=backend)


# None: the platform's default backend (the fast CPU op when it builds); reference: the oracle.
BACKENDS = [None, "reference"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefill_flat_batch_matches_reference(case, backend):
    model_dir, prompts, ref = case
    pool, seqs = BlockPool(4), [Seq(p) for p in prompts]
    logits = runner(model_dir, backend).execute(build_batch(pool, [(s, len(s.tokens)) for s in seqs]))
    assert rel_err(logits, np.concatenate(ref)) < TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunked_prefill_and_decode_match_reference(case, backend):
    model_dir, prompts, ref = case
    r, pool = runner(model_dir, backend), BlockPool(4)
    seqs = [Seq(p) for p in prompts]
    got = [[] for _ in seqs]
    # Each step computes up to `chunk` new tokens per unfinished sequence, crossing blocks.
    for chunk in (3, 6, 1, 1, 7, 100):
        work = [(s, min(chunk, len(s.tokens) - s.num_computed)) for s in seqs]
        work = [(s, n) for s, n in work if n > 0]
        if not work:
            break
        logits = r.execute(build_batch(pool, work))
        rows = np.cumsum([0] + [n for _, n in work])
        for (s, _), a, b in zip(work, rows[:-1], rows[1:]):
            got[seqs.index(s)].append(logits[a:b])
    for g, expected in zip(got, ref):
        assert rel_err(np.concatenate(g), expected) < TOL


@pytest.mark.parametrize("backend", BACKENDS)
def test_prefix_already_in_cache_matches_reference(case, backend):
    model_dir, prompts, _ = case
    prefix = prompts[-1][:12]  # three full blocks of 4
    first, second = prefix + [7, 8, 9], prefix + [10, 11, 12, 13, 14]
    ref_second = reference_logits(model_dir, [second])[0]
    r, pool = runner(model_dir, backend), BlockPool(4)
    a = Seq(first)
    r.execute(build_batch(pool, [(a, len(first))]))
    b = Seq(second, blocks=list(a.blocks[:3]), num_computed=12)  # shares the cached blocks
    logits = r.execute(build_batch(pool, [(b, len(second) - 12)]))
    assert rel_err(logits, ref_second[12:]) < TOL


def test_chunk_without_sampled_rows_still_fills_the_cache(case):
    model_dir, prompts, ref = case
    r, pool, seq = runner(model_dir), BlockPool(4), Seq(prompts[-1])
    first = build_batch(pool, [(seq, 10)])
    out = r.execute(type(first)(**{**first.__dict__, "sample_indices": np.zeros(0, np.int64)}))
    assert out.shape == (0, ref[-1].shape[-1])
    rest = r.execute(build_batch(pool, [(seq, len(seq.tokens) - 10)]))
    assert rel_err(rest, ref[-1][10:]) < TOL


def test_only_sampled_rows_are_returned(case):
    model_dir, prompts, ref = case
    pool, seqs = BlockPool(4), [Seq(p) for p in prompts[:3]]
    batch = build_batch(pool, [(s, len(s.tokens)) for s in seqs])
    last = np.cumsum([len(p) for p in prompts[:3]]) - 1
    batch = type(batch)(**{**batch.__dict__, "sample_indices": last.astype(np.int64)})
    logits = runner(model_dir).execute(batch)
    assert logits.shape == (3, ref[0].shape[-1]) and logits.dtype == np.float32
    assert rel_err(logits, np.stack([r[-1] for r in ref[:3]])) < TOL


# The same random MoE weights stored in each on-disk form the loader reads: HF per-expert names,
# transformers 5's fused 3-D expert tensors, ERNIE's Paddle layout (ernie.*, [in, out], up_gate_proj).
LAYOUTS = {
    "erniemoe-paddle": ("erniemoe_e6_top2", dict(layout="paddle")),
    "erniemoe-fused": ("erniemoe_e6_top2", dict(fused_experts=True)),
    "qwen3moe-fused": ("qwen3moe_e6_top2", dict(fused_experts=True)),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_moe_on_disk_layouts_match_reference(tmp_path, name):
    base, variant = LAYOUTS[name]
    spec = CONFIGS[base]
    reference_dir = make_model(tmp_path, "hf", **spec)  # paddleformers reads the HF per-expert form
    prompts = prompts_for(spec["seed"])
    ref = reference_logits(reference_dir, prompts)
    model_dir = make_model(tmp_path, name, **spec, **variant)
    pool, seqs = BlockPool(4), [Seq(p) for p in prompts]
    logits = runner(model_dir).execute(build_batch(pool, [(s, len(s.tokens)) for s in seqs]))
    assert rel_err(logits, np.concatenate(ref)) < TOL
