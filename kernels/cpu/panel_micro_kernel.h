// The panel GEMM's micro-kernel (packed_matmul.cc), in a header of its own so that
// benchmarks/panel_gemm_probe.cc measures this very loop: no Paddle in here.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

namespace panel {

constexpr int kPanel = 16;  // columns per panel: two 8-lane vectors
constexpr int kRows = 6;    // rows per micro-kernel: 6 x 2 accumulators + 2 B + 1 A = 15 registers

// c[R x cols] (= or +=) a[R x kc] @ b[kc x 16]: a's rows `lda` apart, b's `ldb` (16 in a panel);
// b's 16 floats of a row are read whole even when cols < 16, so the caller keeps them in bounds.
// `prefetch`: `prefetch_rows` rows of a panel (16 floats each) to pull toward L1 (kHint) while
// this tile computes; the caller spreads the next slice over its tiles.
template <int R, int kHint = _MM_HINT_T0>
inline void MicroKernel(const float* a, int64_t lda, const float* b, int64_t ldb, int kc, float* c, int64_t ldc,
                        bool accumulate, int cols, const float* prefetch, int prefetch_rows) {
  __m256 acc[R][2];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int kk = 0; kk < kc; ++kk) {
    if (kk < prefetch_rows)
      _mm_prefetch(reinterpret_cast<const char*>(prefetch + kk * kPanel), static_cast<_mm_hint>(kHint));
    const __m256 b0 = _mm256_loadu_ps(b + kk * ldb), b1 = _mm256_loadu_ps(b + kk * ldb + 8);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i * lda + kk);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  alignas(32) float tail[kPanel];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
    if (cols == kPanel) {
      if (accumulate) {
        acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(ci));
        acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, acc[i][0]);
      _mm256_storeu_ps(ci + 8, acc[i][1]);
    } else {  // the last panel of an N that is not a multiple of 16
      _mm256_store_ps(tail, acc[i][0]);
      _mm256_store_ps(tail + 8, acc[i][1]);
      for (int j = 0; j < cols; ++j) ci[j] = accumulate ? ci[j] + tail[j] : tail[j];
    }
  }
}

// f(std::integral_constant<int, R>) for the R = 1..kMax rows left after the whole tiles.
template <int kMax = kRows - 1, class F>
void ForRowTail(int64_t rows, F f) {
  if constexpr (kMax > 0) {
    if (rows == kMax) return f(std::integral_constant<int, kMax>{});
    ForRowTail<kMax - 1>(rows, f);
  }
}

// c[rows x cols] (= or +=) a[rows x kc] @ b[kc x 16]: whole 6-row tiles, then the rest;
// before_tile() runs before each (the caller's prefetching, spread over the tiles).
template <class F>
inline void RowTiles(const float* a, int64_t lda, int64_t rows, const float* b, int64_t ldb, int kc, float* c,
                     int64_t ldc, bool accumulate, int cols, F before_tile) {
  int64_t i = 0;
  for (; i + kRows <= rows; i += kRows) {
    before_tile();
    MicroKernel<kRows>(a + i * lda, lda, b, ldb, kc, c + i * ldc, ldc, accumulate, cols, nullptr, 0);
  }
  ForRowTail(rows - i, [&](auto r) {
    before_tile();
    MicroKernel<decltype(r)::value>(a + i * lda, lda, b, ldb, kc, c + i * ldc, ldc, accumulate, cols, nullptr, 0);
  });
}

}  // namespace panel
