// LUTHAM KAN kernel. See kan_kernel.h for the semantics.
//
// Built with -ffp-contract=off so that the B-spline values are computed with exactly the
// roundings of efficient-kan's tensor ops (mul, mul, add) on every target, and x86-64 and
// aarch64 builds give the same bits.
#include "kan_kernel.h"

#include <algorithm>
#include <cmath>

namespace lutham {
namespace {

inline size_t align16(size_t n) { return (n + 15) & ~static_cast<size_t>(15); }

struct Scratch {
  float* silu;      // kSampleBlock x in
  float* bsum;      // kSampleBlock x in
  float* basis;     // kSampleBlock x in x (k+1)
  uint32_t* start;  // kSampleBlock x in
  uint32_t* index;  // in: indices of the current output row
  float* gain;      // in
  float* bias;      // in
  float* base;      // in
};

Scratch carve(const KanLayerView& layer, void* memory) {
  const size_t in = layer.in_features;
  const size_t kp1 = layer.spline_order + 1;
  auto* p = static_cast<uint8_t*>(memory);
  Scratch s{};
  auto take = [&p](size_t bytes) {
    uint8_t* q = p;
    p += align16(bytes);
    return q;
  };
  s.silu = reinterpret_cast<float*>(take(kSampleBlock * in * sizeof(float)));
  s.bsum = reinterpret_cast<float*>(take(kSampleBlock * in * sizeof(float)));
  s.basis = reinterpret_cast<float*>(take(kSampleBlock * in * kp1 * sizeof(float)));
  s.start = reinterpret_cast<uint32_t*>(take(kSampleBlock * in * sizeof(uint32_t)));
  s.index = reinterpret_cast<uint32_t*>(take(in * sizeof(uint32_t)));
  s.gain = reinterpret_cast<float*>(take(in * sizeof(float)));
  s.bias = reinterpret_cast<float*>(take(in * sizeof(float)));
  s.base = reinterpret_cast<float*>(take(in * sizeof(float)));
  return s;
}

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// Dot of the k+1 basis values with codeword `idx` starting at column `st`.
struct F32Words {
  const float* values;
  uint32_t dim;
  template <int KP1>
  inline float dot(uint32_t idx, uint32_t st, const float* b, uint32_t kp1) const {
    const float* w = values + static_cast<size_t>(idx) * dim + st;
    float acc = 0.0f;
    if constexpr (KP1 > 0) {
      for (int r = 0; r < KP1; ++r) acc += b[r] * w[r];
    } else {
      for (uint32_t r = 0; r < kp1; ++r) acc += b[r] * w[r];
    }
    return acc;
  }
};

struct Int8Words {
  const int8_t* values;
  const float* scales;
  uint32_t dim;
  template <int KP1>
  inline float dot(uint32_t idx, uint32_t st, const float* b, uint32_t kp1) const {
    const int8_t* w = values + static_cast<size_t>(idx) * dim + st;
    const float s = scales[idx];
    float acc = 0.0f;
    if constexpr (KP1 > 0) {
      for (int r = 0; r < KP1; ++r) acc += b[r] * (static_cast<float>(w[r]) * s);
    } else {
      for (uint32_t r = 0; r < kp1; ++r) acc += b[r] * (static_cast<float>(w[r]) * s);
    }
    return acc;
  }
};

struct PackedWords {
  const uint8_t* packed;
  const float* scales;
  uint32_t dim;
  uint32_t bits;
  template <int KP1>
  inline float dot(uint32_t idx, uint32_t st, const float* b, uint32_t kp1) const {
    const uint64_t first = static_cast<uint64_t>(idx) * dim + st;
    const float s = scales[idx];
    float acc = 0.0f;
    for (uint32_t r = 0; r < kp1; ++r) acc += b[r] * (static_cast<float>(read_signed_bits(packed, first + r, bits)) * s);
    return acc;
  }
};

void decode_row(const QuantView& q, uint32_t row, float* out) {
  const uint32_t cols = q.cols;
  if (q.bits == 32) {
    std::copy(q.f32 + static_cast<size_t>(row) * cols, q.f32 + static_cast<size_t>(row + 1) * cols, out);
    return;
  }
  const float s = q.scales[row];
  const uint64_t first = static_cast<uint64_t>(row) * cols;
  if (q.bits == 8) {
    const auto* v = reinterpret_cast<const int8_t*>(q.packed) + first;
    for (uint32_t c = 0; c < cols; ++c) out[c] = static_cast<float>(v[c]) * s;
    return;
  }
  for (uint32_t c = 0; c < cols; ++c) out[c] = static_cast<float>(read_signed_bits(q.packed, first + c, q.bits)) * s;
}

void decode_indices(const KanLayerView& layer, uint32_t row, uint32_t* out) {
  const uint32_t in = layer.in_features;
  const uint64_t first = static_cast<uint64_t>(row) * in;
  switch (layer.index_bits) {
    case 8:
      for (uint32_t i = 0; i < in; ++i) out[i] = layer.indices[first + i];
      return;
    case 16:
      for (uint32_t i = 0; i < in; ++i) {
        const uint8_t* p = layer.indices + 2 * (first + i);
        out[i] = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8);
      }
      return;
    default:
      for (uint32_t i = 0; i < in; ++i) out[i] = read_unsigned_bits(layer.indices, first + i, layer.index_bits);
  }
}

template <int KP1, typename Words>
void rows(const KanLayerView& layer, const Words& words, const Scratch& s, size_t nb, float* y) {
  const uint32_t in = layer.in_features;
  const uint32_t out = layer.out_features;
  const uint32_t kp1 = layer.spline_order + 1;
  for (uint32_t o = 0; o < out; ++o) {
    decode_indices(layer, o, s.index);
    decode_row(layer.gains, o, s.gain);
    decode_row(layer.biases, o, s.bias);
    decode_row(layer.base_weight, o, s.base);
    for (size_t n = 0; n < nb; ++n) {
      const float* silu_n = s.silu + n * in;
      const float* bsum_n = s.bsum + n * in;
      const float* basis_n = s.basis + n * in * kp1;
      const uint32_t* start_n = s.start + n * in;
      float acc = 0.0f;
      for (uint32_t i = 0; i < in; ++i) {
        const float d = words.template dot<KP1>(s.index[i], start_n[i], basis_n + static_cast<size_t>(i) * kp1, kp1);
        acc += s.base[i] * silu_n[i] + s.gain[i] * d + s.bias[i] * bsum_n[i];
      }
      y[n * out + o] = acc;
    }
  }
}

template <typename Words>
void rows_any_order(const KanLayerView& layer, const Words& words, const Scratch& s, size_t nb, float* y) {
  if (layer.spline_order == 3) {
    rows<4>(layer, words, s, nb, y);
  } else {
    rows<0>(layer, words, s, nb, y);
  }
}

}  // namespace

