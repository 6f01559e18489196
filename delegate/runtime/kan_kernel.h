// LUTHAM KAN kernel: the math of one SHARe-KAN layer, written once.
//
// Semantics (the reference is lutham::kan_linear's eager kernel, py_bridge/lutham/ops.py):
//   y[n][o] = sum_i  base[o][i] * silu(x[n][i])
//                  + gain[o][i] * sum_m B_m(x[n][i]) * codebook[index[o][i]][m]
//                  + bias[o][i] * sum_m B_m(x[n][i])
// with efficient-kan's B-splines (Cox-de Boor, half-open intervals, zero outside the
// extended grid). Only the k+1 non-zero bases of each input are computed, once per input,
// and each edge reads k+1 entries of its codeword: dense coefficients are never expanded.
//
// Quantized values are dequantized exactly like ops.dequantize: q * scale[row].
//
// Nothing here allocates; the caller supplies scratch of kan_scratch_bytes() bytes.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lutham {

// Largest spline order the kernel accepts (bounds a small stack array).
constexpr uint32_t kMaxSplineOrder = 15;
// Samples processed together, so each row of indices/gains/biases/base is decoded once per block.
constexpr size_t kSampleBlock = 8;

// A row-major rows x cols matrix: float32 values (bits == 32) or `bits`-bit signed
// integers packed LSB-first with one float scale per row. Points into validated memory.
struct QuantView {
  uint32_t rows = 0;
  uint32_t cols = 0;
  uint32_t bits = 32;
  const float* f32 = nullptr;
  const uint8_t* packed = nullptr;
  const float* scales = nullptr;
};

// One validated layer. All pointers stay owned by the payload / codebook buffers.
struct KanLayerView {
  uint32_t in_features = 0;
  uint32_t out_features = 0;
  uint32_t grid_size = 0;
  uint32_t spline_order = 0;
  const float* knots = nullptr;  // in x (G + 2k + 1), or one row shared by all inputs
  uint32_t knot_stride = 0;      // floats from one input's knots to the next's: G+2k+1, or 0 if shared
  uint32_t codebook_size = 0;    // K
  uint32_t codebook_dim = 0;     // G + k
  uint32_t index_bits = 0;
  const uint8_t* indices = nullptr;  // out x in, index_bits each, LSB-first
  QuantView gains;
  QuantView biases;
  QuantView base_weight;
  QuantView codebook;  // K x dim
};

// Bit-field readers (LSB-first stream). Callers guarantee the bytes exist.
inline int32_t read_signed_bits(const uint8_t* p, uint64_t n, uint32_t bits) {
  const uint64_t bit = n * bits;
  const uint64_t byte = bit >> 3;
  const uint32_t shift = static_cast<uint32_t>(bit & 7);
  uint32_t v = p[byte];
  if (shift + bits > 8) v |= static_cast<uint32_t>(p[byte + 1]) << 8;
  v = (v >> shift) & ((1u << bits) - 1u);
  // Sign-extend from `bits` bits.
  const uint32_t sign = 1u << (bits - 1);
  return static_cast<int32_t>(v ^ sign) - static_cast<int32_t>(sign);
}

inline uint32_t read_unsigned_bits(const uint8_t* p, uint64_t n, uint32_t bits) {
  const uint64_t bit = n * bits;
  const uint64_t byte = bit >> 3;
  const uint32_t shift = static_cast<uint32_t>(bit & 7);
  const uint32_t need = shift + bits;  // <= 39
  uint64_t v = 0;
  for (uint32_t k = 0; k * 8 < need; ++k) v |= static_cast<uint64_t>(p[byte + k]) << (8 * k);
  const uint64_t mask = bits >= 32 ? 0xffffffffull : ((1ull << bits) - 1ull);
  return static_cast<uint32_t>((v >> shift) & mask);
}

// Value [r][c] of a QuantView, dequantized as in ops.dequantize.
inline float quant_value(const QuantView& q, uint64_t r, uint64_t c) {
  const uint64_t n = r * q.cols + c;
  if (q.bits == 32) return q.f32[n];
  return static_cast<float>(read_signed_bits(q.packed, n, q.bits)) * q.scales[r];
}

// The k+1 non-zero B-spline bases of one input, in efficient-kan's arithmetic.
// knots: n_knots strictly increasing values. On return, values[r] = B_{start+r}(x) for
// r = 0..k, where start is in [0, n_knots - 2k - 2] (= [0, G-1]) so the window always lies
// inside the G+k bases; returns the sum of the values (0 outside the extended grid,
// where every value is 0 and start is 0).
float bspline_window(const float* knots, uint32_t n_knots, uint32_t order, float x, float* values, uint32_t* start);

// Bytes of scratch kan_forward needs for this layer (16-byte aligned pieces).
size_t kan_scratch_bytes(const KanLayerView& layer);

// y (batch x out) = layer(x (batch x in)). scratch: kan_scratch_bytes(layer) bytes, 16-aligned.
void kan_forward(const KanLayerView& layer, const float* x, size_t batch, float* y, void* scratch);

}  // namespace lutham
