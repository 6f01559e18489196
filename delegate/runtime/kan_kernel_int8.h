// The int8 mode's loops as plain C++ (kan_kernel.h has the math): the reference every
// variant must match bit for bit, and the variant aarch64 and CPUs without AVX-512 VBMI/VNNI
// run. Integer sums in uint32 (wrapping, as vpdpbusd adds: the order of the additions then
// cannot change a bit), float parts through the shared scalar pieces of kan_kernel_plan.h.
//
// Included inside a variant's namespace, after kan_kernel_plan.h.

inline void int8_silu_block(const float* x, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = silu_q8_scalar(x[i]);
}

// The window, its start, B8 and bsum8 of one row (row = sample * in + input).
inline void int8_window_row(const KanLayerView& L, const float* x, size_t r, uint8_t* b8, uint32_t* start, uint8_t* bsum8) {
  const size_t in = L.in_features, in4 = int8_padded_inputs(L), bw = 2 * L.int8.pairs, i = r % in;
  const uint32_t width = L.spline_order + 1;
  const size_t inv_stride = L.knot_stride ? static_cast<size_t>(L.spline_order) * L.n_knots : 0;
  float values[kMaxSplineOrder + 1];
  const float sum = bspline_window_q8(L.knots + i * L.knot_stride, L.int8.knot_inv + i * inv_stride, L.n_knots,
                                      L.spline_order, x[r], values, start + r);
  uint8_t* b = b8 + r * bw;
  for (uint32_t q = 0; q < width; ++q) b[q] = int8_u8(values[q] * 256.0f);
  for (uint32_t q = width; q < bw; ++q) b[q] = 0;
  bsum8[(r / in) * in4 + i] = int8_u8(sum * 255.0f);
}

inline void int8_rows(const KanLayerView& L, const float* x, size_t r0, size_t r1, float* silu, uint8_t* b8,
                      uint32_t* start, uint8_t* bsum8) {
  for (size_t r = r0; r < r1; ++r) {
    silu[r] = silu_q8_scalar(x[r]);
    int8_window_row(L, x, r, b8, start, bsum8);
  }
}

inline void int8_quantize_silu(const float* silu, uint32_t in, uint8_t* silu8, float* lo_out, float* sx_out) {
  float lo = INFINITY, hi = -INFINITY;
  bool finite = true;
  for (uint32_t i = 0; i < in; ++i) {
    const float v = silu[i];
    finite &= (v - v) == 0.0f;  // false for inf and NaN
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  const uint32_t in4 = (in + kInt8Group - 1) / kInt8Group * kInt8Group;
  if (!finite) {
    std::memset(silu8, 0, in4);
    *lo_out = *sx_out = NAN;
    return;
  }
  lo = lo + 0.0f;  // -0 -> +0, so that the order of the scan cannot matter
  hi = hi + 0.0f;
  const float range = hi - lo;
  const float inv = range > 0.0f ? 255.0f / range : 0.0f;
  for (uint32_t i = 0; i < in; ++i) silu8[i] = int8_u8((silu[i] - lo) * inv);
  for (uint32_t i = in; i < in4; ++i) silu8[i] = 0;
  *lo_out = lo;
  *sx_out = range / 255.0f;
}

// Table rows from B8 windows (kan_kernel.h): pair sums saturate to int16 and add wrapping,
// as vpmaddubsw and vpaddw do (bounded so that neither happens for valid layers).
inline void int8_table_rows(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint8_t* T) {
  const uint32_t K = L.codebook_size, stride = L.int8.table_stride, pairs = L.int8.pairs;
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* b = b8 + r * 2 * pairs;
    const int8_t* w = L.int8.windows + static_cast<size_t>(start[r]) * pairs * stride * 2;
    uint8_t* t = T + r * stride;
    for (uint32_t c = 0; c < K; ++c) {
      int32_t acc = 0;
      for (uint32_t p = 0; p < pairs; ++p) {
        const int8_t* wc = w + (static_cast<size_t>(p) * stride + c) * 2;
        int32_t v = static_cast<int32_t>(b[2 * p]) * wc[0] + static_cast<int32_t>(b[2 * p + 1]) * wc[1];
        v = std::min<int32_t>(32767, std::max<int32_t>(-32768, v));
        acc = p == 0 ? v : static_cast<int16_t>(static_cast<uint16_t>(acc + v));
      }
      const int32_t q = std::min<int32_t>(127, std::max<int32_t>(-128, (acc + 128) >> 8));
      t[c] = static_cast<uint8_t>(q + 128);
    }
    for (uint32_t c = K; c < stride; ++c) t[c] = 128;
  }
}

