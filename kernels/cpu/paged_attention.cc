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
#include "panel_micro_kernel.h"
#include "panel_micro_kernel_512.h"

namespace {

using namespace bi_attention;
using panel::kPanel;
using panel::kRows;
using panel::RowTiles;

// Query tokens per work item (prefill; decode has 1): each block's K is transposed once per item,
// so more rows share it. 16 against 8: a prefill step's attention 5% faster (15.5 vs 16.4 ms a
// layer, interleaved in one process, 2026-12-06); 32 no better.
constexpr int kQueryTile = 16;
// Keys per pass of the row-by-row path: 16 rows of K (or V) stay in L1 while every row reads them.
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

// kt[i][j] = keys[j][i] for i < d, j < n (keys are rows of d floats), zero for n <= j < 16: a
// [d x 16] panel (kt's rows `ldk` apart) in L1 that every row of the item passes over to take its
// 16 scores at once.
void TransposeKeys(const float* __restrict keys, int64_t n, int64_t d, float* __restrict kt, int64_t ldk) {
  if (n == kPanel && d % 8 == 0) {
    for (int64_t j0 = 0; j0 < kPanel; j0 += 8)
      for (int64_t i0 = 0; i0 < d; i0 += 8) Transpose8x8(keys + j0 * d + i0, d, kt + i0 * ldk + j0, ldk);
    return;
  }
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < kPanel; ++j) kt[i * ldk + j] = j < n ? keys[j * d + i] : 0.f;
}

// acc[r][i] += sum_t p[r][t] v[t][i] for columns i in [from, d): what 16-column tiles leave.
void ValuesTail(const float* p, int64_t ldp, int64_t rows, const float* v, int64_t n, int64_t d, int64_t from,
                float* acc) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = from; i < d; ++i) acc[r * d + i] += p[r * ldp + t] * v[t * d + i];
}

