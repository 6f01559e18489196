// The kernel's hot loops for any CPU (and, on aarch64, vectorized for NEON by the compiler).
#include "kan_kernel_plan.h"

namespace lutham {
namespace generic {
#include "kan_kernel_impl.h"
#include "kan_kernel_int8.h"

const KernelOps& ops() {
  static const KernelOps k = {
      [](const float* knots, uint32_t n_knots, uint32_t order, const float* x, float* values, uint32_t* starts,
         float* sums) {
        for (int l = 0; l < 8; ++l)
          sums[l] = bspline_window(knots, n_knots, order, x[l], values + l * (order + 1), starts + l);
      },
      [](const float* columns, uint32_t K, const float* basis, uint32_t start, uint32_t width, float* P) {
        table_row(columns, K, basis, start, width, P);
      },
      [](const KanLayerView& L, bool table, const float* silu, const float* bsum, const float* basis,
         const uint32_t* start, float* P, uint32_t p0, uint32_t p1, float* y) {
        with_layout<LaneFn>(L, table, silu, bsum, basis, start, P, p0, p1, y);
      },
      [](const KanLayerView& L, bool table, const SamplePlan& S, uint32_t group, uint32_t p0, uint32_t p1,
         float* scratch, float* y, size_t batch) {
        with_layout<SampleFn>(L, table, S, group, p0, p1, scratch, y, batch);
      },
      &int8_silu_block,
      &int8_rows,
      &int8_quantize_silu,
      &int8_table_row_major,
      &int8_lane,
      &int8_batch,
  };
  return k;
}
}  // namespace generic
}  // namespace lutham