// int8_table_rows in a sample's row-major table (KernelOps::int8_table).
inline void int8_table_row_major(const KanLayerView& L, const uint8_t* b8, const uint32_t* start, size_t rows, uint32_t first,
                                 uint8_t* T) {
  int8_table_rows(L, b8, start, rows, T + static_cast<size_t>(first) * L.int8.table_stride);
}

// The signed fields of one value word (gain, bias, base).
struct Int8Fields {
  uint32_t gain_shift, bias_shift, base_shift, gain_bits, bias_bits, base_bits;
  explicit Int8Fields(const KanLayerView& L)
      : gain_shift(32 - L.gain.bits),
        bias_shift(32 - L.gain.bits - L.bias.bits),
        base_shift(32 - L.gain.bits - L.bias.bits - L.base.bits),
        gain_bits(L.gain.bits),
        bias_bits(L.bias.bits),
        base_bits(L.base.bits) {}
  inline void decode(uint32_t v, int32_t& g, int32_t& b, int32_t& w) const {
    g = static_cast<int32_t>(v << gain_shift) >> (32 - gain_bits);
    b = static_cast<int32_t>(v << bias_shift) >> (32 - bias_bits);
    w = static_cast<int32_t>(v << base_shift) >> (32 - base_bits);
  }
};

// One group record (EdgePanels.group 4) of `word_bytes`-byte words: index, gain, bias, base
// of edge (lane, input j) at [lane][j].
inline void int8_group(const uint8_t* rec, uint32_t word_bytes, const Int8Fields& f, uint8_t* idx, int32_t* g, int32_t* b,
                       int32_t* w) {
  constexpr uint32_t n = kPanelWidth * kInt8Group;
  std::memcpy(idx, rec, n);
  for (uint32_t e = 0; e < n; ++e) {
    uint32_t v = 0;
    for (uint32_t k = 0; k < word_bytes; ++k) v |= static_cast<uint32_t>(rec[n * (1 + k) + e]) << (8 * k);
    f.decode(v, g[e], b[e], w[e]);
  }
}

inline void int8_lane(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  constexpr uint32_t n = kPanelWidth * kInt8Group;
  const uint32_t in = L.in_features, stride = L.int8.table_stride, groups = (in + kInt8Group - 1) / kInt8Group;
  const Int8Fields f(L);
  for (uint32_t p = p0; p < p1; ++p) {
    uint32_t ag[kPanelWidth] = {}, ab[kPanelWidth] = {}, aw[kPanelWidth] = {};
    const uint8_t* rec = L.edges + static_cast<size_t>(p) * groups * L.record_bytes;
    for (uint32_t gi = 0; gi < groups; ++gi, rec += L.record_bytes) {
      uint8_t idx[n];
      int32_t g[n], b[n], w[n];
      int8_group(rec, L.word_bytes, f, idx, g, b, w);
      for (uint32_t e = 0; e < n; ++e) {
        const uint32_t l = e / kInt8Group, i = gi * kInt8Group + e % kInt8Group;
        if (i >= in) continue;
        ag[l] += static_cast<uint32_t>(g[e] * static_cast<int32_t>(S.table[static_cast<size_t>(i) * stride + idx[e]]));
        ab[l] += static_cast<uint32_t>(b[e] * static_cast<int32_t>(S.bsum8[i]));
        aw[l] += static_cast<uint32_t>(w[e] * static_cast<int32_t>(S.silu8[i]));
      }
    }
    const uint32_t lanes = std::min(kPanelWidth, L.out_features - p * kPanelWidth);
    for (uint32_t l = 0; l < lanes; ++l) {
      const uint32_t o = p * kPanelWidth + l;
      y[o] = int8_output(L, o, ag[l], ab[l], aw[l], S.lo, S.sx);
    }
  }
}

