"""Shared pieces of the model tests: tiny model directories, the paddleformers reference,
and a hand-made flat batch builder (the real scheduler lives elsewhere and is tested there)."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.reference import reference_model
from worker.engine.input_batch import InputBatch
from worker.platform import Platform, paddle
from worker.tiny_model import TinyModelSpec, write_tiny_model

CPU = Platform(device="cpu", dtype="float32")


def make_model(root: Path, name: str, **spec) -> Path:
    return write_tiny_model(root / name, TinyModelSpec(**spec))


def reference_logits(model_dir: Path, prompts: list[list[int]]) -> list[np.ndarray]:
    """paddleformers' logits [L, V] for each prompt (run one by one), from the model class of
    the directory's architecture (tests/reference.py)."""
    model = reference_model(model_dir)
    with paddle.no_grad():
        return [model(paddle.to_tensor([p]), return_dict=True).logits[0].numpy() for p in prompts]


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@dataclass
class Seq:
    tokens: list[int]
    blocks: list[int] = field(default_factory=list)
    num_computed: int = 0


@dataclass
class BlockPool:
    block_size: int
    next_block: int = 1  # block 0 stays unused so a zero-padded table entry is never live

    def ensure(self, seq: Seq, length: int) -> None:
        while len(seq.blocks) * self.block_size < length:
            seq.blocks.append(self.next_block)
            self.next_block += 1


def build_batch(pool: BlockPool, work: list[tuple[Seq, int]]) -> InputBatch:
    """work: (sequence, number of new tokens to compute). Samples every computed row."""
    ids, pos, slots, qsl, lens = [], [], [], [0], []
    for seq, n in work:
        start, end = seq.num_computed, seq.num_computed + n
        pool.ensure(seq, end)
        p = np.arange(start, end)
        ids.extend(seq.tokens[start:end])
        pos.extend(p)
        slots.extend(np.array(seq.blocks)[p // pool.block_size] * pool.block_size + p % pool.block_size)
        qsl.append(qsl[-1] + n)
        lens.append(end)
        seq.num_computed = end
    width = max(len(s.blocks) for s, _ in work)
    tables = np.zeros((len(work), width), np.int32)
    for b, (seq, _) in enumerate(work):
        tables[b, : len(seq.blocks)] = seq.blocks
    return InputBatch(
        token_ids=np.array(ids, np.int64), positions=np.array(pos, np.int64),
        slot_mapping=np.array(slots, np.int64), query_start_loc=np.array(qsl, np.int32),
        seq_lens=np.array(lens, np.int32), block_tables=tables,
        sample_indices=np.arange(len(ids), dtype=np.int64),
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("models"), "tiny")
