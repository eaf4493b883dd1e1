"""Load safetensors checkpoints into the decoder's fused, [in, out] layout (plain NumPy).

Two on-disk layouts exist for the same model:
- Paddle (`*-Paddle`, ERNIEKit/FastDeploy): names under `ernie.`, linear weights [in, out],
  sometimes already fused (`qkv_proj` as [q | k | v], `up_gate_proj` as [gate | up]).
- PyTorch / Hugging Face (`*-PT`, and what paddleformers 1.2.0's `save_pretrained` writes):
  names under `model.`, linear weights [out, in].
The orientation is detected from tensor shapes (names are only the tie-breaker); q/k/v and
gate/up are fused here, once, so each layer runs two matmuls fewer per step.
Tensors are read one at a time, when asked for, and layers come out one by one (a generator)
so the decoder turns each into device tensors before the next is read: host memory while
loading stays near the loaded weights plus one layer, whatever the checkpoint's size
(tests/model/test_load_memory.py measures it).
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from worker.logs import get_logger
from worker.models.config import ModelConfig
from worker.models.moe_weights import MoEWeights, load_moe, swiglu_weights
from worker.models.safetensors_np import SafetensorsFile

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


def checkpoint_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        return [model_dir / name for name in sorted(set(weight_map.values()))]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise WeightLoadError(f"{model_dir}: no *.safetensors files (only safetensors are supported)")
    return files


def read_index(model_dir: Path) -> dict[str, tuple[SafetensorsFile, str]]:
    """Every tensor's file and stored name, by its name stripped of `ernie.`/`model.` (headers only)."""
    index: dict[str, tuple[SafetensorsFile, str]] = {}
    for path in checkpoint_files(model_dir):
        try:
            f = SafetensorsFile(path)
        except (OSError, ValueError) as e:
            raise WeightLoadError(f"{path}: cannot read safetensors: {e}") from e
        index.update((_strip_prefix(name), (f, name)) for name in f.header)
    return index


def _strip_prefix(name: str) -> str:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def detect_layout(shapes: dict[str, tuple[int, ...]], config: ModelConfig) -> str:
    """'paddle' if linear weights are [in, out], 'pt' if [out, in], from the first unambiguous one."""
    h, i, kv = config.hidden_size, config.intermediate_size, config.kv_size
    probes = [("layers.0.mlp.down_proj.weight", (i, h)), ("layers.0.self_attn.k_proj.weight", (h, kv)),
              ("layers.0.self_attn.o_proj.weight", (config.q_size, h))]
    for name, in_out in probes:
        shape = shapes.get(name, ())
        if in_out[0] != in_out[1] and shape in (in_out, in_out[::-1]):
            return "paddle" if shape == in_out else "pt"
    if "layers.0.self_attn.qkv_proj.weight" in shapes:
        return "paddle"  # fused tensors are a Paddle-layout feature
    return "pt"  # square everywhere: nothing to tell; HF layout is the common case


class _Reader:
    def __init__(self, index: dict[str, tuple[SafetensorsFile, str]], layout: str, model_dir: Path):
        self.index, self.layout, self.model_dir = index, layout, model_dir
        self.used: set[str] = set()

    def get(self, name: str, shape: tuple[int, ...], transpose: bool = False) -> np.ndarray:
        if name not in self.index:
            raise WeightLoadError(f"{self.model_dir}: tensor {name!r} is missing")
        self.used.add(name)
        f, stored = self.index[name]
        if f.shape(stored) != shape:
            raise WeightLoadError(f"{self.model_dir}: tensor {name!r} has shape {f.shape(stored)}, expected {shape}")
        try:
            return f.read(stored, transpose=transpose)
        except (OSError, ValueError) as e:
            raise WeightLoadError(f"{f.path}: cannot read tensor {stored!r}: {e}") from e

    def linear(self, name: str, n_in: int, n_out: int) -> np.ndarray:
        """A linear weight as [in, out] whatever the layout on disk."""
        if self.layout == "paddle":
            return self.get(name, (n_in, n_out))
        return self.get(name, (n_out, n_in), transpose=True)

    def has(self, name: str) -> bool:
        return name in self.index


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
        parts = (("q", q), ("k", kv), ("v", kv))
        bias = np.concatenate([r.get(p + f"self_attn.{x}_proj.bias", (n,)) for x, n in parts])
    gate_up, down, moe = None, None, None
    if c.is_sparse(idx):
        moe = load_moe(r, p + "mlp.", h, c.moe)
    else:
        gate_up, down = swiglu_weights(r, p + "mlp.", h, inter)
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


class ModelWeights:
    """The checkpoint in the decoder's layout, read as asked: each call reads its tensors anew,
    so the caller converts one part and drops it before the next is read."""

    def __init__(self, reader: "_Reader", config: ModelConfig):
        self._r, self._c = reader, config
        self.layout = reader.layout  # "paddle" ([in, out]) or "pt" ([out, in]) as found on disk

    def embed(self) -> np.ndarray:  # [V, H]
        return self._r.get("embed_tokens.weight", (self._c.vocab_size, self._c.hidden_size))

    def norm(self) -> np.ndarray:  # [H]
        return self._r.get("norm.weight", (self._c.hidden_size,))

    def lm_head(self) -> np.ndarray | None:  # [H, V]; None when tied to `embed`
        if self._c.tie_word_embeddings:
            return None
        return self._r.linear("lm_head.weight", self._c.hidden_size, self._c.vocab_size)

    def layers(self) -> Iterator[LayerWeights]:
        for i in range(self._c.num_hidden_layers):
            yield _load_layer(self._r, self._c, i)

    def report(self) -> None:
        """Once every part was read: what the checkpoint holds that the model did not use."""
        r = self._r
        unused = sorted(r.index.keys() - r.used - {"lm_head.weight"})  # a tied head may still be stored
        log.info("weights_loaded", model_dir=str(r.model_dir), layout=r.layout, tensors=len(r.index),
                 unused_tensors=len(unused), unused_examples=unused[:5])


def load_weights(model_dir: str | Path, config: ModelConfig) -> ModelWeights:
    """The checkpoint's index (headers only); tensors are read when ModelWeights is asked."""
    model_dir = Path(model_dir)
    index = read_index(model_dir)
    layout = detect_layout({name: f.shape(stored) for name, (f, stored) in index.items()}, config)
    return ModelWeights(_Reader(index, layout, model_dir), config)
