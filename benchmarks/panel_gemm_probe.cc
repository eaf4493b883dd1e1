// Probe for issue 17 (benchmarks/RESULTS.md, "Where the panel GEMM loses at decode's 64 rows"):
// the micro-kernel of kernels/cpu/packed_matmul.cc (the very loop: kernels/cpu/panel_micro_kernel.h,
// 6x16, 12 accumulators) with its weight streamed from DRAM (`copies` distinct weights, as 18 layers are) or resident in L2 (copies=1 and
// a small N), under prefetch variants and with the weights on 4 KiB or transparent huge pages,
// all interleaved in one process (ABAB rounds) so the machine's noise falls on every variant.
// Variant names: orig = the kernel's prefetch before 2026-12-03 (the first row tile pulls the next K slice);
// none = hardware prefetch only; spread dD = every row tile prefetches its share of the slice D
// slices ahead (d1 is the kernel's now); HUGE = the same weights after madvise(MADV_HUGEPAGE).
//
//   g++ -O3 -mavx2 -mfma -fopenmp -o /tmp/panel_gemm_probe benchmarks/panel_gemm_probe.cc
//   OMP_NUM_THREADS=2 /tmp/panel_gemm_probe 64 1024 6144 30 8   # M K N rounds copies
#include <immintrin.h>
#include <omp.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <sys/mman.h>
#include <cmath>
#include <cstring>
#include "../kernels/cpu/panel_micro_kernel.h"
using panel::kPanel, panel::kRows, panel::MicroKernel;
constexpr int kRowBlock = 256;
int64_t NumPanels(int64_t n) { return (n + kPanel - 1) / kPanel; }
// MODE 0: original (first tile prefetches whole next slice T0); 1: spread; DIST slices ahead
template <int MODE, int DIST, int HINT, int DEPTH>
void Gemm(const float* a, int64_t m, int64_t k, const float* panels, int64_t n, float* c) {
#pragma omp parallel
  for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
    const int64_t rows = std::min<int64_t>(kRowBlock, m - i0);
#pragma omp for schedule(static)
    for (int64_t p = 0; p < NumPanels(n); ++p) {
      const float* panel = panels + p * k * kPanel;
      for (int64_t k0 = 0; k0 < k; k0 += DEPTH) {
        const int kc = static_cast<int>(std::min<int64_t>(DEPTH, k - k0));
        const float* ai = a + i0 * k + k0; const float* b = panel + k0 * kPanel; float* ci = c + i0 * n + p * kPanel;
        const float* next = panel + (k0 + DIST * kc) * kPanel;
        int tiles = std::max(1, (int)(rows / kRows)), per = (kc + tiles - 1) / tiles;
        int64_t i = 0;
        for (int t = 0; i + kRows <= rows; i += kRows, ++t) {
          const float* pf = MODE == 0 ? next : next + t * per * kPanel;
          int npf = MODE == 0 ? (t == 0 ? kc : 0) : MODE == 2 ? 0 : std::max(0, std::min(per, kc - t * per));
          MicroKernel<kRows, HINT>(ai + i * k, k, b, kPanel, kc, ci + i * n, n, k0 > 0, kPanel, pf, npf);
        }
        panel::ForRowTail(rows - i, [&](auto r) {  // the last rows, as the kernel's RowBlock takes them
          MicroKernel<decltype(r)::value, HINT>(ai + i * k, k, b, kPanel, kc, ci + i * n, n, k0 > 0, kPanel, nullptr, 0);
        });
      }
    }
  }
}
typedef void (*Fn)(const float*, int64_t, int64_t, const float*, int64_t, float*);
struct V { const char* name; Fn fn; };
// c[r][j] by a plain dot product over the panels, to check what a variant computed.
double Reference(const float* a, int64_t k, const float* panels, int64_t r, int64_t j) {
  double sum = 0;
  for (int64_t kk = 0; kk < k; ++kk) sum += double(a[r * k + kk]) * panels[((j / kPanel) * k + kk) * kPanel + j % kPanel];
  return sum;
}
int main(int argc, char** argv) {
  if (argc != 6) { fprintf(stderr, "usage: %s M K N rounds copies\n", argv[0]); return 2; }
  if (atoi(argv[3]) % kPanel != 0) { fprintf(stderr, "N must be a multiple of %d (whole panels only)\n", kPanel); return 2; }
  int64_t m = atoi(argv[1]), k = atoi(argv[2]), n = atoi(argv[3]); int rounds = atoi(argv[4]), copies = atoi(argv[5]);
  std::vector<V> vs = {
    {"orig d1 T0 256 HUGE", Gemm<0,1,_MM_HINT_T0,256>}, {"spread d1 T0 256 HUGE", Gemm<1,1,_MM_HINT_T0,256>}, {"none 256 HUGE", Gemm<2,1,_MM_HINT_T0,256>},
    {"orig d1 T0 256", Gemm<0,1,_MM_HINT_T0,256>}, {"none 256", Gemm<2,1,_MM_HINT_T0,256>},
    {"spread d1 T0 256", Gemm<1,1,_MM_HINT_T0,256>}, {"spread d2 T0 256", Gemm<1,2,_MM_HINT_T0,256>},
    {"spread d4 T1 256", Gemm<1,4,_MM_HINT_T1,256>}, {"orig d1 T0 128", Gemm<0,1,_MM_HINT_T0,128>},
  };
  std::vector<float> a(m * k), c(m * n);
  for (auto& x : a) x = rand() / (float)RAND_MAX;
  // Past the last panel the prefetch reaches up to 4 slices of 256 x 16 further: padded so it stays in bounds.
  size_t wn = NumPanels(n) * k * kPanel + 16 * 16 * 1024; size_t bytes = (wn * 4 + (2 << 20) - 1) / (2 << 20) * (2 << 20);
  std::vector<float*> w(copies), wh(copies);
  for (auto& v : w) { v = (float*)aligned_alloc(2 << 20, bytes); madvise(v, bytes, MADV_NOHUGEPAGE); for (size_t i = 0; i < wn; ++i) v[i] = rand() / (float)RAND_MAX; }
  for (auto& v : wh) { v = (float*)aligned_alloc(2 << 20, bytes); madvise(v, bytes, MADV_HUGEPAGE); for (size_t i = 0; i < wn; ++i) v[i] = rand() / (float)RAND_MAX; }
  { FILE* f = fopen("/proc/self/smaps_rollup", "r"); char line[256]; while (fgets(line, 256, f)) if (strstr(line, "AnonHuge")) fputs(line, stdout); fclose(f); }
  std::vector<std::vector<double>> t(vs.size());
  for (int r = 0; r < rounds; ++r)
    for (size_t j = 0; j < vs.size(); ++j) {
      size_t v = (r % 2) ? vs.size() - 1 - j : j;
      auto t0 = std::chrono::steady_clock::now();
      for (int cpy = 0; cpy < copies; ++cpy) vs[v].fn(a.data(), m, k, strstr(vs[v].name, "HUGE") ? wh[cpy] : w[cpy], n, c.data());
      t[v].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / copies);
      if (r == 0) {  // every variant must compute the product: a fast wrong kernel reads nothing
        const float* wlast = strstr(vs[v].name, "HUGE") ? wh[copies - 1] : w[copies - 1];
        for (int64_t r0 : {int64_t(0), m / 2, m - 1})
          for (int64_t j : {int64_t(0), n / 3, n - 1}) {
            double want = Reference(a.data(), k, wlast, r0, j);
            if (std::abs(c[r0 * n + j] - want) > 1e-3 * std::abs(want) + 1e-3) {
              fprintf(stderr, "%s: c[%ld][%ld] = %f, want %f\n", vs[v].name, r0, j, c[r0 * n + j], want);
              return 1;
            }
          }
      }
    }
  for (size_t v = 0; v < vs.size(); ++v) {
    std::sort(t[v].begin(), t[v].end());
    double f = 2.0 * m * k * n / 1e9;
    printf("%-20s best %.1f median %.1f GFLOP/s\n", vs[v].name, f / t[v][0], f / t[v][t[v].size() / 2]);
  }
}
