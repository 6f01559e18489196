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

// Int8 mode (kan_kernel.h): one sample of the lane path. Arrays are indexed by input and
// padded to a multiple of 4 inputs (kInt8Group); the padding of bsum8 and silu8 is 0.
constexpr uint32_t kInt8Group = 4;  // inputs per vpdpbusd lane: 4 bytes summed into one int32
inline uint32_t int8_padded_inputs(const KanLayerView& L) { return (L.in_features + kInt8Group - 1) / kInt8Group * kInt8Group; }

struct Int8Sample {
  const uint8_t* table = nullptr;  // [input][table_stride]: T (u8, P8 + 128)
  const uint8_t* bsum8 = nullptr;
  const uint8_t* silu8 = nullptr;
  float lo = 0.0f, sx = 0.0f;
};

// A group of samples of the int8 batch path: their B8 windows (the tables are built block by
// block into the task's scratch), bsum8, silu8 and scales.
struct Int8Batch {
  const uint8_t* b8 = nullptr;       // [(sample * in + i) * 2 * pairs]
  const uint32_t* start = nullptr;   // [sample * in + i]
  const uint8_t* bsum8 = nullptr;    // [sample][padded inputs]
  const uint8_t* silu8 = nullptr;    // [sample][padded inputs]
  const float* lo = nullptr;         // [sample]
  const float* sx = nullptr;
  uint32_t samples = 0;
};

// Inputs per table block of the int8 batch path (a multiple of kInt8Group).
constexpr uint32_t kInt8BatchBlock = 64;
// Panels decoded at once by the batch path (and the accumulator layout's panel group).
constexpr uint32_t kInt8BatchPanels = 4;

// Bytes of an int8 batch task's scratch: tables [samples][block][stride], accumulators
// [samples][panels][3][16] int32, decoded records [group panels][block / 4][4][64].
inline size_t int8_batch_scratch_bytes(const KanLayerView& L, uint32_t samples, uint32_t panels) {
  return static_cast<size_t>(samples) * kInt8BatchBlock * L.int8.table_stride +
         static_cast<size_t>(samples) * panels * 3 * kPanelWidth * 4 +
         static_cast<size_t>(kInt8BatchPanels) * (kInt8BatchBlock / kInt8Group) * 4 * 64 + 64;
}

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
  // Int8 mode. kan_silu_q8 of n values.
  void (*silu_q8)(const float* x, size_t n, float* out);
  // Phase A of rows [r0, r1) (row = sample * in + input): silu, the B8 window, its start and
  // bsum8 ([sample][in4]; its padding is the caller's).
  void (*int8_rows)(const KanLayerView& L, const float* x, size_t r0, size_t r1, float* silu, uint8_t* b8,
                    uint32_t* start, uint8_t* bsum8);
  // One sample's silu8 (padded inputs, padding 0), lo and sx from its silu values.
  void (*int8_quantize)(const float* silu, uint32_t in, uint8_t* silu8, float* lo, float* sx);
  // The table rows of inputs [first, first + rows) of one sample from their B8 windows and
  // starts, into the sample's table T (in4 x table_stride bytes; where each row goes is the
  // variant's, as only its own lane loops read it: row-major, or the avx2 variant's pairs).
  void (*int8_table)(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint32_t first,
                     uint8_t* T);
  void (*int8_lane)(const KanLayerView& L, const Int8Sample& s, uint32_t p0, uint32_t p1, float* y);
  // Panels [p0, p1) of a group of samples; y points at the group's first sample's outputs.
  void (*int8_batch)(const KanLayerView& L, const Int8Batch& b, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y);
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

// ---- Int8 mode scalar pieces, the same expressions in every variant (plain IEEE float ops,
// compiled with -ffp-contract=off; py_bridge/lutham/compress/int8.py mirrors them in numpy).

// Round to nearest, ties to even (the default rounding mode; cvtps2dq does the same).
inline int32_t int8_rne(float t) { return static_cast<int32_t>(std::nearbyint(t)); }

// max(lo, min(t, hi)) as vmaxps(t, lo) / vminps(t, hi) compute it: a NaN t gives lo.
inline float int8_clamp(float t, float lo, float hi) {
  t = t > lo ? t : lo;
  return t < hi ? t : hi;
}

