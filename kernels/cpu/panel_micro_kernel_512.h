// The panel GEMM's AVX-512 micro-kernel (packed_matmul.cc), for CPUs that have AVX-512F: the
// same [K][16] panels, a 16-column panel being one 512-bit vector, P adjacent panels at a time.
// Compiled for AVX-512 through target attributes, so the library itself stays x86-64-v3 and
// this path runs only where the CPU reports avx512f at run time.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "panel_micro_kernel.h"  // ForRowTail

namespace panel512 {

constexpr int kPanel = 16;  // columns per panel: one 512-bit vector
constexpr int kRows = 8;    // rows per tile: 8 x 2 accumulators, B's 2 vectors, 1 broadcast

// c[R x cols] (= or +=) a[R x kc] @ P panels of b: a's rows `lda` apart, b's `ldb` (16 in a
// packed panel); panel j at b + j * panel_stride. cols <= 16 P: the columns kept (masked stores).
// `prefetch`: rows of each panel's next slice (same panel_stride apart) pulled toward L1 here.
template <int R, int P>
__attribute__((target("avx512f"))) inline void MicroKernel(const float* a, int64_t lda, const float* b, int64_t ldb,
                                                           int64_t panel_stride, int kc, float* c, int64_t ldc,
                                                           bool accumulate, int cols, const float* prefetch,
                                                           int prefetch_rows) {
  __m512 acc[R][P];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < P; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int kk = 0; kk < kc; ++kk) {
    if (kk < prefetch_rows)
#pragma GCC unroll 4
      for (int j = 0; j < P; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(prefetch + j * panel_stride + kk * kPanel), _MM_HINT_T0);
    __m512 bv[P];
#pragma GCC unroll 4
    for (int j = 0; j < P; ++j) bv[j] = _mm512_loadu_ps(b + j * panel_stride + kk * ldb);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + kk]);
#pragma GCC unroll 4
      for (int j = 0; j < P; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < P; ++j) {
    const int valid = std::clamp(cols - j * kPanel, 0, kPanel);
    if (valid == 0) continue;
    const __mmask16 keep = valid == kPanel ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      float* cij = c + i * ldc + j * kPanel;
      const __m512 sum = accumulate ? _mm512_add_ps(acc[i][j], _mm512_maskz_loadu_ps(keep, cij)) : acc[i][j];
      _mm512_mask_storeu_ps(cij, keep, sum);
    }
  }
}

// c[rows x cols] (= or +=) a[rows x kc] @ P panels of b: whole 8-row tiles, then the rest;
// before_tile() runs before each (the caller's prefetching, spread over the tiles).
template <int P, class F>
__attribute__((target("avx512f"))) void RowTiles(const float* a, int64_t lda, int64_t rows, const float* b,
                                                 int64_t ldb, int64_t panel_stride, int kc, float* c, int64_t ldc,
                                                 bool accumulate, int cols, F before_tile) {
  int64_t i = 0;
  for (; i + kRows <= rows; i += kRows) {
    before_tile();
    MicroKernel<kRows, P>(a + i * lda, lda, b, ldb, panel_stride, kc, c + i * ldc, ldc, accumulate, cols, nullptr, 0);
  }
  panel::ForRowTail<kRows - 1>(rows - i, [&](auto r) {
    before_tile();
    MicroKernel<decltype(r)::value, P>(a + i * lda, lda, b, ldb, panel_stride, kc, c + i * ldc, ldc, accumulate, cols,
                                       nullptr, 0);
  });
}

}  // namespace panel512
