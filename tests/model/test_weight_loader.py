"""Every on-disk layout loads into the same decoder and gives the reference logits."""

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tests.model.conftest import CPU, BlockPool, Seq, build_batch, make_model, reference_logits, rel_err
from worker.engine.model_runner import ModelRunner
from worker.models.config import ModelConfig, ModelConfigError
from worker.models.weight_loader import WeightLoadError, load_weights

SPEC = dict(num_layers=2, hidden_size=48, num_attention_heads=6, num_key_value_heads=3, head_dim=8,
            intermediate_size=80, seed=11)
PROMPTS = [[5, 6, 7, 8, 9, 10, 11], [300, 200, 100], [42] * 11]


def run(model_dir) -> np.ndarray:
    r = ModelRunner(model_dir, CPU, block_size=4, num_blocks=32, max_num_batched_tokens=256)
    pool = BlockPool(4)
    return r.execute(build_batch(pool, [(Seq(p), len(p)) for p in PROMPTS]))


@pytest.fixture(scope="module")
def pt_dir(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("layouts"), "pt", **SPEC)


@pytest.fixture(scope="module")
def expected(pt_dir):
    return np.concatenate(reference_logits(pt_dir, PROMPTS))


def test_pt_layout_matches_reference(pt_dir, expected):
    assert load_weights(pt_dir, ModelConfig.from_pretrained(pt_dir)).layout == "pt"
    assert rel_err(run(pt_dir), expected) < 1e-4


def test_paddleformers_save_pretrained_checkpoint(pt_dir, expected, tmp_path):
    from paddleformers.transformers import Ernie4_5ForCausalLM

    model = Ernie4_5ForCausalLM.from_pretrained(str(pt_dir), fuse_rms_norm=False)
    out = tmp_path / "saved"
    model.save_pretrained(str(out))
    assert (out / "model.safetensors.index.json").exists()  # 1.2.0 writes a sharded layout
    assert rel_err(run(out), expected) < 1e-4


def test_paddle_layout_same_weights(tmp_path, expected):
    paddle_dir = make_model(tmp_path, "paddle", layout="paddle", **SPEC)
    tensors = load_file(str(paddle_dir / "model.safetensors"))
    assert "ernie.layers.0.self_attn.k_proj.weight" in tensors
    assert tensors["ernie.layers.0.mlp.down_proj.weight"].shape == (80, 48)  # [in, out]
    assert load_weights(paddle_dir, ModelConfig.from_pretrained(paddle_dir)).layout == "paddle"
    assert rel_err(run(paddle_dir), expected) < 1e-4


def test_fused_paddle_layout(tmp_path, expected):
    src = make_model(tmp_path, "paddle", layout="paddle", **SPEC)
    t = load_file(str(src / "model.safetensors"))
    for i in range(SPEC["num_layers"]):
        p = f"ernie.layers.{i}."
        t[p + "self_attn.qkv_proj.weight"] = np.concatenate(
            [t.pop(p + f"self_attn.{x}_proj.weight") for x in "qkv"], axis=1)
        t[p + "mlp.up_gate_proj.weight"] = np.concatenate(
            [t.pop(p + f"mlp.{x}_proj.weight") for x in ("gate", "up")], axis=1)
    save_file(t, str(src / "model.safetensors"))
    assert rel_err(run(src), expected) < 1e-4


