"""Peak host memory while loading a checkpoint of 4 safetensors shards (issue 18 item 3): the
loader reads tensor by tensor and the decoder converts each layer before the next is read, so
the load costs the loaded weights plus about one shard-sized working set, never the checkpoint
widened to float32 on top of the weights.

A random ERNIE 4.5 MoE model (~95M parameters: 370 MB as float32, the engine's CPU dtype) is
stored in bfloat16, as real checkpoints are, in 4 shards with the index json HF writes. A child
process imports the engine, runs one Paddle op (allocator and thread pools up), notes its current
RSS, loads the model and reports its peak RSS: the growth must stay under 1.5 x the largest
shard + the loaded weights. A child, so nothing this process already holds counts. The peak is
the child's VmHWM (its own address space's high-water mark), not ru_maxrss: subprocess starts
the child by vfork, and exec folds the parent's peak (this pytest process's, 700+ MB here) into
the child's ru_maxrss.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.model.conftest import make_model
from worker.logs import get_logger
from worker.models.safetensors_np import SafetensorsFile

log = get_logger(__name__)

SPEC = dict(family="ernie4_5_moe", num_layers=6, hidden_size=512, num_attention_heads=8, num_key_value_heads=2,
            intermediate_size=1536, vocab_size=32000, tie_word_embeddings=False, num_experts=8,
            num_experts_per_tok=2, moe_intermediate_size=768, moe_num_shared_experts=1, seed=5)
SHARDS = 4

_CHILD = """
import json, sys
from worker.platform import Platform, paddle
from worker.engine.model_runner import ModelRunner

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

(paddle.ones([64, 64]) @ paddle.ones([64, 64])).numpy()
before = status_kib("VmRSS")
runner = ModelRunner(sys.argv[1], Platform(device="cpu", dtype="float32"), block_size=16, num_blocks=1,
                     max_num_batched_tokens=16)
from worker.models.linear import Linear

def held(v):  # a projection holds its weight plain, and packed too with the cpu kernels
    if isinstance(v, Linear):
        return [v.weight, v.packed and v.packed.packed]
    return [v if isinstance(v, paddle.Tensor) else None]

params = [runner.model.embed, *held(runner.model.lm_head), runner.model.norm]
for layer in runner.model.layers:
    params += [t for v in vars(layer).values() for t in held(v)]
    if layer.moe is not None:
        params += [t for t in vars(layer.moe).values() if isinstance(t, paddle.Tensor)]
        params += layer.moe.gate_up + layer.moe.down
loaded = sum(int(t.numel()) * t.element_size() for t in params if t is not None)
# With the AVX-512 kernel a projection's plain weight lives only while it is packed: one at a time.
linears = [runner.model.lm_head, *(v for layer in runner.model.layers for v in vars(layer).values() if isinstance(v, Linear))]
packing = max((int(v.packed.packed.numel()) * 4 for v in linears if v.weight is None), default=0)
peak = status_kib("VmHWM")
print(json.dumps({"before_kib": before, "peak_kib": peak, "loaded_bytes": loaded, "packing_bytes": packing}))
"""


def bf16_bytes(a: np.ndarray) -> bytes:
    """float32 -> bfloat16 by round-to-nearest-even on the upper half (what torch's cast does)."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype("<u2").tobytes()


def write_safetensors_bf16(path: Path, tensors: dict[str, np.ndarray]) -> None:
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        blob = bf16_bytes(a)
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
    with path.open("wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for blob in blobs:
            f.write(blob)


def reshard(model_dir: Path, shards: int) -> list[Path]:
    """model.safetensors (float32) -> `shards` bfloat16 files of about equal size, tensors in name
    order as HF's save_pretrained fills them, and model.safetensors.index.json."""
    single = model_dir / "model.safetensors"
    f = SafetensorsFile(single)
    names = sorted(f.header)
    sizes = {n: int(np.prod(f.shape(n))) * 2 for n in names}
    budget, groups = sum(sizes.values()) / shards, [[]]
    for n in names:
        if groups[-1] and sum(sizes[m] for m in groups[-1]) + sizes[n] > budget and len(groups) < shards:
            groups.append([])
        groups[-1].append(n)
    weight_map, paths = {}, []
    for i, group in enumerate(groups, 1):
        path = model_dir / f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        write_safetensors_bf16(path, {n: f.read(n) for n in group})
        weight_map.update((n, path.name) for n in group)
        paths.append(path)
    single.unlink()
    index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}
    (model_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return paths


def measure(model_dir: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, str(model_dir)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> tuple[Path, list[Path]]:
    model_dir = make_model(tmp_path_factory.mktemp("load-memory"), "erniemoe-4shards", **SPEC)
    return model_dir, reshard(model_dir, SHARDS)


def test_peak_rss_while_loading_four_shards(sharded):
    model_dir, shards = sharded
    assert len(shards) == SHARDS
    largest = max(p.stat().st_size for p in shards)
    m = measure(model_dir)
    growth = (m["peak_kib"] - m["before_kib"]) * 1024
    bound = 1.5 * largest + m["loaded_bytes"] + m["packing_bytes"]
    mib = 1 << 20
    log.info("load_memory", shards=SHARDS, checkpoint_mib=round(sum(p.stat().st_size for p in shards) / mib, 1),
             largest_shard_mib=round(largest / mib, 1), loaded_mib=round(m["loaded_bytes"] / mib, 1),
             rss_before_mib=round(m["before_kib"] / 1024, 1), peak_growth_mib=round(growth / mib, 1),
             bound_mib=round(bound / mib, 1))
    # bfloat16 on disk, float32 loaded: the weights are twice the checkpoint.
    assert m["loaded_bytes"] > 1.9 * sum(p.stat().st_size for p in shards)
    assert growth < bound, f"peak RSS grew {growth / mib:.0f} MiB, bound {bound / mib:.0f} MiB"
