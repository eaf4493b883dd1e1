// Read-only probe for benchmarks/kv_read_limit.py: sums every K and V block of the paged cache
// in the attention kernel's order (sequence x kv head items over OpenMP, blocks where they lie),
// doing nothing else. Its GB/s is what a kernel reading the cache in this order by ordinary loads
// can reach. monotonic: see the same pragma in kernels/cpu/paged_attention.cc.

#include <immintrin.h>

#include <vector>

#include "paddle/extension.h"

std::vector<paddle::Tensor> KVReadProbe(const paddle::Tensor& key_cache, const paddle::Tensor& value_cache,
                                        const paddle::Tensor& seq_lens, const paddle::Tensor& block_tables,
                                        int threads) {
  const auto& cs = key_cache.shape();  // [NB, Hkv, BS, D]
  const int64_t hkv = cs[1], bs = cs[2], head_stride = cs[2] * cs[3], num_seqs = seq_lens.shape()[0];
  const int64_t max_blocks = block_tables.shape()[1];
  const float* kc = key_cache.data<float>();
  const float* vc = value_cache.data<float>();
  const int32_t* lens = seq_lens.data<int32_t>();
  const int32_t* tables = block_tables.data<int32_t>();
  auto out = paddle::empty({num_seqs * hkv, 8}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  float* o = out.data<float>();
#pragma omp parallel for schedule(monotonic : dynamic, 1) num_threads(threads)
  for (int64_t item = 0; item < num_seqs * hkv; ++item) {
    const int64_t seq = item / hkv, head = item % hkv;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t blk = 0; blk * bs < lens[seq]; ++blk) {
      const int64_t off = (tables[seq * max_blocks + blk] * hkv + head) * head_stride;
      for (const float* p : {kc + off, vc + off}) {
        for (int64_t i = 0; i < head_stride; i += 32) {
          a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
          a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
          a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
          a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
        }
      }
    }
    _mm256_storeu_ps(o + item * 8, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  }
  return {out};
}

PD_BUILD_OP(bi_kv_read_probe)
    .Inputs({"key_cache", "value_cache", "seq_lens", "block_tables"})
    .Outputs({"out"})
    .Attrs({"threads: int"})
    .SetKernelFn(PD_KERNEL(KVReadProbe));
