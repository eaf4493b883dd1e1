// Matmuls against weights packed once by MKL (cblas_sgemm_pack), for the decoder's projections.
//
// A plain sgemm repacks the weight into MKL's panel layout on every call. At prefill's
// thousands of rows that cost is spread thin; at decode's 64 rows it is a large share of the
// call, and on the LM head (1024 x 103,424) it is most of the gap to the 2048^2 peak. Packing at
// load moves it out of the step (benchmarks/decode_profile.py measures both in one run). The
// packed buffer works for any number of rows (MKL sizes it from K and N only).
//
// MKL comes from Paddle's own libmklml_intel (the one its matmul calls); its cblas prototypes are
// declared here because the wheel ships no MKL headers. Enum values are MKL's (mkl_cblas.h).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "paddle/extension.h"

extern "C" {
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k);
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest);
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc);
}

namespace {

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;
// The row count the panels are laid out for. The packed buffer serves every row count (its size
// depends on K and N only), but its speed does not: laid out for 64 rows, prefill's 2048-row
// calls ran 7-9% slower than a plain sgemm; for 2048 they run 3-10% faster, and decode's 64-row
// calls keep their 17-20% gain (alternating ABBA in one process, gate_up and down shapes).
constexpr int kPackRows = 2048;

void CheckFloat32Cpu(const paddle::Tensor& t, const char* what) {
  PD_CHECK(t.is_cpu() && t.dtype() == paddle::DataType::FLOAT32, what, " must be a float32 CPU tensor");
}

}  // namespace

// weight [K, N] row-major (or [N, K] when transposed: a tied LM head is the embedding [V, H])
// -> MKL's packed panels of the [K, N] operand (a flat float32 buffer).
std::vector<paddle::Tensor> PackWeight(const paddle::Tensor& weight, bool transposed) {
  CheckFloat32Cpu(weight, "weight");
  PD_CHECK(weight.shape().size() == 2, "weight must be 2-D");
  const int rows = static_cast<int>(weight.shape()[0]), cols = static_cast<int>(weight.shape()[1]);
  const int k = transposed ? cols : rows, n = transposed ? rows : cols;
  const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, kPackRows, n, k);
  auto packed = paddle::empty({static_cast<int64_t>((bytes + 3) / 4)}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  cblas_sgemm_pack(kRowMajor, kBMatrix, transposed ? kTrans : kNoTrans, kPackRows, n, k, 1.f,
                   weight.data<float>(), cols, packed.data<float>());
  return {packed};
}

// residual + x [M, K] @ packed weight [K, N]; residual is [M, N], a bias [N] or empty ([0]).
std::vector<paddle::Tensor> PackedMatmul(const paddle::Tensor& x, const paddle::Tensor& packed,
                                         const paddle::Tensor& residual, int64_t n) {
  CheckFloat32Cpu(x, "x");
  CheckFloat32Cpu(packed, "packed weight");
  PD_CHECK(x.shape().size() == 2, "x must be [M, K]");
  const int64_t m = x.shape()[0], k = x.shape()[1];
  auto out = paddle::empty({m, n}, paddle::DataType::FLOAT32, paddle::CPUPlace());
  if (m == 0) return {out};
  float* o = out.data<float>();
  float beta = 0.f;
  if (residual.numel() == m * n) {  // the residual add rides on the sgemm (beta = 1)
    CheckFloat32Cpu(residual, "residual");
    std::memcpy(o, residual.data<float>(), sizeof(float) * m * n);
    beta = 1.f;
  } else if (residual.numel() == n) {  // a bias, repeated on every row
    CheckFloat32Cpu(residual, "bias");
    const float* b = residual.data<float>();
    for (int64_t r = 0; r < m; ++r) std::copy(b, b + n, o + r * n);
    beta = 1.f;
  } else {
    PD_CHECK(residual.numel() == 0, "residual must be [M, N], [N] or empty");
  }
  cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, static_cast<int>(m), static_cast<int>(n),
                      static_cast<int>(k), x.data<float>(), static_cast<int>(k), packed.data<float>(),
                      static_cast<int>(n), beta, o, static_cast<int>(n));
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
    .Attrs({"n: int64_t"})
    .SetKernelFn(PD_KERNEL(PackedMatmul));
