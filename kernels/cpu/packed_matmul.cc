// Matmuls against weights packed once at load into column panels, for the decoder's projections
// and the LM head: our own AVX2 GEMM, not a BLAS call.
//
// Paddle's matmul calls MKL's sgemm, which repacks the weight on every call (at decode's 64 rows
// a large share of the call) and on this AVX2 host ran at 45-55% of the FMA ceiling; MKL's own
// packed API (cblas_sgemm_pack) packed faster calls but took 1.8x the weights' memory, and
// oneDNN 3.6 (Paddle's libdnnl) has no AVX2 brgemm (it falls back to its jit gemm, no faster).
// Here a panel holds 16 columns of W as [K][16]: the same size as W, read once per call in
// order, each 256-deep slice kept in L1 while every row of x passes over it (6 rows at a time
// in 12 accumulator registers). Where the CPU has AVX-512F the caller may ask for the wide path:
// two panels at a time in 512-bit vectors, 8 rows x 32 columns in 16 accumulators (1.8x the
// AVX2 kernel's GFLOP/s on Zen 5, and past MKL's sgemm, which takes AVX2 code on AMD, at every
// row count). Measured against MKL in benchmarks/RESULTS.md (issue 17).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "paddle/extension.h"
#include "panel_micro_kernel.h"
#include "panel_micro_kernel_512.h"

namespace {

using panel::kPanel;
using panel::ForRowTail;
using panel::kRows;
using panel::MicroKernel;

constexpr int kDepth = 256;  // K per slice: 16 KiB of a panel, half of L1
constexpr int kRowBlock = 256;
constexpr int kPanelsPerClaim = 4;  // 2, 4 and 8 measured alike at decode's 64 rows

void CheckFloat32Cpu(const paddle::Tensor& t, const char* what) {
  PD_CHECK(t.is_cpu() && t.dtype() == paddle::DataType::FLOAT32, what, " must be a float32 CPU tensor");
}

int64_t NumPanels(int64_t n) { return (n + kPanel - 1) / kPanel; }

// Rows of the next slice of B (at `next`) that tile t of `tiles` prefetches: each tile its share,
// so the pull toward L1 is spread over the whole slice's compute (benchmarks/panel_gemm_probe.cc).
struct PrefetchShare {
  const float* next;
  int kc, share;
  PrefetchShare(const float* next_slice, int kc, int64_t tiles)
      : next(next_slice), kc(kc), share(static_cast<int>((kc + std::max<int64_t>(tiles, 1) - 1) /
                                                         std::max<int64_t>(tiles, 1))) {}
  const float* at(int64_t t) const { return next + std::min<int64_t>(kc, t * share) * kPanel; }
  int rows(int64_t t) const { return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(share, kc - t * share))); }
};

// One slice of B (kc x 16) against `rows` rows of x, row-major.
void RowBlock(const float* a, int64_t lda, const float* b, int kc, float* c, int64_t ldc, bool accumulate, int cols,
              int64_t rows, const float* next_slice) {
  const PrefetchShare prefetch(next_slice, kc, rows / kRows);
  int64_t i = 0;
  for (int64_t t = 0; i + kRows <= rows; i += kRows, ++t)
    MicroKernel<kRows>(a + i * lda, lda, b, kPanel, kc, c + i * ldc, ldc, accumulate, cols, prefetch.at(t),
                       prefetch.rows(t));
  ForRowTail(rows - i, [&](auto r) {
    MicroKernel<decltype(r)::value>(a + i * lda, lda, b, kPanel, kc, c + i * ldc, ldc, accumulate, cols, nullptr, 0);
  });
}

// One slice of P adjacent panels (kc x 16 P, the panels `panel_stride` apart) against `rows`
// rows of x, in 8-row AVX-512 tiles; each tile prefetches its share of every panel's next slice.
template <int P>
__attribute__((target("avx512f"))) void WideRowBlock(const float* a, int64_t lda, const float* b,
                                                     int64_t panel_stride, int kc, float* c, int64_t ldc,
                                                     bool accumulate, int cols, int64_t rows, const float* next_slice) {
  constexpr int kTile = panel512::kRows;
  const PrefetchShare prefetch(next_slice, kc, rows / kTile);
  int64_t i = 0;
  for (int64_t t = 0; i + kTile <= rows; i += kTile, ++t)
    panel512::MicroKernel<kTile, P>(a + i * lda, lda, b, kPanel, panel_stride, kc, c + i * ldc, ldc, accumulate,
                                    cols, prefetch.at(t), prefetch.rows(t));
  ForRowTail<kTile - 1>(rows - i, [&](auto r) {
    panel512::MicroKernel<decltype(r)::value, P>(a + i * lda, lda, b, kPanel, panel_stride, kc, c + i * ldc, ldc,
                                                 accumulate, cols, nullptr, 0);
  });
}

// Panels p .. p + P - 1 (P = 2, or 1 for the last of an odd count) through the whole of K.
void WidePanels(const float* a, int64_t k, int64_t rows, const float* panels, int64_t p, int64_t n, float* c,
                bool accumulate) {
  const int64_t stride = k * kPanel, left = NumPanels(n) - p;
  const float* panel = panels + p * stride;
  const int cols = static_cast<int>(std::min<int64_t>(2 * kPanel, n - p * kPanel));
  for (int64_t k0 = 0; k0 < k; k0 += kDepth) {
    const int kc = static_cast<int>(std::min<int64_t>(kDepth, k - k0));
    // After the last slice, the next pair's first: the panels are read in order.
    const float* next = k0 + kc < k ? panel + (k0 + kc) * kPanel : panel + 2 * stride;
    const bool acc = accumulate || k0 > 0;
    if (left >= 2)
      WideRowBlock<2>(a + k0, k, panel + k0 * kPanel, stride, kc, c + p * kPanel, n, acc, cols, rows, next);
    else
      WideRowBlock<1>(a + k0, k, panel + k0 * kPanel, stride, kc, c + p * kPanel, n, acc, cols, rows, next);
  }
}

