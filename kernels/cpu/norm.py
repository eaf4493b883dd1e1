"""x / rms(x) per row in one op (rms_norm.cc): the decoder's RMSNorm without its weight."""

from kernels.cpu.build import load_ops
from worker.platform import paddle

load_ops()

_run = paddle._C_ops._run_custom_op


class FusedRMSNormalize:
    def __init__(self, eps: float):
        self.eps = float(eps)

    def __call__(self, x):
        x = x if x.is_contiguous() else x.contiguous()
        out = _run("bi_rms_normalize", x, self.eps)
        return out[0] if isinstance(out, (list, tuple)) else out