// One work item: rows are (query token, head of the group); each block's K and V are read from
// memory once and used by every row: from `tiled_rows` rows on as the panel GEMM's register
// tiles over K transposed 16 keys at a time (`wide`: its AVX-512 tiles, P.V 32 columns at a
// time), below it row by row.
void AttendItem(const WorkItem& w, const float* query, const float* k_cache, const float* v_cache,
                const int32_t* qsl, const int32_t* seq_lens, const int32_t* block_tables,
                const Shapes& s, float scale, int64_t tiled_rows, bool wide, float* out) {
  const int64_t group = s.num_heads / s.num_kv_heads, d = s.head_dim, bs = s.block_size;
  const int64_t seq_len = seq_lens[w.seq], q_len = qsl[w.seq + 1] - qsl[w.seq];
  const int64_t rows = (w.q_end - w.q_begin) * group;
  const bool tiled = rows >= tiled_rows;
  // The item's queries, scaled, as one [rows, d] matrix; scores [rows, bs] for one block.
  std::vector<float> qm(rows * d), acc(rows * d, 0.f), m(rows, -std::numeric_limits<float>::infinity()),
      l(rows, 0.f), scores(rows * bs), kt(tiled ? d * 2 * kPanel : 0), spare(d);
  std::vector<int64_t> last(rows), seen(rows);  // last key position each row may see; its keys in a block
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t j = w.q_begin + r / group, h = w.kv_head * group + r % group;
    const float* q = query + ((qsl[w.seq] + j) * s.num_heads + h) * d;
    for (int64_t i = 0; i < d; ++i) qm[r * d + i] = q[i] * scale;
    last[r] = seq_len - q_len + j;
  }
  const int64_t max_last = last[rows - 1];
  const int32_t* table = block_tables + w.seq * s.max_blocks;
  const int64_t head_stride = bs * d, block_stride = s.num_kv_heads * head_stride;
  // Floats to prefetch per row tile (tiled) or row (row by row) of each Q.K and P.V pass, so one
  // head of a block spreads over a pass: a burst of them would stall on the few miss slots.
  const int64_t tile_rows = wide ? panel512::kRows : kRows, value_cols = wide ? 2 * kPanel : kPanel;
  // Keys per Q.K pass: AVX-512 tiles take two 16-key panels side by side ([d][32]), as P.V does V.
  const int64_t key_step = tiled && wide ? 2 * kPanel : kPanel;
  const int64_t key_panels = (bs + key_step - 1) / key_step, tiles = (rows + tile_rows - 1) / tile_rows;
  const int64_t qk_steps = (tiled ? tiles : rows) * key_panels;
  const int64_t pv_steps =
      tiled ? tiles * ((d + value_cols - 1) / value_cols) : (rows + 1) / 2 * ((bs + kKeyChunk - 1) / kKeyChunk);
  const int64_t qk_slice = std::max<int64_t>(16, head_stride / qk_steps);
  const int64_t pv_slice = std::max<int64_t>(16, head_stride / pv_steps);
  PrefetchStream stream;
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
    // Scores of keys a row may not see are zeroed below.
    for (int64_t c = 0; c < n_max; c += key_step) {
      const int64_t n = std::min<int64_t>(key_step, n_max - c);
      const auto step = [&] { stream.Step(qk_slice); };
      if (tiled && wide) {
        const int64_t ldk = 2 * kPanel;
        TransposeKeys(kb + c * d, std::min<int64_t>(n, kPanel), d, kt.data(), ldk);
        TransposeKeys(kb + (c + kPanel) * d, std::max<int64_t>(0, n - kPanel), d, kt.data() + kPanel, ldk);
        panel512::RowTiles<2>(qm.data(), d, rows, kt.data(), ldk, kPanel, static_cast<int>(d), scores.data() + c, bs,
                              false, static_cast<int>(n), step);
      } else if (tiled) {
        TransposeKeys(kb + c * d, n, d, kt.data(), kPanel);
        RowTiles(qm.data(), d, rows, kt.data(), kPanel, static_cast<int>(d), scores.data() + c, bs, false,
                 static_cast<int>(n), step);
      } else {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t n_r = std::min(seen[r], c + kPanel) - c;  // a row's keys past its own are not computed
          stream.Step(qk_slice);
          if (n_r > 0) QueryKeys(qm.data() + r * d, kb + c * d, n_r, d, scores.data() + r * bs + c);
        }
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
    if (tiled) {
      int64_t col = 0;
      const auto step = [&] { stream.Step(pv_slice); };
      for (; wide && col + 2 * kPanel <= d; col += 2 * kPanel) {  // two 16-column panels of V, kPanel apart
        panel512::RowTiles<2>(scores.data(), bs, rows, vb + col, d, kPanel, static_cast<int>(n_max), acc.data() + col,
                              d, true, 2 * kPanel, step);
      }
      for (; col + kPanel <= d; col += kPanel) {
        RowTiles(scores.data(), bs, rows, vb + col, d, static_cast<int>(n_max), acc.data() + col, d, true, kPanel,
                 step);
      }
      if (col < d) ValuesTail(scores.data(), bs, rows, vb, n_max, d, col, acc.data());
    } else {
      for (int64_t c = 0; c < n_max; c += kKeyChunk) {
        const int64_t n = std::min(n_max, c + kKeyChunk) - c;
        for (int64_t r = 0; r < rows; r += 2) {
          stream.Step(pv_slice);
          const int64_t r1 = std::min(r + 1, rows - 1);  // an odd last row pairs with itself
          float* a1 = r1 == r ? spare.data() : acc.data() + r1 * d;
          ProbsValues(scores.data() + r * bs + c, scores.data() + r1 * bs + c, vb + c * d, n, d, acc.data() + r * d,
                      a1);
        }
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
                                           const paddle::Tensor& block_tables, float scale, int64_t tiled_rows,
                                           bool wide) {
  PD_CHECK(query.is_cpu() && key_cache.is_cpu(), "bi_paged_attention runs on CPU tensors only");
  PD_CHECK(!wide || __builtin_cpu_supports("avx512f"),
           "the AVX-512 attention tiles were asked for on a CPU without AVX-512F");
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
  for (int64_t i = 0; i < n; ++i) AttendItem(items[i], q, kc, vc, qsl, lens, tables, s, scale, tiled_rows, wide, o);
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
    .Attrs({"scale: float", "tiled_rows: int64_t", "wide: bool"})
    .SetKernelFn(PD_KERNEL(PagedAttention));

PD_BUILD_OP(bi_write_kv)
    .Inputs({"key_cache", "value_cache", "key", "value", "slot_mapping"})
    .Outputs({"key_cache_out", "value_cache_out"})
    .SetInplaceMap({{"key_cache", "key_cache_out"}, {"value_cache", "value_cache_out"}})
    .SetKernelFn(PD_KERNEL(WriteKV));
