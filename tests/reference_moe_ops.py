"""CPU stand-ins for the three GPU-only Paddle kernels on paddleformers' ERNIE 4.5 MoE forward
path (`paddleformers.nn.moe.moe_allgather_layer`, `moe_alltoall_layer`): Paddle registers them
for GPU only ("kernel ... is not registered" on CPU) and no config avoids them (every MoE layer
is a MOEAllGatherLayerV2). They only move data; paddleformers' own code still does all the
routing arithmetic (gate matmul, softmax/sigmoid, correction bias, top-k, renormalisation, the
experts, the shared expert). Each follows its CUDA kernel in paddle/phi/kernels (Paddle 3.x):

- expand_modality_expert_id: expert ids of one modality to global ids. With
  num_expert_per_modality=0 (text only, token_type_ids None) and no group experts: identity.
- moe_gate_dispatch_partial_nosoftmaxtopk (use_pad=True, one rank): each (token, slot) pair's
  row copied into its expert's block of `capacity` rows, pairs in token order; scatter_index
  [k, S] says where each pair went; a pair beyond its expert's capacity is dropped (weight 0).
- moe_combine: y[s] = sum_j combine_weights[s, j] * x[scatter_index[s, j]].
Beside them, the per-expert counts are copied to the host by `async_offload` (a pinned-memory
copy on a CUDA stream) through `get_async_loader`, whose CPU branch reads a module global that
paddleformers 1.2.0 never defines (NameError): on CPU the tensor already is on the host, so
the stand-in hands it back with no task to wait for.
"""

import numpy as np

from worker.platform import paddle


def expand_modality_expert_id(expert_id, num_expert_per_modality, group_size, modality_offset, is_group_expert,
                              name=None):
    e = expert_id.numpy().copy()
    if is_group_expert:
        e = e + (np.arange(e.size).reshape(e.shape) % e.shape[-1]) * group_size
    if num_expert_per_modality > 0:
        rank, local = e // num_expert_per_modality, e % num_expert_per_modality
        e = rank * (num_expert_per_modality * 2) + local + modality_offset * num_expert_per_modality
    return paddle.to_tensor(e, dtype=expert_id.dtype)


def moe_gate_dispatch_partial_nosoftmaxtopk(x, combine_weights, expert_id, k, capacity, num_experts, use_pad,
                                            expert_start_index, expert_end_index, reverse_token_drop, name=None):
    if not use_pad or reverse_token_drop:
        raise NotImplementedError("stand-in covers use_pad=True, reverse_token_drop=False only")
    xs, w, ids = x.numpy(), combine_weights.numpy().copy(), expert_id.numpy().astype(np.int64)
    rows, local_experts = xs.shape[0], expert_end_index - expert_start_index
    y = np.zeros((local_experts * capacity, xs.shape[1]), xs.dtype)
    scatter = np.zeros((k, rows), np.int32)
    scatter_rev = np.full(local_experts * capacity, rows, np.int32)
    global_counts = np.bincount(ids.reshape(-1), minlength=num_experts).astype(np.int64)
    filled = np.zeros(num_experts, np.int64)
    for s in range(rows):  # token order within each expert, as the kernel's sequence sort
        for j in range(k):
            e = ids[s, j]
            if not expert_start_index <= e < expert_end_index or filled[e] >= capacity:
                w[s, j] = 0.0
                continue
            slot = (e - expert_start_index) * capacity + filled[e]
            filled[e] += 1
            y[slot], scatter[j, s], scatter_rev[slot] = xs[s], slot, s
    return (paddle.to_tensor(y), paddle.to_tensor(w), paddle.to_tensor(scatter), paddle.to_tensor(scatter_rev),
            paddle.to_tensor(global_counts), paddle.to_tensor(filled))


def moe_combine(x, combine_weights, scatter_index, name=None):
    xs, w, idx = x.numpy(), combine_weights.numpy(), scatter_index.numpy()
    return paddle.to_tensor(np.einsum("sk,skd->sd", w.astype(xs.dtype), xs[idx]))


def get_async_loader():
    return None


def async_offload(tensor, loader):
    return tensor, None


def install() -> None:
    from paddleformers.nn.moe import moe_allgather_layer, moe_alltoall_layer

    moe_allgather_layer.expand_modality_expert_id = expand_modality_expert_id
    moe_allgather_layer.moe_gate_dispatch_partial_nosoftmaxtopk = moe_gate_dispatch_partial_nosoftmaxtopk
    moe_allgather_layer.get_async_loader = get_async_loader
    moe_allgather_layer.async_offload = async_offload
    moe_alltoall_layer.moe_combine = moe_combine
