"""paddleformers' model for a model directory, by the architecture its config.json names: the
reference our engine is checked against (logits and greedy tokens).

paddleformers 1.2.0 builds Qwen3 and Qwen3-MoE's `*ForCausalLM` through paddlefleet (not
installable here, GPU training stack); its `*ForCausalLMDeprecated` classes are the same
modeling code without it. Their modules import paddlefleet-only names at the top, for paths
never taken on CPU inference: those two imports are given empty stand-ins. Its ERNIE 4.5 MoE
calls three GPU-only Paddle kernels that only move rows about: tests/reference_moe_ops.py gives
them CPU stand-ins.
"""

import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file


def _stub_fleet_imports() -> None:
    if "paddleformers.transformers.gpt_provider" not in sys.modules:
        provider = types.ModuleType("paddleformers.transformers.gpt_provider")
        provider.GPTModelProvider = type("GPTModelProvider", (), {})
        sys.modules[provider.__name__] = provider
    if "paddlefleet_ops" not in sys.modules:
        ops = types.ModuleType("paddlefleet_ops")
        ops.is_deep_ep_available = lambda: False
        sys.modules[ops.__name__] = ops


def reference_class(architecture: str):
    if architecture == "Ernie4_5ForCausalLM":
        from paddleformers.transformers import Ernie4_5ForCausalLM

        return Ernie4_5ForCausalLM
    if architecture == "Ernie4_5_MoeForCausalLM":
        from paddleformers.transformers import Ernie4_5_MoeForCausalLM

        from tests import reference_moe_ops

        reference_moe_ops.install()
        return Ernie4_5_MoeForCausalLM
    _stub_fleet_imports()
    if architecture == "Qwen3ForCausalLM":
        from paddleformers.transformers.qwen3.modeling import Qwen3ForCausalLMDeprecated

        return Qwen3ForCausalLMDeprecated
    if architecture == "Qwen3MoeForCausalLM":
        from paddleformers.transformers.qwen3_moe.modeling import Qwen3MoeForCausalLMDeprecated

        return Qwen3MoeForCausalLMDeprecated
    raise ValueError(f"no paddleformers reference for {architecture}")


def _qwen3_moe_dense_layers_renamed(model_dir: Path) -> Path:
    """paddleformers' Qwen3-MoE loader maps HF names for the routed experts only (real
    checkpoints have no dense layer); a dense layer's MLP must be stored under its own names:
    `mlp.up_gate_proj.weight` = [gate^T | up^T] ([in, out], fused_ffn at one shard), `down_proj`^T.
    A copy of the directory with those names, for the reference only."""
    tensors = load_file(str(model_dir / "model.safetensors"))
    dense = sorted(n[: -len("gate_proj.weight")] for n in tensors if n.endswith(".mlp.gate_proj.weight"))
    if not dense:
        return model_dir
    out = model_dir.parent / f"{model_dir.name}-paddleformers"
    if not out.exists():
        shutil.copytree(model_dir, out)
        for p in dense:
            gate, up = tensors.pop(p + "gate_proj.weight"), tensors.pop(p + "up_proj.weight")
            tensors[p + "up_gate_proj.weight"] = np.ascontiguousarray(np.concatenate([gate.T, up.T], axis=1))
            tensors[p + "down_proj.weight"] = np.ascontiguousarray(tensors[p + "down_proj.weight"].T)
        save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def reference_model(model_dir: Path):
    """The directory's model loaded by paddleformers, in eval mode."""
    model_dir = Path(model_dir)
    arch = json.loads((model_dir / "config.json").read_text())["architectures"][0]
    if arch == "Qwen3MoeForCausalLM":
        model_dir = _qwen3_moe_dense_layers_renamed(model_dir)
    extra = {}
    if arch == "Ernie4_5_MoeForCausalLM":
        # Its MoE layers compute the training losses (load balance, z-loss, orthogonality) even
        # in eval mode, through another GPU-only kernel (int_bincount); with their coefficients
        # 0 they are skipped. They never touch the logits.
        extra = dict(router_aux_loss_coef=0.0, router_z_loss_coef=0.0, moe_orthogonal_loss_lambda=0.0)
    model = reference_class(arch).from_pretrained(str(model_dir), fuse_rms_norm=False, **extra)
    model.eval()
    return model
