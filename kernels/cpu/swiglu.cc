// silu(gate) * up of the MLP in one pass over gate_up [T, 2I] (gate columns, then up), for the
// decoder's SwiGLU. As Paddle ops it is a split (a copy on CPU), a silu and a multiply: three
// passes and three dispatches per layer, ~0.4 ms a layer at 64 rows and the bulk of prefill's
// small-op time (benchmarks/decode_profile.py). silu(x) = x * sigmoid(x), sigmoid from
// e = exp(-|x|) <= 1 (attention_math.h's exp, relative error ~2e-7): 1 / (1 + e) for x >= 0,
// e / (1 + e) below, so no exp ever overflows.

#include <cmath>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"

#include "attention_math.h"

namespace {

using namespace bi_attention;

inline float SiluScalar(float x) {
  const float e = ExpNonPositive(-std::fabs(x));
  return x * (x >= 0.f ? 1.f : e) / (1.f + e);
}

void SiluMulRow(const float* __restrict gate, const float* __restrict up, float* __restrict out, int64_t n) {
  int64_t i = 0;
#ifdef __AVX2__
  const __m256 one = _mm256_set1_ps(1.f), sign = _mm256_set1_ps(-0.f);
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(gate + i);
    const __m256 e = Exp8(_mm256_or_ps(x, sign));  // exp(-|x|)
    const __m256 num = _mm256_blendv_ps(one, e, x);  // sign bit set (x < 0): e
    const __m256 silu = _mm256_div_ps(_mm256_mul_ps(x, num), _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
#endif
  for (; i < n; ++i) out[i] = SiluScalar(gate[i]) * up[i];
}

}  // namespace

std::vector<paddle::Tensor> SiluMul(const paddle::Tensor& gate_up) {
  PD_CHECK(gate_up.is_cpu() && gate_up.dtype() == paddle::DataType::FLOAT32, "bi_silu_mul: float32 CPU only");
  PD_CHECK(gate_up.shape().size() == 2 && gate_up.shape()[1] % 2 == 0, "gate_up must be [T, 2I]");
  const int64_t rows = gate_up.shape()[0], inter = gate_up.shape()[1] / 2;
  auto out = paddle::empty({rows, inter}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = gate_up.data<float>();
  float* o = out.data<float>();
  // A row is 2I floats of reading: a team of threads pays off from a few dozen rows up.
#pragma omp parallel for if (rows * inter > (int64_t{1} << 16))
  for (int64_t r = 0; r < rows; ++r) SiluMulRow(in + r * 2 * inter, in + r * 2 * inter + inter, o + r * inter, inter);
  return {out};
}

PD_BUILD_OP(bi_silu_mul).Inputs({"gate_up"}).Outputs({"out"}).SetKernelFn(PD_KERNEL(SiluMul));
