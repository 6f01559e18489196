// The kernel's hot loops for x86-64 with AVX2 + FMA (built with -mavx2 -mfma; chosen at run
// time by kan_kernel.cpp only on CPUs that have both).
//
// Same arithmetic as kan_kernel_impl.h, operation for operation (int -> float conversion,
// one multiply by the scale, the same fma chains in the same order), so the results are
// bit-identical to the generic variant; only the schedule differs: 8 lanes per register,
// several independent output chains in flight to hide FMA latency, codebook terms gathered
// from the coefficient table, and 16-bit words decoded without vector shifts (see Field16).
// The int8 mode's loops (silu, B8 windows, table rows, lane and batch) are
// kan_kernel_avx2_int8.h's.
#include <immintrin.h>

#include "kan_kernel_plan.h"

namespace lutham {
namespace avx2 {
#include "kan_kernel_impl.h"
#include "kan_kernel_int8.h"

#include "kan_kernel_avx2_body.h"
#include "kan_kernel_avx2_int8.h"

const KernelOps& ops() {
  static const KernelOps k = {
      &bspline8,
      [](const float* columns, uint32_t K, const float* basis, uint32_t start, uint32_t width, float* P) {
        table_row(columns, K, basis, start, width, P);
      },
      [](const KanLayerView& L, bool table, const float* silu, const float* bsum, const float* basis,
         const uint32_t* start, float* P, uint32_t p0, uint32_t p1, float* y) {
        with_layout<Lane>(L, table, silu, bsum, basis, start, P, p0, p1, y);
      },
      [](const KanLayerView& L, bool table, const SamplePlan& S, uint32_t group, uint32_t p0, uint32_t p1,
         float* scratch, float* y, size_t batch) {
        with_layout<Sample>(L, table, S, group, p0, p1, scratch, y, batch);
      },
      &int8_silu_avx2,
      &int8_rows_avx2,
      &int8_quantize_silu,
      &int8_table_avx2,
      &int8_lane_avx2,
      &int8_batch_avx2,
  };
  return k;
}

}  // namespace avx2
}  // namespace lutham
