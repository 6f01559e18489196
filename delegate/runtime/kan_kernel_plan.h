// Internal to the kernel: what kan_kernel.cpp (planning, bases, threading) and the per-ISA
// hot loops (kan_kernel_impl.h) share.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstddef>
#include <cstdint>

#include "kan_kernel.h"

namespace lutham {

// Per-sample values of the sample-vectorized path, samples padded to whole groups of 8.
struct SamplePlan {
  const float* silu_t = nullptr;    // [group][input][8]
  const float* bsum_t = nullptr;    // [group][input][8]
  const float* basis = nullptr;     // [(sample * in + input) * width + r]
  const uint32_t* start = nullptr;  // [sample * in + input]
  uint32_t input_block = 1;         // inputs whose coefficient table is built at once
};

// The hot loops of one instruction set.
struct KernelOps {
  // bspline_window (kan_kernel.h) for 8 inputs x[0..7] that share one knot row: values
  // [8][order + 1], starts[8], sums[8]; the same bits as 8 calls of bspline_window.
  void (*bspline8)(const float* knots, uint32_t n_knots, uint32_t order, const float* x, float* values,
                   uint32_t* starts, float* sums);
  void (*table_row)(const float* columns, uint32_t K, const float* basis, uint32_t start, uint32_t width, float* P);
  // table: the task's lane_table_floats(L) floats of scratch (when the layer tabulates).
  void (*lane)(const KanLayerView& L, bool table, const float* silu, const float* bsum, const float* basis,
               const uint32_t* start, float* P, uint32_t p0, uint32_t p1, float* y);
  void (*sample)(const KanLayerView& L, bool table, const SamplePlan& S, uint32_t group, uint32_t p0, uint32_t p1,
                 float* scratch, float* y, size_t batch);
};

// Inputs per block of the lane path. A task walks its panels block by block, so the block's
// coefficient-table rows (IB x K floats) are read from L2 by every panel instead of the
// whole table streaming through L2 once per panel (at 50 heads x 32 panels that traffic,
// not the weights, was the bottleneck). Each output's fma chain still runs over the inputs
// in order, so the blocking changes no bits.
inline uint32_t lane_input_block(const KanLayerView& L) {
  const size_t ib = (128u * 1024u) / (static_cast<size_t>(std::max<uint32_t>(1, L.codebook_size)) * 4);
  return static_cast<uint32_t>(std::max<size_t>(16, std::min<size_t>(ib, L.in_features)));
}

// Floats of a lane task's coefficient-table block: the rows of one input block, built by the
// task right before its panels read them, so they are written and read in L1/L2 (a whole-layer
// table, 1 MiB for 2048 inputs x K = 128, is written to and read back from memory: in a cold
// run that is a third more traffic than the 3 MB of edges).
inline size_t lane_table_floats(const KanLayerView& L) {
  return static_cast<size_t>(lane_input_block(L)) * L.codebook_size;
}

// Panels whose accumulators a lane task keeps (on the stack) across input blocks.
constexpr uint32_t kLaneChunkPanels = 32;

// Inputs per coefficient-table block of the sample path: the block's table (IB x K x 8
// floats) stays within 64 KiB, in L1/L2.
inline uint32_t sample_input_block(const KanLayerView& L) {
  const uint32_t ib = static_cast<uint32_t>((64u * 1024u) / (static_cast<size_t>(L.codebook_size) * kSampleGroup * 4));
  return std::max<uint32_t>(1, std::min<uint32_t>(ib, 64));
}

// Floats of one sample-path task's scratch (see sample_panels).
inline size_t sample_task_floats(const KanLayerView& L, uint32_t panels, bool table) {
  const size_t IB = sample_input_block(L), K = L.codebook_size;
  return static_cast<size_t>(panels) * kPanelWidth * kSampleGroup + (table ? (IB + 1) * K * kSampleGroup : 0) +
         4 * IB * kPanelWidth + 16;
}

// One sample-path task's scratch: acc [panels x 16 x 8] | table [IB x K x 8] | rows [8 x K] |
// idx, gain, bias, base [IB x 16] each (the table and rows only when the layer tabulates).
struct SampleScratch {
  float* acc;
  float* table;
  float* rows;
  uint32_t* idx;
  float *gain, *bias, *base;
};

inline SampleScratch carve_sample_scratch(float* scratch, uint32_t panels, uint32_t IB, uint32_t K, bool table) {
  SampleScratch s;
  s.acc = scratch;
  s.table = s.acc + static_cast<size_t>(panels) * kPanelWidth * kSampleGroup;
  s.rows = s.table + (table ? static_cast<size_t>(IB) * K * kSampleGroup : 0);
  s.idx = reinterpret_cast<uint32_t*>(s.rows + (table ? static_cast<size_t>(K) * kSampleGroup : 0));
  s.gain = reinterpret_cast<float*>(s.idx + static_cast<size_t>(IB) * kPanelWidth);
  s.bias = s.gain + static_cast<size_t>(IB) * kPanelWidth;
  s.base = s.bias + static_cast<size_t>(IB) * kPanelWidth;
  return s;
}

namespace generic {
const KernelOps& ops();
}
namespace avx2 {
const KernelOps& ops();
}
namespace avx512 {
const KernelOps& ops();
}

}  // namespace lutham
