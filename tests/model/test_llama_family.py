"""The same decoder runs the Llama/Qwen2 family (NeoX RoPE, q/k/v bias), checked against
paddleformers' LlamaForCausalLM. (paddleformers' Qwen2 needs paddlefleet, which is not
installable here; Qwen2 = Llama with q/k/v biases, so its reference is paddleformers' Llama
with attention_bias=true and an all-zero o_proj bias.)"""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tests.model.conftest import CPU, BlockPool, Seq, build_batch, make_model, rel_err
from worker.engine.model_runner import ModelRunner
from worker.platform import paddle

SPEC = dict(num_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=96, seed=5)
PROMPTS = [[11, 12, 13, 14, 15, 16], [500, 400], [9] * 10]


def write_checkpoint(dst, tensors, config, **overrides):
    dst.mkdir()
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    (dst / "config.json").write_text(json.dumps({**config, **overrides}))
    return dst


def reference(model_dir):
    from paddleformers.transformers.llama.modeling import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(model_dir), fuse_rms_norm=False)
    model.eval()
    with paddle.no_grad():
        return np.concatenate([model(paddle.to_tensor([p]), return_dict=True).logits[0].numpy() for p in PROMPTS])


def ours(model_dir, expect_bias: bool):
    r = ModelRunner(model_dir, CPU, block_size=4, num_blocks=32, max_num_batched_tokens=128)
    assert r.config.qkv_bias == expect_bias and not r.config.rope_interleaved
    return r.execute(build_batch(BlockPool(4), [(Seq(p), len(p)) for p in PROMPTS]))


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    src = make_model(tmp_path_factory.mktemp("family"), "src", **SPEC)
    config = json.loads((src / "config.json").read_text())
    config.update(rope_theta=10000.0, hidden_act="silu")
    return load_file(str(src / "model.safetensors")), config


def test_llama_parity(tmp_path, source):
    tensors, config = source
    model_dir = write_checkpoint(tmp_path / "llama", tensors, config,
                                 architectures=["LlamaForCausalLM"], model_type="llama")
    assert rel_err(ours(model_dir, False), reference(model_dir)) < 1e-4


def test_qwen2_qkv_bias_parity(tmp_path, source):
    tensors, config = dict(source[0]), source[1]
    rng = np.random.default_rng(0)
    for name in [n for n in tensors if n.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight"))]:
        tensors[name.replace(".weight", ".bias")] = rng.standard_normal(tensors[name].shape[0]).astype(np.float32)
    qwen = write_checkpoint(tmp_path / "qwen2", tensors, config,
                            architectures=["Qwen2ForCausalLM"], model_type="qwen2")
    with_o_bias = dict(tensors)
    for i in range(SPEC["num_layers"]):
        with_o_bias[f"model.layers.{i}.self_attn.o_proj.bias"] = np.zeros(SPEC["hidden_size"], np.float32)
    llama = write_checkpoint(tmp_path / "llama_bias", with_o_bias, config, architectures=["LlamaForCausalLM"],
                             model_type="llama", attention_bias=True)
    got, expected = ours(qwen, True), reference(llama)
    assert rel_err(got, expected) < 1e-4
    no_bias = write_checkpoint(tmp_path / "llama_nobias", source[0], config,
                               architectures=["LlamaForCausalLM"], model_type="llama")
    assert rel_err(got, ours(no_bias, False)) > 1e-3  # the biases really enter the result
