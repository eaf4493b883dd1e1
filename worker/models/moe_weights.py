"""The weights of one MoE block, read from a checkpoint into [in, out] NumPy arrays per expert.

On-disk forms, all under `layers.{i}.mlp.` (the `model.`/`ernie.` prefix already stripped):
- router `gate.weight`: [E, H] in HF layout, [H, E] in ERNIE's Paddle layout;
- routed experts one by one, `experts.{e}.{gate,up,down}_proj.weight` (HF), or
  `experts.{e}.up_gate_proj.weight` [H, 2I] with `down_proj` (Paddle, gate first);
- or all experts fused in 3-D tensors (transformers 5's in-memory form, which some checkpoints
  store): `experts.gate_up_proj` [E, 2I, H] and `experts.down_proj` [E, H, I], each expert's
  matrix [out, in] as an nn.Linear weight ([E, H, 2I] / [E, I, H] in the Paddle layout);
- ERNIE's shared expert `shared_experts.*` (either per-matrix form) and its
  `moe_statics.e_score_correction_bias` [1, E] (float32 on disk).
Gate and up are fused per expert here, once, as the dense MLP's are.
"""

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from worker.models.moe_config import MoEConfig


class TensorReader(Protocol):
    """What weight_loader's reader offers (named here to avoid an import cycle)."""

    layout: str

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray: ...

    def linear(self, name: str, n_in: int, n_out: int) -> np.ndarray: ...

    def has(self, name: str) -> bool: ...


@dataclass(frozen=True)
class MoEWeights:
    router: np.ndarray  # [H, E]
    gate_up: list[np.ndarray]  # E x [H, 2I], gate first
    down: list[np.ndarray]  # E x [I, H]
    shared_gate_up: np.ndarray | None = None  # [H, 2Is]
    shared_down: np.ndarray | None = None  # [Is, H]
    correction_bias: np.ndarray | None = None  # [E] float32


def swiglu_weights(r: TensorReader, prefix: str, hidden: int, inter: int) -> tuple[np.ndarray, np.ndarray]:
    """([H, 2I] gate first, [I, H]) of the SwiGLU under prefix, stored fused or as three matrices."""
    if r.has(prefix + "up_gate_proj.weight"):
        gate_up = r.linear(prefix + "up_gate_proj.weight", hidden, 2 * inter)
    else:
        gate_up = np.concatenate([r.linear(prefix + f"{x}_proj.weight", hidden, inter) for x in ("gate", "up")], axis=1)
    return gate_up, r.linear(prefix + "down_proj.weight", inter, hidden)


def _fused_experts(r: TensorReader, prefix: str, hidden: int, moe: MoEConfig) -> tuple[list, list]:
    e, inter = moe.num_experts, moe.intermediate_size
    if r.layout == "paddle":
        gate_up = r.get(prefix + "experts.gate_up_proj", (e, hidden, 2 * inter))
        down = r.get(prefix + "experts.down_proj", (e, inter, hidden))
        return list(gate_up), list(down)
    gate_up = r.get(prefix + "experts.gate_up_proj", (e, 2 * inter, hidden))
    down = r.get(prefix + "experts.down_proj", (e, hidden, inter))
    return [np.ascontiguousarray(m.T) for m in gate_up], [np.ascontiguousarray(m.T) for m in down]


def load_moe(r: TensorReader, prefix: str, hidden: int, moe: MoEConfig) -> MoEWeights:
    """prefix: `layers.{i}.mlp.`."""
    if r.has(prefix + "experts.gate_up_proj"):
        gate_up, down = _fused_experts(r, prefix, hidden, moe)
    else:
        pairs = [swiglu_weights(r, f"{prefix}experts.{e}.", hidden, moe.intermediate_size)
                 for e in range(moe.num_experts)]
        gate_up, down = [p[0] for p in pairs], [p[1] for p in pairs]
    shared_gate_up = shared_down = None
    if moe.shared_intermediate_size:
        shared_gate_up, shared_down = swiglu_weights(r, prefix + "shared_experts.", hidden,
                                                     moe.shared_intermediate_size)
    bias_name = prefix + "moe_statics.e_score_correction_bias"
    bias = None
    if moe.correction_bias and r.has(bias_name):  # absent: no correction (paddleformers' zeros)
        bias = r.get(bias_name, (1, moe.num_experts)).reshape(-1).astype(np.float32)
    return MoEWeights(router=r.linear(prefix + "gate.weight", hidden, moe.num_experts), gate_up=gate_up, down=down,
                      shared_gate_up=shared_gate_up, shared_down=shared_down, correction_bias=bias)
