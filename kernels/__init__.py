"""Paged-attention kernels behind a two-function seam (DESIGN.md section 4).

A backend provides `write_kv` (scatter new K/V into the paged cache by slot) and
`paged_attention` (a flat batch of queries against the paged cache, bottom-right causal).
Cache layout: [num_blocks, num_kv_heads, block_size, head_dim].
"""

from kernels.registry import AttentionBackend, UnknownBackendError, get_backend, list_backends

__all__ = ["AttentionBackend", "UnknownBackendError", "get_backend", "list_backends"]
