"""The `cpu` kernels' fused RMS normalisation against the decoder's Paddle-op one."""

import numpy as np
import pytest

from kernels.cpu.norm import FusedRMSNormalize
from worker.models.decoder import RMSNormalize
from worker.platform import paddle


@pytest.mark.parametrize("rows,hidden", [(1, 1024), (64, 1024), (300, 20)])  # 20: past the vector loop
def test_fused_rms_normalize_matches_the_paddle_ops(rows, hidden):
    rng = np.random.default_rng(rows + hidden)
    x = rng.standard_normal((rows, hidden)).astype(np.float32) * rng.uniform(1e-3, 1e3, (rows, 1)).astype(np.float32)
    x[0] = 0.0  # a zero row: eps keeps it finite (zero out)
    want = RMSNormalize(hidden, 1e-5)(paddle.to_tensor(x)).numpy()
    got = FusedRMSNormalize(1e-5)(paddle.to_tensor(x)).numpy()
    assert np.isfinite(got).all() and not got[0].any()
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
