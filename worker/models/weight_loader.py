"""Load safetensors checkpoints into the decoder's fused, [in, out] layout (plain NumPy).

Two on-disk layouts exist for the same model:
- Paddle (`*-Paddle`, ERNIEKit/FastDeploy): names under `ernie.`, linear weights [in, out],
  sometimes already fused (`qkv_proj` as [q | k | v], `up_gate_proj` as [gate | up]).
- PyTorch / Hugging Face (`*-PT`, and what paddleformers 1.2.0's `save_pretrained` writes):
  names under `model.`, linear weights [out, in].
The orientation is detected from tensor shapes (names are only the tie-breaker); q/k/v and
gate/up are fused here, once, so each layer runs two matmuls fewer per step.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from worker.logs import get_logger
from worker.models.config import ModelConfig
from worker.models.moe_weights import MoEWeights, load_moe
from worker.models.safetensors_np import load_numpy

log = get_logger(__name__)

_PREFIXES = ("ernie.", "model.")


class WeightLoadError(ValueError):
    """The checkpoint is missing a tensor, has a wrong shape, or cannot be read."""


@dataclass(frozen=True)
class LayerWeights:
    input_norm: np.ndarray  # [H]
    qkv_weight: np.ndarray  # [H, q + 2kv]
    qkv_bias: np.ndarray | None  # [q + 2kv]
    o_weight: np.ndarray  # [q, H]
    post_norm: np.ndarray  # [H]
    gate_up_weight: np.ndarray | None  # [H, 2I], gate first; None in a MoE layer
    down_weight: np.ndarray | None  # [I, H]
    q_norm: np.ndarray | None = None  # [D], shared by every q head (Qwen3)
    k_norm: np.ndarray | None = None  # [D]
    moe: MoEWeights | None = None


@dataclass(frozen=True)
class ModelWeights:
    embed: np.ndarray  # [V, H]
    layers: list[LayerWeights]
    norm: np.ndarray  # [H]
    lm_head: np.ndarray | None  # [H, V]; None when tied to `embed`
    layout: str  # "paddle" ([in, out]) or "pt" ([out, in]) as found on disk


def checkpoint_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return [model_dir / name for name in sorted(set(weight_map.values()))]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise WeightLoadError(f"{model_dir}: no *.safetensors files (only safetensors are supported)")
    return files


def read_tensors(model_dir: Path) -> dict[str, np.ndarray]:
    """All tensors (memory-mapped; bfloat16 widened), names stripped of `ernie.`/`model.`."""
    tensors: dict[str, np.ndarray] = {}
    for path in checkpoint_files(model_dir):
        try:
            for name, array in load_numpy(path).items():
                tensors[_strip_prefix(name)] = array
        except (OSError, ValueError) as e:
            raise WeightLoadError(f"{path}: cannot read safetensors: {e}") from e
    return tensors


def _strip_prefix(name: str) -> str:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def detect_layout(tensors: dict[str, np.ndarray], config: ModelConfig) -> str:
    """'paddle' if linear weights are [in, out], 'pt' if [out, in], from the first unambiguous one."""
    h, i, kv = config.hidden_size, config.intermediate_size, config.kv_size
    probes = [("layers.0.mlp.down_proj.weight", (i, h)), ("layers.0.self_attn.k_proj.weight", (h, kv)),
              ("layers.0.self_attn.o_proj.weight", (config.q_size, h))]
    for name, in_out in probes:
        shape = tensors.get(name, np.empty(0)).shape
        if in_out[0] != in_out[1] and shape in (in_out, in_out[::-1]):
            return "paddle" if shape == in_out else "pt"
    if "layers.0.self_attn.qkv_proj.weight" in tensors:
        return "paddle"  # fused tensors are a Paddle-layout feature
    return "pt"  # square everywhere: nothing to tell; HF layout is the common case


class _Reader:
    def __init__(self, tensors: dict[str, np.ndarray], layout: str, model_dir: Path):
        self.tensors, self.layout, self.model_dir = tensors, layout, model_dir
        self.used: set[str] = set()

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in self.tensors:
            raise WeightLoadError(f"{self.model_dir}: tensor {name!r} is missing")
        self.used.add(name)
        t = self.tensors[name]
        if t.shape != shape:
            raise WeightLoadError(f"{self.model_dir}: tensor {name!r} has shape {t.shape}, expected {shape}")
        return t

    def linear(self, name: str, n_in: int, n_out: int) -> np.ndarray:
        """A linear weight as [in, out] whatever the layout on disk."""
        if self.layout == "paddle":
            return self.get(name, (n_in, n_out))
        return np.ascontiguousarray(self.get(name, (n_out, n_in)).T)

    def has(self, name: str) -> bool:
        return name in self.tensors


def _load_layer(r: _Reader, c: ModelConfig, idx: int) -> LayerWeights:
    p = f"layers.{idx}."
    h, q, kv, inter = c.hidden_size, c.q_size, c.kv_size, c.intermediate_size
    if r.has(p + "self_attn.qkv_proj.weight"):
        qkv = r.linear(p + "self_attn.qkv_proj.weight", h, q + 2 * kv)
    else:
        parts = [r.linear(p + f"self_attn.{x}_proj.weight", h, n) for x, n in (("q", q), ("k", kv), ("v", kv))]
        qkv = np.concatenate(parts, axis=1)
    bias = None
    if c.qkv_bias:
        bias = np.concatenate([r.get(p + f"self_attn.{x}_proj.bias", (n,)) for x, n in (("q", q), ("k", kv), ("v", kv))])
    gate_up, down, moe = None, None, None
    if c.is_sparse(idx):
        moe = load_moe(r, p + "mlp.", h, c.moe)
    else:
        gate_up, down = _dense_mlp(r, p, h, inter)
    d = c.head_dim
    return LayerWeights(
        input_norm=r.get(p + "input_layernorm.weight", (h,)),
        qkv_weight=qkv,
        qkv_bias=bias,
        o_weight=r.linear(p + "self_attn.o_proj.weight", q, h),
        post_norm=r.get(p + "post_attention_layernorm.weight", (h,)),
        gate_up_weight=gate_up,
        down_weight=down,
        q_norm=r.get(p + "self_attn.q_norm.weight", (d,)) if c.qk_norm else None,
        k_norm=r.get(p + "self_attn.k_norm.weight", (d,)) if c.qk_norm else None,
        moe=moe,
    )


def _dense_mlp(r: _Reader, p: str, h: int, inter: int) -> tuple[np.ndarray, np.ndarray]:
    if r.has(p + "mlp.up_gate_proj.weight"):
        gate_up = r.linear(p + "mlp.up_gate_proj.weight", h, 2 * inter)
    else:
        gate_up = np.concatenate([r.linear(p + f"mlp.{x}_proj.weight", h, inter) for x in ("gate", "up")], axis=1)
    return gate_up, r.linear(p + "mlp.down_proj.weight", inter, h)


def load_weights(model_dir: str | Path, config: ModelConfig) -> ModelWeights:
    model_dir = Path(model_dir)
    tensors = read_tensors(model_dir)
    layout = detect_layout(tensors, config)
    r = _Reader(tensors, layout, model_dir)
    h, v = config.hidden_size, config.vocab_size
    lm_head = None
    if not config.tie_word_embeddings:
        lm_head = r.linear("lm_head.weight", h, v)
    weights = ModelWeights(
        embed=r.get("embed_tokens.weight", (v, h)),
        layers=[_load_layer(r, config, i) for i in range(config.num_hidden_layers)],
        norm=r.get("norm.weight", (h,)),
        lm_head=lm_head,
        layout=layout,
    )
    unused = sorted(tensors.keys() - r.used - {"lm_head.weight"})  # a tied head may still be stored
    log.info("weights_loaded", model_dir=str(model_dir), layout=layout, tensors=len(tensors),
             unused_tensors=len(unused), unused_examples=unused[:5])
    return weights
