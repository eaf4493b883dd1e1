"""The packed-weight matmul and the fused SwiGLU of the `cpu` kernels against Paddle's own ops."""

import numpy as np
import pytest

from kernels.cpu.build import cpu_flags, wide_kernel_default
from kernels.cpu.packed import PackedWeight, silu_mul
from worker.models.linear import PANEL_MAX_ROWS, Linear, swiglu
from worker.platform import paddle

C = paddle._C_ops


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


HAS_AVX512 = "avx512f" in cpu_flags()


@pytest.mark.parametrize("wide", [False, True], ids=["avx2", "avx512"])
@pytest.mark.parametrize("rows", [0, 1, 7, 9, 64, 300])  # 9: one 8-row AVX-512 tile and a tail
@pytest.mark.parametrize("k,n", [(64, 96), (130, 257), (600, 33)])  # K past one 256-deep slice; odd panel counts
def test_packed_matmul_matches_paddle_with_and_without_residual_and_bias(rows, k, n, wide):
    rng = np.random.default_rng(rows + k)
    w = paddle.to_tensor(rng.standard_normal((k, n), np.float32))
    x = paddle.to_tensor(rng.standard_normal((rows, k), np.float32))
    residual = paddle.to_tensor(rng.standard_normal((rows, n), np.float32))
    bias = paddle.to_tensor(rng.standard_normal(n, np.float32))
    packed = PackedWeight(w, wide=wide)
    if wide and not HAS_AVX512:  # refused by name, never emulated
        with pytest.raises(Exception, match="without AVX-512F"):
            packed(x)
        return
    assert packed(x).shape == [rows, n]
    if rows == 0:
        return
    ref = C.matmul(x, w, False, False).numpy()
    assert rel_err(packed(x).numpy(), ref) < 1e-6
    assert rel_err(packed(x, residual).numpy(), ref + residual.numpy()) < 1e-6
    assert rel_err(packed(x, bias).numpy(), ref + bias.numpy()) < 1e-6


def test_a_transposed_weight_is_packed_as_its_transpose():
    """A tied LM head is the embedding [V, H]: logits = h @ embed^T."""
    rng = np.random.default_rng(1)
    embed = paddle.to_tensor(rng.standard_normal((300, 48), np.float32))
    h = paddle.to_tensor(rng.standard_normal((5, 48), np.float32))
    ref = C.matmul(h, embed, False, True).numpy()
    assert rel_err(PackedWeight(embed, transposed=True)(h).numpy(), ref) < 1e-6
    assert rel_err(Linear(embed, packed=True, transposed=True)(h).numpy(), ref) < 1e-6
    assert rel_err(Linear(embed, packed=False, transposed=True)(h).numpy(), ref) < 1e-6


def test_the_wide_kernel_is_the_default_exactly_where_the_cpu_has_avx512_unless_turned_off(monkeypatch):
    assert wide_kernel_default() == HAS_AVX512
    monkeypatch.setenv("BATCHINFER_AVX512", "0")
    assert not wide_kernel_default()


def test_with_the_wide_kernel_every_call_takes_the_panels_and_the_plain_weight_is_dropped(monkeypatch):
    monkeypatch.setenv("BATCHINFER_AVX512", "1")
    rng = np.random.default_rng(4)
    w_np = rng.standard_normal((40, 24), np.float32)
    linear = Linear(paddle.to_tensor(w_np), packed=True)
    assert (linear.weight is None) == HAS_AVX512  # an AVX2 CPU keeps the plain weight for large calls
    for rows in (1, PANEL_MAX_ROWS + 1, 300):
        x = rng.standard_normal((rows, 40), np.float32)
        assert rel_err(linear(paddle.to_tensor(x)).numpy(), x @ w_np) < 1e-5, rows


def test_calls_up_to_panel_max_rows_take_the_panels_and_larger_ones_the_plain_weight(monkeypatch):
    """With the AVX2 kernel, decode-sized calls run our GEMM on the panels, prefill-sized ones
    Paddle's matmul on the plain weight: with the plain copy zeroed after packing, only the calls
    past the bound see it."""
    monkeypatch.setenv("BATCHINFER_AVX512", "0")
    rng = np.random.default_rng(3)
    w_np = rng.standard_normal((40, 24), np.float32)
    w = paddle.to_tensor(w_np)
    linear = Linear(w, packed=True)
    w.set_value(np.zeros_like(w_np))  # the plain copy only: the panels were packed above
    for rows in (1, PANEL_MAX_ROWS, PANEL_MAX_ROWS + 1, 300):
        x = rng.standard_normal((rows, 40), np.float32)
        got = linear(paddle.to_tensor(x)).numpy()
        if rows <= PANEL_MAX_ROWS:
            assert rel_err(got, x @ w_np) < 1e-5, rows
        else:
            assert not got.any(), rows


def test_a_non_contiguous_input_is_made_contiguous():
    rng = np.random.default_rng(2)
    w = paddle.to_tensor(rng.standard_normal((32, 16), np.float32))
    x = paddle.to_tensor(rng.standard_normal((32, 6), np.float32)).T  # [6, 32], a strided view
    assert rel_err(PackedWeight(w)(x).numpy(), x.numpy() @ w.numpy()) < 1e-5


@pytest.mark.parametrize("rows", [0, 1, 5, 64])
@pytest.mark.parametrize("inter", [3, 8, 77, 3072])
def test_fused_swiglu_matches_paddles_split_silu_multiply(rows, inter):
    rng = np.random.default_rng(rows * inter)
    gate_up = paddle.to_tensor(6 * rng.standard_normal((rows, 2 * inter), np.float32))
    fused = silu_mul(gate_up)
    assert fused.shape == [rows, inter]
    if rows:
        assert rel_err(fused.numpy(), swiglu(False)(gate_up).numpy()) < 1e-6


def test_fused_swiglu_at_the_extremes_of_float32():
    gate = np.array([-1e4, -200, -88, -20, -1e-20, 0, 1e-20, 20, 88, 200, 1e4], np.float32)
    gate_up = paddle.to_tensor(np.concatenate([gate, np.ones_like(gate)])[None, :])
    expected = swiglu(False)(gate_up).numpy()
    got = silu_mul(gate_up).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-30)
