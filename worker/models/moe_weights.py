"""The weights of one MoE block, read from a checkpoint into [in, out] NumPy arrays per expert.

Hugging Face names (Qwen3-MoE): `mlp.gate.weight` [E, H] (the router), and per expert
`mlp.experts.{e}.{gate,up,down}_proj.weight`. Gate and up are fused per expert here, once,
as the dense MLP's are.
"""

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from worker.models.moe_config import MoEConfig


class TensorReader(Protocol):
    """What weight_loader's reader offers (named here to avoid an import cycle)."""

    def linear(self, name: str, n_in: int, n_out: int) -> np.ndarray: ...


@dataclass(frozen=True)
class MoEWeights:
    router: np.ndarray  # [H, E]
    gate_up: list[np.ndarray]  # E x [H, 2I], gate first
    down: list[np.ndarray]  # E x [I, H]


def load_moe(r: TensorReader, prefix: str, hidden: int, moe: MoEConfig) -> MoEWeights:
    """prefix: `layers.{i}.mlp.`."""
    inter = moe.intermediate_size
    gate_up, down = [], []
    for e in range(moe.num_experts):
        p = f"{prefix}experts.{e}."
        parts = [r.linear(p + f"{x}_proj.weight", hidden, inter) for x in ("gate", "up")]
        gate_up.append(np.concatenate(parts, axis=1))
        down.append(r.linear(p + "down_proj.weight", inter, hidden))
    return MoEWeights(router=r.linear(prefix + "gate.weight", hidden, moe.num_experts), gate_up=gate_up, down=down)
