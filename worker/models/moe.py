"""A mixture-of-experts MLP block over the whole flat batch of tokens.

route:   router logits (float32, as the reference keeps the gate in float32) -> softmax (or
         sigmoid, ERNIE's scoring_func) -> top-k experts per token, chosen on the scores plus
         ERNIE's e_score_correction_bias where the checkpoint has one (the bias only steers the
         choice: the weights are the uncorrected scores) -> the top-k weights renormalised when the
         config says so;
experts: the (token, expert) pairs sorted by expert, so each expert runs one SwiGLU over all
         of its tokens at once (one matmul pair per expert with tokens, never a per-token loop),
         then weighted and scatter-added back to their tokens; ERNIE's shared expert, one SwiGLU
         over every token, is added to that.
The sort and the per-expert counts are computed on the host from the [T, k] expert ids: the
slicing needs the counts there anyway, and NumPy's stable sort keeps each expert's tokens in order.
"""

import numpy as np

from worker.models.moe_config import MoEConfig
from worker.models.moe_weights import MoEWeights
from worker.models.tensors import to_device
from worker.platform import paddle

_C = paddle._C_ops  # the hot path skips the Python wrappers (see decoder.py)


class SparseMoEBlock:
    """h + moe(x) for x = the post-attention RMSNorm of h (weighted here, not folded: the router
    sees the reference's exact input, so a near tie between two experts resolves the same way)."""

    def __init__(self, w: MoEWeights, post_norm: np.ndarray, c: MoEConfig, dtype: str):
        self.config, self.dtype = c, dtype
        self.norm = to_device(post_norm, dtype)
        self.router = to_device(w.router, "float32")
        self.gate_up = [to_device(a, dtype) for a in w.gate_up]
        self.down = [to_device(a, dtype) for a in w.down]
        self.bias = to_device(w.correction_bias, "float32")
        self.shared_gate_up = to_device(w.shared_gate_up, dtype)
        self.shared_down = to_device(w.shared_down, dtype)

    def __call__(self, h, normalized):
        x = _C.multiply(normalized, self.norm)
        weights, experts = self.route(x)
        out = _C.add(h, self.experts(x, weights, experts))
        if self.shared_gate_up is not None:
            out = _C.add(out, self._swiglu(x, self.shared_gate_up, self.shared_down))
        return out

    def route(self, x):
        """([T, k] routing weights in x's dtype, [T, k] int64 expert ids)."""
        xf = x if x.dtype == paddle.float32 else x.astype("float32")
        logits = _C.matmul(xf, self.router, False, False)
        if self.config.scoring == "sigmoid":
            probs = paddle.nn.functional.sigmoid(logits)
        else:
            probs = paddle.nn.functional.softmax(logits, axis=-1)
        if self.bias is None:
            weights, experts = paddle.topk(probs, self.config.top_k, axis=-1)
        else:
            _, experts = paddle.topk(_C.add(probs, self.bias), self.config.top_k, axis=-1)
            weights = paddle.take_along_axis(probs, experts, axis=-1)
        if self.config.norm_topk_prob:
            # The clip is the reference's (a sigmoid's top-k could sum to ~0).
            weights = weights / paddle.clip(weights.sum(axis=-1, keepdim=True), min=1e-12)
        return weights.astype(x.dtype), experts

    def experts(self, x, weights, experts):
        """sum over each token's k experts of weight * expert(x): grouped by expert."""
        k = self.config.top_k
        ids = experts.numpy().reshape(-1)
        order = np.argsort(ids, kind="stable")  # pair index t * k + j, grouped by expert
        counts = np.bincount(ids, minlength=self.config.num_experts)
        tokens = paddle.to_tensor(order // k)
        rows = _C.embedding(tokens, x, -1, False)  # [T * k, H], a row gather
        outs, start = [], 0
        for e in np.flatnonzero(counts):
            end = start + int(counts[e])
            outs.append(self._expert(int(e), rows[start:end]))
            start = end
        pair_weights = paddle.gather(weights.reshape([-1]), paddle.to_tensor(order))
        out = _C.multiply(_C.concat(outs, 0), pair_weights.unsqueeze(-1))
        return paddle.index_add(paddle.zeros_like(x), tokens, 0, out)

    def _expert(self, e: int, rows):
        return self._swiglu(rows, self.gate_up[e], self.down[e])

    @staticmethod
    def _swiglu(rows, gate_up, down):
        gate, up = _C.split_with_num(_C.matmul(rows, gate_up, False, False), 2, 1)
        return _C.matmul(_C.multiply(_C.silu(gate), up), down, False, False)
