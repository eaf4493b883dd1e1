// Rotary position embedding and the q/k/v split of the decoder's fused qkv projection in one pass
// (worker/models/rotary.py holds the same rotation as Paddle ops). As Paddle ops it is a table
// gather per step, then per layer a complex multiply over every head (v turned by 0) and a
// split (a copy on CPU): 57 ms of a 2048-token prefill step here (benchmarks/decode_profile.py).
// Pairs are adjacent (2i, 2i+1), as the loader lays out q and k for either pairing; each pair
// (a, b) times (cos + i sin) is (a cos - b sin, a sin + b cos), the complex product's terms.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "paddle/extension.h"

#ifdef __AVX2__
#include <immintrin.h>
#endif

namespace {

// out[0..d) = x[0..d) turned by cos_sin [d/2][2] (cos, sin of each pair's angle).
void TurnHead(const float* __restrict x, const float* __restrict cos_sin, int64_t d, float* __restrict out) {
  int64_t i = 0;
#ifdef __AVX2__
  for (; i + 8 <= d; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i), cs = _mm256_loadu_ps(cos_sin + i);
    const __m256 swapped = _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1));  // (b, a) of each pair
    // even lanes a cos - b sin, odd lanes b cos + a sin
    _mm256_storeu_ps(out + i, _mm256_fmaddsub_ps(v, _mm256_moveldup_ps(cs),
                                                 _mm256_mul_ps(swapped, _mm256_movehdup_ps(cs))));
  }
#endif
  for (; i < d; i += 2) {
    const float a = x[i], b = x[i + 1], c = cos_sin[i], s = cos_sin[i + 1];
    out[i] = a * c - b * s;
    out[i + 1] = a * s + b * c;
  }
}

}  // namespace

// qkv [T, (Hq + 2 Hkv) * D], cos_sin [P, D/2, 2], positions [T] -> q [T, Hq, D] and k [T, Hkv, D]
// turned by each token's position, v [T, Hkv, D] as it was.
std::vector<paddle::Tensor> RotarySplit(const paddle::Tensor& qkv, const paddle::Tensor& cos_sin,
                                        const paddle::Tensor& positions, int64_t q_heads, int64_t kv_heads) {
  PD_CHECK(qkv.is_cpu() && qkv.dtype() == paddle::DataType::FLOAT32, "bi_rotary_split: qkv must be float32 on CPU");
  PD_CHECK(cos_sin.dtype() == paddle::DataType::FLOAT32 && cos_sin.shape().size() == 3 && cos_sin.shape()[2] == 2,
           "cos_sin must be float32 [P, D/2, 2]");
  PD_CHECK(positions.dtype() == paddle::DataType::INT64, "positions must be int64");
  const int64_t tokens = qkv.shape()[0], d = 2 * cos_sin.shape()[1], table_rows = cos_sin.shape()[0];
  PD_CHECK(qkv.numel() == tokens * (q_heads + 2 * kv_heads) * d, "qkv must be [T, (Hq + 2 Hkv) * D] for D = ", d);
  PD_CHECK(positions.numel() == tokens, "positions must be [T]");
  const int64_t* pos = positions.data<int64_t>();
  for (int64_t t = 0; t < tokens; ++t)
    PD_CHECK(pos[t] >= 0 && pos[t] < table_rows, "position ", pos[t], " outside the table of ", table_rows);
  auto q = paddle::empty({tokens, q_heads, d}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto k = paddle::empty({tokens, kv_heads, d}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  auto v = paddle::empty({tokens, kv_heads, d}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* in = qkv.data<float>();
  const float* table = cos_sin.data<float>();
  float *qo = q.data<float>(), *ko = k.data<float>(), *vo = v.data<float>();
  const int64_t row = (q_heads + 2 * kv_heads) * d;
#pragma omp parallel for if (tokens * row > (int64_t{1} << 16))
  for (int64_t t = 0; t < tokens; ++t) {
    const float* x = in + t * row;
    const float* cs = table + pos[t] * d;
    for (int64_t h = 0; h < q_heads; ++h) TurnHead(x + h * d, cs, d, qo + (t * q_heads + h) * d);
    for (int64_t h = 0; h < kv_heads; ++h) TurnHead(x + (q_heads + h) * d, cs, d, ko + (t * kv_heads + h) * d);
    std::copy(x + (q_heads + kv_heads) * d, x + row, vo + t * kv_heads * d);
  }
  return {q, k, v};
}

PD_BUILD_OP(bi_rotary_split)
    .Inputs({"qkv", "cos_sin", "positions"})
    .Outputs({"q", "k", "v"})
    .Attrs({"q_heads: int64_t", "kv_heads: int64_t"})
    .SetKernelFn(PD_KERNEL(RotarySplit));