// Scratch carving of the batch path (int8_batch_scratch_bytes).
struct Int8BatchScratch {
  uint8_t* tables;  // [samples][kInt8BatchBlock][stride]
  uint32_t* acc;    // [samples][panels][3][16]
  uint8_t* decoded; // [kInt8BatchPanels][block groups][4][64]
};

inline Int8BatchScratch carve_int8_batch(const KanLayerView& L, uint32_t samples, uint32_t panels, uint8_t* scratch) {
  Int8BatchScratch s;
  s.tables = scratch;
  s.acc = reinterpret_cast<uint32_t*>(s.tables + static_cast<size_t>(samples) * kInt8BatchBlock * L.int8.table_stride);
  s.decoded = reinterpret_cast<uint8_t*>(s.acc + static_cast<size_t>(samples) * panels * 3 * kPanelWidth);
  s.decoded += (64 - reinterpret_cast<uintptr_t>(s.decoded) % 64) % 64;
  return s;
}

inline void int8_batch(const KanLayerView& L, const Int8Batch& B, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  constexpr uint32_t n = kPanelWidth * kInt8Group;
  const uint32_t in = L.in_features, stride = L.int8.table_stride, pairs = L.int8.pairs, out = L.out_features;
  const uint32_t np = p1 - p0, S = B.samples, in4 = int8_padded_inputs(L), groups = in4 / kInt8Group;
  const Int8Fields f(L);
  const Int8BatchScratch sc = carve_int8_batch(L, S, np, scratch);
  std::memset(sc.acc, 0, static_cast<size_t>(S) * np * 3 * kPanelWidth * sizeof(uint32_t));
  for (uint32_t i0 = 0; i0 < in; i0 += kInt8BatchBlock) {
    const uint32_t ib = std::min(kInt8BatchBlock, in - i0);
    for (uint32_t s = 0; s < S; ++s) {
      const size_t row = static_cast<size_t>(s) * in + i0;
      int8_table_rows(L, B.b8 + row * 2 * pairs, B.start + row, ib, sc.tables + static_cast<size_t>(s) * kInt8BatchBlock * stride);
    }
    for (uint32_t p = p0; p < p1; ++p) {
      for (uint32_t gi = i0 / kInt8Group; gi < groups && gi * kInt8Group < i0 + ib; ++gi) {
        const uint8_t* rec = L.edges + (static_cast<size_t>(p) * groups + gi) * L.record_bytes;
        uint8_t idx[n];
        int32_t g[n], b[n], w[n];
        int8_group(rec, L.word_bytes, f, idx, g, b, w);
        for (uint32_t s = 0; s < S; ++s) {
          uint32_t* acc = sc.acc + (static_cast<size_t>(s) * np + (p - p0)) * 3 * kPanelWidth;
          const uint8_t* tables = sc.tables + static_cast<size_t>(s) * kInt8BatchBlock * stride;
          for (uint32_t e = 0; e < n; ++e) {
            const uint32_t l = e / kInt8Group, i = gi * kInt8Group + e % kInt8Group;
            if (i >= in) continue;
            const size_t a = static_cast<size_t>(s) * in4 + i;
            acc[l] += static_cast<uint32_t>(g[e] * static_cast<int32_t>(tables[static_cast<size_t>(i - i0) * stride + idx[e]]));
            acc[kPanelWidth + l] += static_cast<uint32_t>(b[e] * static_cast<int32_t>(B.bsum8[a]));
            acc[2 * kPanelWidth + l] += static_cast<uint32_t>(w[e] * static_cast<int32_t>(B.silu8[a]));
          }
        }
      }
    }
  }
  for (uint32_t s = 0; s < S; ++s) {
    for (uint32_t p = p0; p < p1; ++p) {
      const uint32_t* acc = sc.acc + (static_cast<size_t>(s) * np + (p - p0)) * 3 * kPanelWidth;
      const uint32_t lanes = std::min(kPanelWidth, out - p * kPanelWidth);
      for (uint32_t l = 0; l < lanes; ++l) {
        const uint32_t o = p * kPanelWidth + l;
        y[static_cast<size_t>(s) * out + o] = int8_output(L, o, acc[l], acc[kPanelWidth + l], acc[2 * kPanelWidth + l], B.lo[s], B.sx[s]);
      }
    }
  }
}