// c [M, N] (= or +=) a [M, K] @ panels. Rows go in chunks of 256; within a chunk the threads
// claim the panels kPanelsPerClaim at a time, each taking its panels through the whole of K (the
// output written once). Claimed, not split in halves: on this shared host one core often runs
// slower than the other, and with halves the faster one waited at the barrier (libiomp5's spin:
// 13% of a decode run's perf samples split, 7% claimed; decode steps 4-8% faster, RESULTS.md).
void PanelGemm(const float* a, int64_t m, int64_t k, const float* panels, int64_t n, float* c, bool accumulate,
               bool wide) {
  const int64_t per_item = wide ? 2 : 1, items = (NumPanels(n) + per_item - 1) / per_item;
#pragma omp parallel
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t rows = std::min<int64_t>(kRowBlock, m - i0);
    // monotonic: see paged_attention.cc (GCC's default dynamic loop needs entry points libiomp5 lacks).
#pragma omp for schedule(monotonic : dynamic, kPanelsPerClaim / per_item)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t p = item * per_item;
      if (wide) {
        WidePanels(a + i0 * k, k, rows, panels, p, n, c + i0 * n, accumulate);
        continue;
      }
      const int cols = static_cast<int>(std::min<int64_t>(kPanel, n - p * kPanel));
      const float* panel = panels + p * k * kPanel;
      for (int64_t k0 = 0; k0 < k; k0 += kDepth) {
        const int kc = static_cast<int>(std::min<int64_t>(kDepth, k - k0));
        // Past the panel's end the prefetch reaches the next panel: the next one read in order.
        RowBlock(a + i0 * k + k0, k, panel + k0 * kPanel, kc, c + i0 * n + p * kPanel, n, accumulate || k0 > 0, cols,
                 rows, panel + (k0 + kc) * kPanel);
      }
    }
  }
}

}  // namespace

// weight [K, N] row-major (or [N, K] when transposed: a tied LM head is the embedding [V, H])
// -> panels [ceil(N/16), K, 16] of the [K, N] operand, zero-padded past N.
std::vector<paddle::Tensor> PackWeight(const paddle::Tensor& weight, bool transposed) {
  CheckFloat32Cpu(weight, "weight");
  PD_CHECK(weight.shape().size() == 2, "weight must be 2-D");
  const int64_t rows = weight.shape()[0], cols = weight.shape()[1];
  const int64_t k = transposed ? cols : rows, n = transposed ? rows : cols;
  auto packed = paddle::empty({NumPanels(n), k, kPanel}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const float* w = weight.data<float>();
  float* out = packed.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < NumPanels(n); ++p) {
    for (int64_t kk = 0; kk < k; ++kk) {
      float* dst = out + (p * k + kk) * kPanel;
      for (int j = 0; j < kPanel; ++j) {
        const int64_t col = p * kPanel + j;
        dst[j] = col >= n ? 0.f : transposed ? w[col * cols + kk] : w[kk * cols + col];
      }
    }
  }
  return {packed};
}

// residual + x [M, K] @ packed weight [K, N]; residual is [M, N], a bias [N] or empty ([0]).
// wide: the AVX-512 kernel (refused, not emulated, on a CPU without AVX-512F).
std::vector<paddle::Tensor> PackedMatmul(const paddle::Tensor& x, const paddle::Tensor& packed,
                                         const paddle::Tensor& residual, int64_t n, bool wide) {
  CheckFloat32Cpu(x, "x");
  CheckFloat32Cpu(packed, "packed weight");
  PD_CHECK(x.shape().size() == 2, "x must be [M, K]");
  PD_CHECK(!wide || __builtin_cpu_supports("avx512f"),
           "the AVX-512 panel GEMM was asked for on a CPU without AVX-512F");
  const int64_t m = x.shape()[0], k = x.shape()[1];
  PD_CHECK(packed.shape().size() == 3 && packed.shape()[0] == NumPanels(n) && packed.shape()[1] == k,
           "packed weight must be [ceil(N/16), K, 16] for K = x's columns");
  auto out = paddle::empty({m, n}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  if (m == 0) return {out};
  float* o = out.data<float>();
  bool accumulate = true;
  if (residual.numel() == m * n) {  // the residual add rides on the GEMM's accumulation
    CheckFloat32Cpu(residual, "residual");
    std::memcpy(o, residual.data<float>(), sizeof(float) * m * n);
  } else if (residual.numel() == n) {  // a bias, repeated on every row
    CheckFloat32Cpu(residual, "bias");
    const float* b = residual.data<float>();
    for (int64_t r = 0; r < m; ++r) std::copy(b, b + n, o + r * n);
  } else {
    PD_CHECK(residual.numel() == 0, "residual must be [M, N], [N] or empty");
    accumulate = false;
  }
  PanelGemm(x.data<float>(), m, k, packed.data<float>(), n, o, accumulate, wide);
  return {out};
}

PD_BUILD_OP(bi_pack_weight)
    .Inputs({"weight"})
    .Outputs({"packed"})
    .Attrs({"transposed: bool"})
    .SetKernelFn(PD_KERNEL(PackWeight));

PD_BUILD_OP(bi_packed_matmul)
    .Inputs({"x", "packed", "residual"})
    .Outputs({"out"})
    .Attrs({"n: int64_t", "wide: bool"})
    .SetKernelFn(PD_KERNEL(PackedMatmul));
