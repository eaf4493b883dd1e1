// Probe for issue 17 (benchmarks/RESULTS.md, "AVX-512 on this host"): the AVX2 6x16 micro-kernel
// (kernels/cpu/panel_micro_kernel.h) against AVX-512 R x 16P ones (panel_micro_kernel_512.h) in
// the engine's loop (rows in chunks, panels claimed 4 at a time, K in slices, the next slice
// prefetched over the row tiles), variants interleaved in one process, each result checked.
//
//   g++ -O3 -mavx2 -mfma -fopenmp -std=c++17 -o /tmp/probe512 benchmarks/panel_gemm_probe512.cc
//   OMP_NUM_THREADS=2 /tmp/probe512 64 1024 6144 20 8   # M K N rounds copies
#include <immintrin.h>
#include <omp.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "../kernels/cpu/panel_micro_kernel.h"
#include "../kernels/cpu/panel_micro_kernel_512.h"
constexpr int kPanel = 16;
int64_t NumPanels(int64_t n) { return (n + kPanel - 1) / kPanel; }
template <int DEPTH>
void Gemm2(const float* a, int64_t m, int64_t k, const float* panels, int64_t n, float* c) {
#pragma omp parallel
  for (int64_t i0 = 0; i0 < m; i0 += 256) {
    const int64_t rows = std::min<int64_t>(256, m - i0);
#pragma omp for schedule(monotonic : dynamic, 4)
    for (int64_t p = 0; p < NumPanels(n); ++p) {
      const float* panel = panels + p * k * kPanel;
      for (int64_t k0 = 0; k0 < k; k0 += DEPTH) {
        const int kc = std::min<int64_t>(DEPTH, k - k0);
        const float* next = panel + (k0 + kc) * kPanel;
        int tiles = std::max<int64_t>(1, rows / 6), per = (kc + tiles - 1) / tiles;
        int64_t i = 0; int t = 0;
        for (; i + 6 <= rows; i += 6, ++t)
          panel::MicroKernel<6>(a + (i0 + i) * k + k0, k, panel + k0 * kPanel, kPanel, kc, c + (i0 + i) * n + p * kPanel, n, k0 > 0, 16, next + std::min(kc, t * per) * kPanel, std::max(0, std::min(per, kc - t * per)));
        panel::ForRowTail(rows - i, [&](auto r) { panel::MicroKernel<decltype(r)::value>(a + (i0 + i) * k + k0, k, panel + k0 * kPanel, kPanel, kc, c + (i0 + i) * n + p * kPanel, n, k0 > 0, 16, nullptr, 0); });
      }
    }
  }
}
template <int R, int P, int DEPTH, int RB>
__attribute__((target("avx512f"))) void Group(const float* a, int64_t rows, int64_t k, const float* panel, int64_t n, float* c, int64_t i0, int64_t p) {
  const int64_t stride = k * kPanel;
  for (int64_t k0 = 0; k0 < k; k0 += DEPTH) {
    const int kc = std::min<int64_t>(DEPTH, k - k0);
    const float* next = k0 + kc < k ? panel + (k0 + kc) * kPanel : panel + P * stride;
    int tiles = std::max<int64_t>(1, rows / R), per = (kc + tiles - 1) / tiles;
    int64_t i = 0; int t = 0;
    for (; i + R <= rows; i += R, ++t)
      panel512::MicroKernel<R, P>(a + (i0 + i) * k + k0, k, panel + k0 * kPanel, kPanel, stride, kc, c + (i0 + i) * n + p * kPanel, n, k0 > 0, 16 * P, next + std::min(kc, t * per) * kPanel, std::max(0, std::min(per, kc - t * per)));
    for (; i < rows; ++i)
      panel512::MicroKernel<1, P>(a + (i0 + i) * k + k0, k, panel + k0 * kPanel, kPanel, stride, kc, c + (i0 + i) * n + p * kPanel, n, k0 > 0, 16 * P, nullptr, 0);
  }
}
template <int R, int P, int DEPTH, int RB>
void Gemm5(const float* a, int64_t m, int64_t k, const float* panels, int64_t n, float* c) {
  const int64_t groups = NumPanels(n) / P;
#pragma omp parallel
  for (int64_t i0 = 0; i0 < m; i0 += RB) {
    const int64_t rows = std::min<int64_t>(RB, m - i0);
#pragma omp for schedule(monotonic : dynamic, 4 / P)
    for (int64_t g = 0; g < groups; ++g) Group<R, P, DEPTH, RB>(a, rows, k, panels + g * P * k * kPanel, n, c, i0, g * P);
  }
}
typedef void (*Fn)(const float*, int64_t, int64_t, const float*, int64_t, float*);
struct V { const char* name; Fn fn; };
int main(int argc, char** argv) {
  if (argc != 6) { fprintf(stderr, "usage: %s M K N rounds copies\n", argv[0]); return 2; }
  int64_t m = atoi(argv[1]), k = atoi(argv[2]), n = atoi(argv[3]); int rounds = atoi(argv[4]), copies = atoi(argv[5]);
  std::vector<V> vs = {{"avx2 6x16 d256", Gemm2<256>}, {"512 8x32 d256", Gemm5<8,2,256,256>}, {"512 8x32 d128", Gemm5<8,2,128,256>},
    {"512 12x32 d256", Gemm5<12,2,256,256>}, {"512 12x32 d128", Gemm5<12,2,128,256>}, {"512 4x64 d128", Gemm5<4,4,128,256>}, {"512 8x16 d256", Gemm5<8,1,256,256>},
    {"512 8x32 d256 rb128", Gemm5<8,2,256,128>}, {"512 8x32 d256 rb512", Gemm5<8,2,256,512>}};
  std::vector<float> a(m * k), c(m * n);
  for (auto& x : a) x = rand() / (float)RAND_MAX - 0.5f;
  size_t wn = NumPanels(n) * k * kPanel + 64 * 1024;
  std::vector<std::vector<float>> w(copies, std::vector<float>(wn));
  for (auto& v : w) for (auto& x : v) x = rand() / (float)RAND_MAX - 0.5f;
  std::vector<std::vector<double>> t(vs.size());
  for (int r = 0; r < rounds; ++r)
    for (size_t j = 0; j < vs.size(); ++j) {
      size_t v = (r % 2) ? vs.size() - 1 - j : j;
      auto t0 = std::chrono::steady_clock::now();
      for (int cp = 0; cp < copies; ++cp) vs[v].fn(a.data(), m, k, w[cp].data(), n, c.data());
      t[v].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / copies);
      if (r == 0) for (int64_t r0 : {int64_t(0), m / 2, m - 1}) for (int64_t jj : {int64_t(0), n / 3, n - 1}) {
        double want = 0; for (int64_t kk = 0; kk < k; ++kk) want += double(a[r0 * k + kk]) * w[copies - 1][((jj / 16) * k + kk) * 16 + jj % 16];
        if (std::abs(c[r0 * n + jj] - want) > 1e-3 * std::abs(want) + 1e-3) { fprintf(stderr, "%s wrong %ld %ld %f %f\n", vs[v].name, r0, jj, c[r0*n+jj], want); return 1; }
      }
    }
  for (size_t v = 0; v < vs.size(); ++v) { std::sort(t[v].begin(), t[v].end()); double f = 2.0 * m * k * n / 1e9;
    printf("%-22s best %.1f median %.1f GFLOP/s\n", vs[v].name, f / t[v][0], f / t[v][t[v].size() / 2]); }
}
