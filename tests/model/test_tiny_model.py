"""`worker make-tiny-model`: deterministic bytes, the real ERNIE 4.5 file set and keys."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from safetensors.numpy import load_file

from worker.tiny_model import TinyModelSpec

FILES = ["added_tokens.json", "config.json", "generation_config.json", "model.safetensors",
         "special_tokens_map.json", "tokenizer.model", "tokenizer_config.json"]


def make(out: Path, *args: str) -> None:
    worker = Path(sys.executable).parent / "worker"  # the installed console script
    subprocess.run([str(worker), "make-tiny-model", str(out), *args], check=True, capture_output=True)


def test_twice_gives_identical_bytes(tmp_path):
    make(tmp_path / "a")
    make(tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == FILES
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    make(tmp_path / "c", "--seed", "1")
    assert (tmp_path / "c" / "model.safetensors").read_bytes() != (tmp_path / "a" / "model.safetensors").read_bytes()


def test_real_config_keys_and_size_options(tmp_path):
    out = tmp_path / "m"
    make(out, "--num-layers", "3", "--hidden-size", "96", "--num-attention-heads", "6",
         "--num-key-value-heads", "3", "--vocab-size", "3000", "--intermediate-size", "200")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["Ernie4_5ForCausalLM"] and cfg["model_type"] == "ernie4_5"
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["head_dim"], cfg["vocab_size"]) == (3, 96, 16, 3000)
    assert cfg["tie_word_embeddings"] is True and cfg["use_bias"] is False
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (1, 2, 0)
    tensors = load_file(str(out / "model.safetensors"))
    assert tensors["model.embed_tokens.weight"].shape == (3000, 96)  # rows past the spm vocab: unused
    assert tensors["model.layers.2.self_attn.k_proj.weight"].shape == (48, 96)  # HF [out, in]
    assert "lm_head.weight" not in tensors
    tok = json.loads((out / "tokenizer_config.json").read_text())
    assert tok["cls_token"] == "<|begin_of_sentence|>" and tok["sep_token"] == "<|end_of_sentence|>"
    assert "User: " in tok["chat_template"] and tok["add_bos_token"] is False
    assert (out / "model.safetensors").stat().st_mode & 0o044 == 0o044  # readable by other uids


def test_paddle_layout_option(tmp_path):
    make(tmp_path / "p", "--layout", "paddle", "--untied")
    tensors = load_file(str(tmp_path / "p" / "model.safetensors"))
    assert tensors["ernie.layers.0.self_attn.k_proj.weight"].shape == (64, 32)  # [in, out]
    assert tensors["lm_head.weight"].shape == (64, 1024)


def test_invalid_spec_names_the_field():
    with pytest.raises(ValidationError, match="num_attention_heads must be a multiple"):
        TinyModelSpec(num_attention_heads=4, num_key_value_heads=3)
    with pytest.raises(ValidationError, match="vocab_size"):
        TinyModelSpec(vocab_size=100)


def test_qwen3_families_real_config_keys_and_names(tmp_path):
    make(tmp_path / "q3", "--family", "qwen3", "--head-dim", "32")
    cfg = json.loads((tmp_path / "q3" / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3ForCausalLM"] and cfg["model_type"] == "qwen3"
    assert cfg["head_dim"] == 32 and cfg["use_sliding_window"] is False and "use_bias" not in cfg
    tensors = load_file(str(tmp_path / "q3" / "model.safetensors"))
    assert tensors["model.layers.1.self_attn.q_norm.weight"].shape == (32,)
    assert tensors["model.layers.1.self_attn.k_norm.weight"].shape == (32,)
    make(tmp_path / "moe", "--family", "qwen3_moe", "--num-layers", "3", "--num-experts", "6",
         "--num-experts-per-tok", "3", "--moe-intermediate-size", "24")
    cfg = json.loads((tmp_path / "moe" / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen3MoeForCausalLM"] and cfg["mlp_only_layers"] == [0]
    assert (cfg["num_experts"], cfg["num_experts_per_tok"], cfg["moe_intermediate_size"]) == (6, 3, 24)
    tensors = load_file(str(tmp_path / "moe" / "model.safetensors"))
    assert tensors["model.layers.0.mlp.down_proj.weight"].shape == (64, 128)  # the dense layer
    assert tensors["model.layers.2.mlp.gate.weight"].shape == (6, 64)  # router, HF [E, H]
    assert tensors["model.layers.2.mlp.experts.5.down_proj.weight"].shape == (64, 24)
    assert "model.layers.1.mlp.down_proj.weight" not in tensors


def test_paddle_layout_is_ernie_only():
    with pytest.raises(ValidationError, match="only for the ERNIE families"):
        TinyModelSpec(family="qwen3", layout="paddle")
    with pytest.raises(ValidationError, match="fused_experts exists only for a MoE family in the pt layout"):
        TinyModelSpec(family="ernie4_5_moe", layout="paddle", fused_experts=True)
    assert TinyModelSpec(family="ernie4_5_moe", layout="paddle").layout == "paddle"
