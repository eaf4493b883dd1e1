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
#include <limits>
#include <vector>

#include "paddle/extension.h"

#include "attention_math.h"

namespace {

using namespace bi_attention;

constexpr int kQueryTile = 8;  // query tokens per work item (prefill); decode has 1
// Keys per pass: 16 rows of K (or V) stay in L1 while every row of the item reads them; a
// whole 64-token block of one head is 32 KB, as large as L1, and would be read from L2.
constexpr int64_t kKeyChunk = 16;
// Below this many multiply-adds a call runs on one thread: a parallel region costs a wake-up
// and a barrier (~3 us here). Two threads already win at 2^15 (15.6 -> 14.7 us) and halve a
// decode of 64 sequences (2^20: 168 -> 99 us). Small engine steps are held to one thread by
// the model runner anyway (worker/engine/model_runner.py, _PARALLEL_MACS).
constexpr int64_t kParallelWork = int64_t{1} << 16;

struct WorkItem {
  int32_t seq, kv_head, q_begin, q_end;  // query tokens [q_begin, q_end) of the sequence
};

struct Shapes {
  int64_t num_heads, num_kv_heads, block_size, head_dim, max_blocks;
};

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
      l(rows, 0.f), scores(rows * bs), spare(d);
  std::vector<const float*> q(rows);
  std::vector<int64_t> last(rows), seen(rows);  // last key position each row may see; its keys in a block
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = w.q_begin + r / group, h = w.kv_head * group + r % group;
    q[r] = query + ((qsl[w.seq] + j) * s.num_heads + h) * d;
    last[r] = seq_len - q_len + j;
  }
  const int64_t max_last = last[rows - 1];
  const int32_t* table = block_tables + w.seq * s.max_blocks;
  const int64_t head_stride = bs * d, block_stride = s.num_kv_heads * head_stride;
  PrefetchStream stream;
  // Floats to prefetch per Q.K call, so one head of a block spreads over the block's calls.
  const int64_t slice = std::max<int64_t>(16, head_stride / (rows * ((bs + kKeyChunk - 1) / kKeyChunk)));
  for (int64_t blk = 0; blk * bs <= max_last; ++blk) {
    const int64_t start = blk * bs;
    const int64_t off = table[blk] * block_stride + w.kv_head * head_stride;
    const float* kb = k_cache + off;
    const float* vb = v_cache + off;
    // While Q.K runs over this block, its V streams in; while P.V runs, the next block's K does.
    stream.Reset(vb, head_stride);
    int64_t n_max = 0;  // keys of this block the furthest row sees
    for (int64_t r = 0; r < rows; ++r) {
      seen[r] = std::max<int64_t>(0, std::min<int64_t>(bs, last[r] - start + 1));
      n_max = std::max(n_max, seen[r]);
    }
    // Q.K in chunks of keys small enough to stay in L1 while every row of the item reads them.
    for (int64_t c = 0; c < n_max; c += kKeyChunk) {
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t n = std::min(seen[r], c + kKeyChunk) - c;
        stream.Step(slice);
        if (n > 0) QueryKeys(q[r], kb + c * d, n, d, scale, scores.data() + r * bs + c);
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t n = seen[r];
      float* sc = scores.data() + r * bs;
      std::fill(sc + n, sc + bs, 0.f);  // masked keys weigh nothing in the P.V pass
      if (n == 0) continue;
      const float new_m = std::max(m[r], *std::max_element(sc, sc + n));
      const float correction = std::exp(m[r] - new_m);  // exp(-inf) = 0 on the first block
      const float sum = ExpShifted(sc, n, new_m);
      if (correction != 1.f) Scale(correction, acc.data() + r * d, d);
      l[r] = l[r] * correction + sum;
      m[r] = new_m;
    }
    stream.Step(head_stride);  // whatever of V is left
    if ((blk + 1) * bs <= max_last) {
      stream.Reset(k_cache + table[blk + 1] * block_stride + w.kv_head * head_stride, head_stride);
    }
    for (int64_t c = 0; c < n_max; c += kKeyChunk) {
      const int64_t n = std::min(n_max, c + kKeyChunk) - c;
      for (int64_t r = 0; r < rows; r += 2) {
        stream.Step(slice * 2);
        const int64_t r1 = std::min(r + 1, rows - 1);  // an odd last row pairs with itself
        float* a1 = r1 == r ? spare.data() : acc.data() + r1 * d;
        ProbsValues(scores.data() + r * bs + c, scores.data() + r1 * bs + c, vb + c * d, n, d,
                    acc.data() + r * d, a1);
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = w.q_begin + r / group, h = w.kv_head * group + r % group;
    float* o = out + ((qsl[w.seq] + j) * s.num_heads + h) * d;
    const float inv = 1.f / l[r];
    for (int64_t i = 0; i < d; ++i) o[i] = acc[r * d + i] * inv;
  }
}

// Bad host arrays would make the kernel read outside the cache: reject them, saying where.
void CheckBatch(const int32_t* qsl, const int32_t* lens, const int32_t* tables, int64_t num_seqs,
                int64_t num_tokens, int64_t num_blocks, const Shapes& s) {
  PD_CHECK(qsl[0] == 0 && qsl[num_seqs] == num_tokens, "query_start_loc must run from 0 to ", num_tokens);
  for (int64_t b = 0; b < num_seqs; ++b) {
    const int64_t q_len = qsl[b + 1] - qsl[b], nb = (lens[b] + s.block_size - 1) / s.block_size;
    PD_CHECK(q_len >= 1 && q_len <= lens[b], "sequence ", b, ": ", q_len, " queries for a context of ", lens[b]);
    PD_CHECK(nb <= s.max_blocks, "sequence ", b, ": context ", lens[b], " needs ", nb, " blocks, table has ",
             s.max_blocks);
    for (int64_t i = 0; i < nb; ++i) {
      const int32_t id = tables[b * s.max_blocks + i];
      PD_CHECK(id >= 0 && id < num_blocks, "sequence ", b, ": block id ", id, " outside the cache of ", num_blocks);
    }
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
  PD_CHECK(query_start_loc.shape()[0] == num_seqs + 1 && block_tables.shape()[0] == num_seqs,
           "query_start_loc [B+1], seq_lens [B] and block_tables [B, M] disagree on B");
  const int32_t* qsl = query_start_loc.data<int32_t>();
  const int32_t* lens = seq_lens.data<int32_t>();
  const int32_t* tables = block_tables.data<int32_t>();
  CheckBatch(qsl, lens, tables, num_seqs, qs[0], cs[0], s);
  const std::vector<WorkItem> items = PlanItems(qsl, num_seqs, s.num_kv_heads);
  const float* q = query.data<float>();
  const float* kc = key_cache.data<float>();
  const float* vc = value_cache.data<float>();
  float* o = out.data<float>();
  const int64_t n = static_cast<int64_t>(items.size());
  int64_t work = 0;  // multiply-adds: rows x keys x head_dim x 2 (QK and PV)
  for (const WorkItem& w : items) work += (w.q_end - w.q_begin) * (s.num_heads / s.num_kv_heads) * lens[w.seq];
  work *= 2 * s.head_dim;
  // monotonic: GCC's default (nonmonotonic) dynamic loop calls entry points Paddle's libiomp5
  // lacks; they bind to a libgomp loaded beside it and every thread then runs every item.
#pragma omp parallel for schedule(monotonic : dynamic, 1) if (work > kParallelWork)
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
