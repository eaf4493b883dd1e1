// The machine's fp32 arithmetic ceiling: every core issuing fused multiply-adds on independent
// register chains and nothing else (no loads, no stores), for worker/bench/fma_ceiling.py.
// Twelve chains cover the FMA latency on both FMA pipes of current x86 cores; a matmul or a
// whole model step can approach this figure but never pass it.
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>

struct job {
  int64_t iterations;
  int wide;  // 1: 512-bit vectors (AVX-512), 0: 256-bit (AVX2)
  float out;
};

#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

__attribute__((target("avx2,fma"))) static float chains_256(int64_t iterations) {
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
#define INIT(i) __m256 c##i = _mm256_set1_ps((float)i);
#define STEP(i) c##i = _mm256_fmadd_ps(c##i, a, b);
#define SUM(i) +c##i
  CHAINS(INIT)
  for (int64_t n = 0; n < iterations; ++n) {
    CHAINS(STEP)
  }
  __m256 total = _mm256_setzero_ps() CHAINS(SUM);
  float lanes[8];
  _mm256_storeu_ps(lanes, total);
  return lanes[0] + lanes[7];
#undef INIT
#undef STEP
#undef SUM
}

__attribute__((target("avx512f"))) static float chains_512(int64_t iterations) {
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
#define INIT(i) __m512 c##i = _mm512_set1_ps((float)i);
#define STEP(i) c##i = _mm512_fmadd_ps(c##i, a, b);
#define SUM(i) +c##i
  CHAINS(INIT)
  for (int64_t n = 0; n < iterations; ++n) {
    CHAINS(STEP)
  }
  __m512 total = _mm512_setzero_ps() CHAINS(SUM);
  return _mm512_reduce_add_ps(total);
#undef INIT
#undef STEP
#undef SUM
}

static void* run(void* arg) {
  struct job* j = arg;
  j->out = j->wide ? chains_512(j->iterations) : chains_256(j->iterations);
  return 0;
}

// Floating-point operations done by `threads` threads of `iterations` rounds each (the caller
// times the call); the sum of the chains is returned through `sink` so no chain is dead code.
double fma_ceiling_flops(int64_t iterations, int threads, int wide, float* sink) {
  pthread_t tids[256];
  struct job jobs[256];
  if (threads > 256) threads = 256;
  for (int i = 0; i < threads; ++i) {
    jobs[i] = (struct job){iterations, wide, 0.f};
    pthread_create(&tids[i], 0, run, &jobs[i]);
  }
  *sink = 0.f;
  for (int i = 0; i < threads; ++i) {
    pthread_join(tids[i], 0);
    *sink += jobs[i].out;
  }
  return (double)iterations * threads * 12 * (wide ? 16 : 8) * 2;
}