def test_sharded_index(tmp_path, pt_dir, expected):
    out = tmp_path / "sharded"
    shutil.copytree(pt_dir, out)
    t = load_file(str(out / "model.safetensors"))
    (out / "model.safetensors").unlink()
    names = sorted(t)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for file, keys in shards.items():
        save_file({k: t[k] for k in keys}, str(out / file))
        weight_map.update({k: file for k in keys})
    (out / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert rel_err(run(out), expected) < 1e-4


def test_untied_lm_head_in_both_layouts(tmp_path):
    pt = make_model(tmp_path, "pt_untied", tie_word_embeddings=False, **SPEC)
    pd = make_model(tmp_path, "pd_untied", tie_word_embeddings=False, layout="paddle", **SPEC)
    a, b = run(pt), run(pd)
    assert rel_err(a, b) < 1e-6
    tied = run(make_model(tmp_path, "tied", **SPEC))
    assert rel_err(a, tied) > 1e-2  # the separate head is really used


def test_missing_and_misshapen_tensors_are_named(tmp_path, pt_dir):
    out = tmp_path / "broken"
    shutil.copytree(pt_dir, out)
    t = load_file(str(out / "model.safetensors"))
    del t["model.layers.1.mlp.up_proj.weight"]
    save_file(t, str(out / "model.safetensors"))
    config = ModelConfig.from_pretrained(out)
    with pytest.raises(WeightLoadError, match="layers.1.mlp.up_proj.weight' is missing"):
        list(load_weights(out, config).layers())  # tensors are read as the decoder asks
    t["model.layers.1.mlp.up_proj.weight"] = np.zeros((80, 47), np.float32)
    save_file(t, str(out / "model.safetensors"))
    with pytest.raises(WeightLoadError, match=r"up_proj.weight' has shape \(80, 47\)"):
        list(load_weights(out, config).layers())
    (out / "model.safetensors").unlink()
    with pytest.raises(WeightLoadError, match="no \\*.safetensors"):
        load_weights(out, config)


def test_config_families_and_errors(pt_dir):
    raw = json.loads((pt_dir / "config.json").read_text())
    ernie = ModelConfig.from_dict(raw)
    assert ernie.rope_interleaved and not ernie.qkv_bias and ernie.tie_word_embeddings
    assert ernie.head_dim == 8 and ernie.q_size == 48 and ernie.kv_size == 24
    remote_code = ModelConfig.from_dict({**raw, "architectures": ["Ernie4_5_ForCausalLM"], "rope_scaling": None})
    assert remote_code.rope_interleaved and remote_code.architecture == "Ernie4_5_ForCausalLM"
    qwen = ModelConfig.from_dict({**raw, "architectures": ["Qwen2ForCausalLM"], "head_dim": None})
    assert qwen.qkv_bias and not qwen.rope_interleaved and qwen.head_dim == 48 // 6
    llama = ModelConfig.from_dict({**raw, "architectures": ["LlamaForCausalLM"]})
    assert not llama.qkv_bias and not llama.rope_interleaved
    with pytest.raises(ModelConfigError, match="attention_bias=true is not supported"):
        ModelConfig.from_dict({**raw, "architectures": ["LlamaForCausalLM"], "attention_bias": True})
    with pytest.raises(ModelConfigError, match="not supported"):
        ModelConfig.from_dict({**raw, "architectures": ["GPT2LMHeadModel"]})
    with pytest.raises(ModelConfigError, match="rope_type='yarn'"):
        ModelConfig.from_dict({**raw, "rope_scaling": {"rope_type": "yarn", "factor": 4}})
    with pytest.raises(ValueError, match="multiple of num_key_value_heads"):
        ModelConfig.from_dict({**raw, "num_key_value_heads": 4})


def test_bfloat16_checkpoint_loads_like_its_float32_widening(tmp_path, pt_dir):
    """Real checkpoints are bfloat16; written here by safetensors' own paddle writer."""
    from safetensors.paddle import save_file as save_paddle

    from worker.platform import paddle

    t = load_file(str(pt_dir / "model.safetensors"))
    bf16 = {k: paddle.to_tensor(v).astype("bfloat16") for k, v in t.items()}
    widened = {k: v.astype("float32").numpy() for k, v in bf16.items()}
    a, b = tmp_path / "bf16", tmp_path / "f32"
    for d in (a, b):
        shutil.copytree(pt_dir, d)
    save_paddle(bf16, str(a / "model.safetensors"))
    save_file(widened, str(b / "model.safetensors"))
    np.testing.assert_array_equal(run(a), run(b))
    assert rel_err(widened["model.norm.weight"], t["model.norm.weight"]) > 0  # really rounded


def test_corrupt_safetensors_is_a_typed_error(tmp_path, pt_dir):
    out = tmp_path / "corrupt"
    shutil.copytree(pt_dir, out)
    (out / "model.safetensors").write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{nope")
    with pytest.raises(WeightLoadError, match="header is not JSON"):
        load_weights(out, ModelConfig.from_pretrained(out))


def test_the_report_names_only_tensors_the_model_never_read(tmp_path, pt_dir):
    from structlog.testing import capture_logs

    out = tmp_path / "extra"
    shutil.copytree(pt_dir, out)
    t = load_file(str(out / "model.safetensors"))
    t["model.layers.0.stray.weight"] = np.zeros(3, np.float32)
    save_file(t, str(out / "model.safetensors"))
    # the decoder reads the final norm and head after the layers: they are used, not stray
    for model_dir, unused in ((pt_dir, []), (out, ["layers.0.stray.weight"])):
        with capture_logs() as logs:
            run(model_dir)
        (report,) = [e for e in logs if e["event"] == "weights_loaded"]
        assert report["unused_examples"] == unused, report