// e^v with Cephes' expf polynomial, mul and add only, v clamped to [-87, 88] (so 2^n is a
// normal float); then silu = x / (1 + e^-x).
inline float silu_q8_scalar(float x) {
  const float v = int8_clamp(-x, -87.0f, 88.0f);
  float fx = v * 1.44269504088896341f;
  fx = (fx + 12582912.0f) - 12582912.0f;  // rne(fx): |fx| <= 127
  float r = v - fx * 0.693359375f;
  r = r - fx * -2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r;
  y = y + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(fx) + 127) << 23;
  float pow2n;
  std::memcpy(&pow2n, &bits, sizeof pow2n);
  return x / (1.0f + y * pow2n);
}

// The int8 mode's B-spline window: bspline_window's Cox-de Boor with each division by a knot
// difference replaced by a multiplication with its reciprocal, inv[(p - 1) * n_knots + m] =
// 1 / (t[m + p] - t[m]) (KanInt8View::knot_inv), three times faster to vectorize; the values
// are quantized to 8 bits afterwards, so the last bit of each hardly matters, but it is the
// same on every ISA and in numpy (py_bridge/lutham/compress/int8.py).
inline float bspline_window_q8(const float* t, const float* inv, uint32_t n_knots, uint32_t k, float x, float* values,
                               uint32_t* start) {
  const uint32_t kp1 = k + 1;
  for (uint32_t r = 0; r < kp1; ++r) values[r] = 0.0f;
  *start = 0;
  if (!(x >= t[0]) || !(x < t[n_knots - 1])) return 0.0f;
  uint32_t lo = 0, hi = n_knots - 1;  // t[lo] <= x < t[hi]
  while (hi - lo > 1) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (x >= t[mid]) lo = mid; else hi = mid;
  }
  const int64_t j = lo;
  float local[kMaxSplineOrder + 2];
  for (uint32_t r = 0; r <= kp1; ++r) local[r] = 0.0f;
  local[k] = 1.0f;
  for (uint32_t p = 1; p <= k; ++p) {
    const int64_t last = static_cast<int64_t>(n_knots) - 2 - p;
    const float* ip = inv + static_cast<size_t>(p - 1) * n_knots;
    for (uint32_t r = 0; r < kp1; ++r) {
      const int64_t m = j - k + r;
      if (m < 0 || m > last) {
        local[r] = 0.0f;
        continue;
      }
      const float left = (x - t[m]) * ip[m];
      const float right = (t[m + p + 1] - x) * ip[m + 1];
      const float a = left * local[r];
      const float b = right * local[r + 1];
      local[r] = a + b;
    }
  }
  const int64_t n_bases = static_cast<int64_t>(n_knots) - 1 - k;
  int64_t st = j - static_cast<int64_t>(k);
  st = std::max<int64_t>(0, std::min<int64_t>(st, n_bases - kp1));
  for (uint32_t r = 0; r < kp1; ++r) {
    const int64_t m = j - k + r;
    if (m >= st && m < st + kp1) values[m - st] = local[r];
  }
  float sum = 0.0f;
  for (uint32_t r = 0; r < kp1; ++r) sum += values[r];
  *start = static_cast<uint32_t>(st);
  return sum;
}

inline uint8_t int8_u8(float t) { return static_cast<uint8_t>(int8_rne(int8_clamp(t, 0.0f, 255.0f))); }

// One output of the int8 mode from its three int32 sums (wrapping, as vpdpbusd adds).
inline float int8_output(const KanLayerView& L, uint32_t o, uint32_t ag, uint32_t ab, uint32_t aw, float lo, float sx) {
  const int32_t g = static_cast<int32_t>(ag - 128u * static_cast<uint32_t>(L.int8.gain_sum[o]));
  const float t1 = L.int8.gain_scale[o] * static_cast<float>(g);
  const float t2 = L.int8.bias_scale[o] * static_cast<float>(static_cast<int32_t>(ab));
  const float t3 = sx * static_cast<float>(static_cast<int32_t>(aw));
  const float t4 = lo * static_cast<float>(L.int8.base_sum[o]);
  return (t1 + t2) + L.base.scales[o] * (t3 + t4);
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
namespace avx512vnni {
const KernelOps& ops();
}
namespace neondot {
const KernelOps& ops();
}

}  // namespace lutham
