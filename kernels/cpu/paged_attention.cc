// Fast CPU paged attention: a flat batch of queries against the paged KV cache, in place.
//
// Cache layout [num_blocks, num_kv_heads, block_size, head_dim] (float32). One work item is
// (sequence, kv head, tile of query tokens): every query head of the kv head's group reads
// the same K/V rows, so each block is loaded once per tile and used by group x tile rows.
// Blocks are read where they lie (no gather), with an online softmax (running max and sum),
// bottom-right causal: query j of a sequence of length L with q_len queries sits at
// position L - q_len + j. OpenMP spreads the items over the cores.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "paddle/extension.h"

namespace {

constexpr int kQueryTile = 8;  // query tokens per work item (prefill); decode has 1

struct WorkItem {
  int32_t seq, kv_head, q_begin, q_end;  // query tokens [q_begin, q_end) of the sequence
};

struct Shapes {
  int64_t num_heads, num_kv_heads, block_size, head_dim, max_blocks;
};

inline float Dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline void Axpy(float alpha, const float* __restrict x, float* __restrict y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// exp(x) for x <= 0 (scores minus their running max), vectorisable: 2^n * p(r) with a
// degree-6 polynomial on r in [-ln2/2, ln2/2]; relative error ~2e-7, and 0 below -87.
inline float ExpNonPositive(float x) {
  x = std::max(x, -87.f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline void Scale(float alpha, float* __restrict y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] *= alpha;
}

std::vector<WorkItem> PlanItems(const int32_t* qsl, int64_t num_seqs, int64_t num_kv_heads) {
  std::vector<WorkItem> items;
  for (int32_t b = 0; b < num_seqs; ++b) {
    const int32_t q_len = qsl[b + 1] - qsl[b];
    for (int32_t q0 = 0; q0 < q_len; q0 += kQueryTile) {
      for (int32_t g = 0; g < num_kv_heads; ++g) {
        items.push_back({b, g, q0, std::min(q0 + kQueryTile, q_len)});
      }
    }
  }
  return items;
}

// One work item: rows are (query token, head of the group); acc/m/l are its scratch.
void AttendItem(const WorkItem& w, const float* query, const float* k_cache, const float* v_cache,
                const int32_t* qsl, const int32_t* seq_lens, const int32_t* block_tables,
                const Shapes& s, float scale, float* out) {
  const int64_t group = s.num_heads / s.num_kv_heads, d = s.head_dim, bs = s.block_size;
  const int64_t seq_len = seq_lens[w.seq], q_len = qsl[w.seq + 1] - qsl[w.seq];
  const int64_t rows = (w.q_end - w.q_begin) * group;
  std::vector<float> acc(rows * d, 0.f), m(rows, -std::numeric_limits<float>::infinity()),
      l(rows, 0.f), scores(rows * bs);
  std::vector<const float*> q(rows);
  std::vector<int64_t> last(rows);  // last key position each row may see
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = w.q_begin + r / group, h = w.kv_head * group + r % group;
    q[r] = query + ((qsl[w.seq] + j) * s.num_heads + h) * d;
    last[r] = seq_len - q_len + j;
  }
  const int64_t max_last = last[rows - 1];
  const int32_t* table = block_tables + w.seq * s.max_blocks;
  const int64_t head_stride = bs * d, block_stride = s.num_kv_heads * head_stride;
  for (int64_t blk = 0; blk * bs <= max_last; ++blk) {
    const int64_t start = blk * bs;
    const int64_t off = table[blk] * block_stride + w.kv_head * head_stride;
    const float* kb = k_cache + off;
    const float* vb = v_cache + off;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = std::min<int64_t>(bs, last[r] - start + 1);
      if (n <= 0) continue;
      float* sc = scores.data() + r * bs;
      float block_max = -std::numeric_limits<float>::infinity();
      for (int64_t t = 0; t < n; ++t) {
        sc[t] = Dot(q[r], kb + t * d, d) * scale;
        block_max = std::max(block_max, sc[t]);
      }
      const float new_m = std::max(m[r], block_max);
      const float correction = std::exp(m[r] - new_m);  // exp(-inf) = 0 on the first block
      float sum = 0.f;
#pragma omp simd reduction(+ : sum)
      for (int64_t t = 0; t < n; ++t) {
        sc[t] = ExpNonPositive(sc[t] - new_m);
        sum += sc[t];
      }
      float* a = acc.data() + r * d;
      if (correction != 1.f) Scale(correction, a, d);
      for (int64_t t = 0; t < n; ++t) Axpy(sc[t], vb + t * d, a, d);
      l[r] = l[r] * correction + sum;
      m[r] = new_m;
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = w.q_begin + r / group, h = w.kv_head * group + r % group;
    float* o = out + ((qsl[w.seq] + j) * s.num_heads + h) * d;
    const float inv = 1.f / l[r];
    for (int64_t i = 0; i < d; ++i) o[i] = acc[r * d + i] * inv;
  }
}

}  // namespace

std::vector<paddle::Tensor> PagedAttention(const paddle::Tensor& query, const paddle::Tensor& key_cache,
                                           const paddle::Tensor& value_cache,
                                           const paddle::Tensor& query_start_loc,
                                           const paddle::Tensor& seq_lens,
                                           const paddle::Tensor& block_tables, float scale) {
  PD_CHECK(query.is_cpu() && key_cache.is_cpu(), "bi_paged_attention runs on CPU tensors only");
  PD_CHECK(query.dtype() == paddle::DataType::FLOAT32 && key_cache.dtype() == paddle::DataType::FLOAT32,
           "bi_paged_attention supports float32 only");
  const auto& qs = query.shape();
  const auto& cs = key_cache.shape();
  PD_CHECK(qs.size() == 3 && cs.size() == 4 && qs[2] == cs[3], "query [T,Hq,D] vs cache [NB,Hkv,BS,D] mismatch");
  PD_CHECK(qs[1] % cs[1] == 0, "query heads must be a multiple of kv heads");
  const Shapes s{qs[1], cs[1], cs[2], cs[3], block_tables.shape()[1]};
  const int64_t num_seqs = seq_lens.shape()[0];
  auto out = paddle::empty(qs, paddle::DataType::FLOAT32, paddle::CPUPlace());
  const int32_t* qsl = query_start_loc.data<int32_t>();
  const std::vector<WorkItem> items = PlanItems(qsl, num_seqs, s.num_kv_heads);
  const float* q = query.data<float>();
  const float* kc = key_cache.data<float>();
  const float* vc = value_cache.data<float>();
  const int32_t* lens = seq_lens.data<int32_t>();
  const int32_t* tables = block_tables.data<int32_t>();
  float* o = out.data<float>();
  const int64_t n = static_cast<int64_t>(items.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) AttendItem(items[i], q, kc, vc, qsl, lens, tables, s, scale, o);
  return {out};
}

// Scatter key/value [T, Hkv, D] into the caches at slot_mapping [T] (block * BS + offset).
void WriteKV(paddle::Tensor& key_cache, paddle::Tensor& value_cache, const paddle::Tensor& key,
             const paddle::Tensor& value, const paddle::Tensor& slot_mapping) {
  PD_CHECK(key_cache.is_cpu() && key.is_cpu(), "bi_write_kv runs on CPU tensors only");
  PD_CHECK(key_cache.dtype() == paddle::DataType::FLOAT32 && key.dtype() == paddle::DataType::FLOAT32,
           "bi_write_kv supports float32 only");
  const auto& cs = key_cache.shape();
  const int64_t hkv = cs[1], bs = cs[2], d = cs[3], tokens = key.shape()[0];
  PD_CHECK(key.shape().size() == 3 && key.shape()[1] == hkv && key.shape()[2] == d,
           "key [T,Hkv,D] does not match the cache");
  const int64_t* slots = slot_mapping.data<int64_t>();
  const int64_t capacity = cs[0] * bs;
  for (int64_t t = 0; t < tokens; ++t) {
    PD_CHECK(slots[t] >= 0 && slots[t] < capacity, "slot ", slots[t], " outside the cache of ", capacity);
  }
  float* kc = key_cache.data<float>();
  float* vc = value_cache.data<float>();
  const float* k = key.data<float>();
  const float* v = value.data<float>();
#pragma omp parallel for if (tokens > 256)
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t blk = slots[t] / bs, off = slots[t] % bs;
    for (int64_t h = 0; h < hkv; ++h) {
      const int64_t dst = ((blk * hkv + h) * bs + off) * d, src = (t * hkv + h) * d;
      std::copy(k + src, k + src + d, kc + dst);
      std::copy(v + src, v + src + d, vc + dst);
    }
  }
}

PD_BUILD_OP(bi_paged_attention)
    .Inputs({"query", "key_cache", "value_cache", "query_start_loc", "seq_lens", "block_tables"})
    .Outputs({"out"})
    .Attrs({"scale: float"})
    .SetKernelFn(PD_KERNEL(PagedAttention));

PD_BUILD_OP(bi_write_kv)
    .Inputs({"key_cache", "value_cache", "key", "value", "slot_mapping"})
    .Outputs({"key_cache_out", "value_cache_out"})
    .SetInplaceMap({{"key_cache", "key_cache_out"}, {"value_cache", "value_cache_out"}})
    .SetKernelFn(PD_KERNEL(WriteKV));