float bspline_window(const float* t, uint32_t n_knots, uint32_t order, float x, float* values, uint32_t* start) {
  const uint32_t k = order;
  const uint32_t kp1 = k + 1;
  for (uint32_t r = 0; r < kp1; ++r) values[r] = 0.0f;
  *start = 0;
  // Half-open intervals [t_j, t_{j+1}), j = 0 .. n_knots-2; NaN falls in none.
  if (!(x >= t[0]) || !(x < t[n_knots - 1])) return 0.0f;
  uint32_t lo = 0, hi = n_knots - 1;  // t[lo] <= x < t[hi]
  while (hi - lo > 1) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (x >= t[mid]) lo = mid; else hi = mid;
  }
  const int64_t j = lo;
  // local[r] holds B_{j-k+r, p}; entries whose index is not a basis of level p are 0.
  float local[kMaxSplineOrder + 2];
  for (uint32_t r = 0; r <= kp1; ++r) local[r] = 0.0f;
  local[k] = 1.0f;  // level 0: only B_{j,0} is 1
  const int64_t n_intervals = static_cast<int64_t>(n_knots) - 1;
  for (uint32_t p = 1; p <= k; ++p) {
    const int64_t last = n_intervals - 1 - p;  // level p has bases 0 .. n_knots-2-p
    for (uint32_t r = 0; r < kp1; ++r) {
      const int64_t m = j - k + r;
      if (m < 0 || m > last) {
        local[r] = 0.0f;
        continue;
      }
      // efficient-kan: left * B_{m,p-1} + right * B_{m+1,p-1} (separate roundings).
      const float left = (x - t[m]) / (t[m + p] - t[m]);
      const float right = (t[m + p + 1] - x) / (t[m + p + 1] - t[m + 1]);
      const float a = left * local[r];
      const float b = right * local[r + 1];  // local[kp1] stays 0 (B_{j+1,p-1}(x) = 0)
      local[r] = a + b;
    }
  }
  // Bases of the last level: 0 .. G+k-1 = n_knots-2-k. Keep a window of k+1 inside it.
  const int64_t n_bases = n_intervals - k;
  int64_t st = j - static_cast<int64_t>(k);
  st = std::max<int64_t>(0, std::min<int64_t>(st, n_bases - kp1));
  float sum = 0.0f;
  for (uint32_t r = 0; r < kp1; ++r) {
    const int64_t m = j - k + r;
    if (m < st || m >= st + kp1) continue;  // only m < 0 or m >= n_bases, which are 0
    values[m - st] = local[r];
  }
  for (uint32_t r = 0; r < kp1; ++r) sum += values[r];
  *start = static_cast<uint32_t>(st);
  return sum;
}

