// Vector building blocks of the CPU paged attention (paged_attention.cc): exp, an 8 x 8
// transpose, spread-out prefetching, and the Q.K and P.V loops of a few rows (decode); many
// rows (prefill) take panel_micro_kernel.h's register tiles instead. AVX2 + FMA paths with
// portable fallbacks (the transpose has none: the op needs AVX2 for panel_micro_kernel.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace bi_attention {

// exp(x) for x <= 0 (scores minus their running max): 2^n * p(r) with a degree-6 Taylor
// polynomial on r = x - n ln2 in [-ln2/2, ln2/2]; relative error ~2e-7, and ~0 below -87.
// ExpNonPositive is the scalar form, Exp8 the same steps on eight lanes.
constexpr float kExpFloor = -87.f;
constexpr float kLog2e = 1.44269504088896341f;
// ln2 in two parts: n * kLn2Hi is exact, so r keeps its low bits.
constexpr float kLn2Hi = 0.693145751953125f, kLn2Lo = 1.428606765330187045e-06f;
constexpr float kExpTaylor[] = {1.f / 720.f, 1.f / 120.f, 1.f / 24.f, 1.f / 6.f, 0.5f, 1.f, 1.f};

inline float ExpNonPositive(float x) {
  x = std::max(x, kExpFloor);
  // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a libm call.
  const float n = (x * kLog2e + 12582912.f) - 12582912.f;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = kExpTaylor[0];
  for (int i = 1; i < 7; ++i) p = p * r + kExpTaylor[i];
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// A region to bring into L2 (64-byte lines) a slice at a time, spread over the compute that
// precedes its use: a burst of hundreds of prefetches would stall on the core's few
// outstanding-miss slots.
struct PrefetchStream {
  const float* next = nullptr;
  const float* end = nullptr;
  void Reset(const float* p, int64_t n) { next = p; end = p + n; }
  void Step(int64_t n) {
    const float* stop = std::min(next + n, end);
    for (; next < stop; next += 16) __builtin_prefetch(next, 0, 2);
  }
};

#if defined(__AVX2__) && defined(__FMA__)
inline __m256 Exp8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(kExpFloor));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpTaylor[0]);
  for (int i = 1; i < 7; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpTaylor[i]));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}
#endif

// s[t] = exp(s[t] - m) for t < n; returns their sum.
inline float ExpShifted(float* __restrict s, int64_t n, float m) {
  int64_t t = 0;
  float sum = 0.f;
#if defined(__AVX2__) && defined(__FMA__)
  __m256 total = _mm256_setzero_ps();
  for (; t + 8 <= n; t += 8) {
    const __m256 e = Exp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), _mm256_set1_ps(m)));
    _mm256_storeu_ps(s + t, e);
    total = _mm256_add_ps(total, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, total);
  for (float x : lanes) sum += x;
#endif
  for (; t < n; ++t) {
    s[t] = ExpNonPositive(s[t] - m);
    sum += s[t];
  }
  return sum;
}

inline void Scale(float alpha, float* __restrict y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] *= alpha;
}

#if defined(__AVX2__) && defined(__FMA__)
// dst's rows are src's columns, for an 8 x 8 tile (rows `lds` and `ldd` floats apart).
inline void Transpose8x8(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; i += 2) {  // pairs of rows interleaved: [a0 b0 a1 b1 | a4 b4 a5 b5], ...
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {  // four rows' column c in each 128-bit half
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {  // the halves of rows 0-3 and 4-7 joined
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}
#endif

// out[t] = q . k[t] for t < n (keys are rows of d floats; q comes scaled).
inline void QueryKeys(const float* __restrict q, const float* __restrict k, int64_t n, int64_t d,
                      float* __restrict out) {
  int64_t t = 0;
#if defined(__AVX2__) && defined(__FMA__)
  if (d % 8 == 0) {
    // Eight keys at a time: eight independent FMA chains hide the FMA latency, and one
    // transposing reduction turns the eight accumulators into eight scores.
    for (; t + 8 <= n; t += 8) {
      __m256 a[8];
      for (int j = 0; j < 8; ++j) a[j] = _mm256_setzero_ps();
      const float* kt = k + t * d;
      for (int64_t i = 0; i < d; i += 8) {
        const __m256 qv = _mm256_loadu_ps(q + i);
        for (int j = 0; j < 8; ++j) a[j] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kt + j * d + i), a[j]);
      }
      const __m256 s0123 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
      const __m256 s4567 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
      const __m256 sums = _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20),
                                        _mm256_permute2f128_ps(s0123, s4567, 0x31));
      _mm256_storeu_ps(out + t, sums);
    }
  }
#endif
  for (; t < n; ++t) {
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < d; ++i) s += q[i] * k[t * d + i];
    out[t] = s;
  }
}

// acc0 += sum_t p0[t] v[t] and acc1 += sum_t p1[t] v[t], t < n: two rows share each V load.
inline void ProbsValues(const float* __restrict p0, const float* __restrict p1, const float* __restrict v,
                        int64_t n, int64_t d, float* __restrict acc0, float* __restrict acc1) {
#if defined(__AVX2__) && defined(__FMA__)
  if (d % 32 == 0) {
    // Register tile: 2 rows x 32 floats stay in eight accumulators across all n keys.
    for (int64_t i = 0; i < d; i += 32) {
      __m256 x0[4], x1[4];
      for (int j = 0; j < 4; ++j) {
        x0[j] = _mm256_loadu_ps(acc0 + i + 8 * j);
        x1[j] = _mm256_loadu_ps(acc1 + i + 8 * j);
      }
      for (int64_t t = 0; t < n; ++t) {
        const __m256 b0 = _mm256_broadcast_ss(p0 + t), b1 = _mm256_broadcast_ss(p1 + t);
        const float* vt = v + t * d + i;
        for (int j = 0; j < 4; ++j) {
          const __m256 vv = _mm256_loadu_ps(vt + 8 * j);
          x0[j] = _mm256_fmadd_ps(b0, vv, x0[j]);
          x1[j] = _mm256_fmadd_ps(b1, vv, x1[j]);
        }
      }
      for (int j = 0; j < 4; ++j) {
        _mm256_storeu_ps(acc0 + i + 8 * j, x0[j]);
        _mm256_storeu_ps(acc1 + i + 8 * j, x1[j]);
      }
    }
    return;
  }
#endif
  for (int64_t t = 0; t < n; ++t) {
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) {
      acc0[i] += p0[t] * v[t * d + i];
      acc1[i] += p1[t] * v[t * d + i];
    }
  }
}

}  // namespace bi_attention
