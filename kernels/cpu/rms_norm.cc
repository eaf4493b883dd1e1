// x / rms(x) per row in one pass, for the decoder's RMSNorms (their weights are folded into the
// next matmul, worker/models/decoder.py). As Paddle ops it is a square, an addmm (the mean of
// squares plus eps), an rsqrt and a broadcast multiply: four passes over a [T, H] activation,
// 31 ms of a 2048-token prefill step here (benchmarks/decode_profile.py). Sums in float32, as
// paddleformers' RMSNorm does on float32 activations.

#include <cmath>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace {

float SumOfSquares(const float* __restrict x, int64_t n) {
  int64_t i = 0;
  float sum = 0.f;
#ifdef __AVX2__
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
    a0 = _mm256_fmadd_ps(x0, x0, a0);
    a1 = _mm256_fmadd_ps(x1, x1, a1);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(a0, a1));
  for (float l : lanes) sum += l;
#endif
  for (; i < n; ++i) sum += x[i] * x[i];
  return sum;
}

}  // namespace

std::vector<paddle::Tensor> RmsNormalize(const paddle::Tensor& x, float eps) {
  PD_CHECK(x.is_cpu() && x.dtype() == paddle::DataType::FLOAT32, "bi_rms_normalize: x must be float32 on CPU");
  PD_CHECK(x.shape().size() == 2, "x must be [T, H]");
  const int64_t rows = x.shape()[0], h = x.shape()[1];
  auto out = paddle::empty({rows, h}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = x.data<float>();
  float* o = out.data<float>();
#pragma omp parallel for if (rows * h > (int64_t{1} << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = in + r * h;
    const float inv = 1.f / std::sqrt(SumOfSquares(xr, h) / static_cast<float>(h) + eps);
    float* orow = o + r * h;
#pragma omp simd
    for (int64_t i = 0; i < h; ++i) orow[i] = xr[i] * inv;
  }
  return {out};
}

PD_BUILD_OP(bi_rms_normalize)
    .Inputs({"x"})
    .Outputs({"out"})
    .Attrs({"eps: float"})
    .SetKernelFn(PD_KERNEL(RmsNormalize));