size_t kan_scratch_bytes(const KanLayerView& layer) {
  const size_t in = layer.in_features;
  const size_t kp1 = layer.spline_order + 1;
  return 3 * align16(kSampleBlock * in * sizeof(float)) + align16(kSampleBlock * in * kp1 * sizeof(float)) +
         align16(in * sizeof(uint32_t)) + 3 * align16(in * sizeof(float));
}

void kan_forward(const KanLayerView& layer, const float* x, size_t batch, float* y, void* scratch) {
  const Scratch s = carve(layer, scratch);
  const uint32_t in = layer.in_features;
  const uint32_t out = layer.out_features;
  const uint32_t kp1 = layer.spline_order + 1;
  const uint32_t n_knots = layer.grid_size + 2 * layer.spline_order + 1;
  for (size_t n0 = 0; n0 < batch; n0 += kSampleBlock) {
    const size_t nb = std::min(kSampleBlock, batch - n0);
    // Per input, once: silu, the k+1 non-zero bases, their window start and sum.
    for (size_t n = 0; n < nb; ++n) {
      const float* xn = x + (n0 + n) * in;
      for (uint32_t i = 0; i < in; ++i) {
        const size_t slot = n * in + i;
        s.silu[slot] = silu(xn[i]);
        s.bsum[slot] = bspline_window(layer.knots + static_cast<size_t>(i) * layer.knot_stride, n_knots, layer.spline_order,
                                      xn[i], s.basis + slot * kp1, s.start + slot);
      }
    }
    float* yb = y + n0 * out;
    const QuantView& cb = layer.codebook;
    if (cb.bits == 32) {
      rows_any_order(layer, F32Words{cb.f32, cb.cols}, s, nb, yb);
    } else if (cb.bits == 8) {
      rows_any_order(layer, Int8Words{reinterpret_cast<const int8_t*>(cb.packed), cb.scales, cb.cols}, s, nb, yb);
    } else {
      rows<0>(layer, PackedWords{cb.packed, cb.scales, cb.cols, cb.bits}, s, nb, yb);
    }
  }
}

}  // namespace lutham
