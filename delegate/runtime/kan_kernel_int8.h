// The int8 mode's loops as plain C++ (kan_kernel.h has the math): the reference every
// variant must match bit for bit, and the variant aarch64 and CPUs without AVX-512 VBMI/VNNI
// run. Integer sums in uint32 (wrapping, as vpdpbusd adds: the order of the additions then
// cannot change a bit), float parts through the shared scalar pieces of kan_kernel_plan.h.
//
// Included inside a variant's namespace, after kan_kernel_plan.h.

inline void int8_silu_block(const float* x, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = silu_q8_scalar(x[i]);
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
  for (uint32_t i = 0; i < in; ++i) silu8[i] = static_cast<uint8_t>(int8_rne(int8_clamp((silu[i] - lo) * inv, 0.0f, 255.0f)));
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

template <typename WordT>
inline void int8_record(const uint8_t* rec, const Int8Fields& f, uint8_t* idx, int32_t* g, int32_t* b, int32_t* w) {
  std::memcpy(idx, rec, kPanelWidth);
  WordT words[kPanelWidth];
  std::memcpy(words, rec + kPanelWidth, sizeof words);
  for (uint32_t l = 0; l < kPanelWidth; ++l) f.decode(words[l], g[l], b[l], w[l]);
}

template <typename WordT>
void int8_lane_panels(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  const uint32_t in = L.in_features, stride = L.int8.table_stride;
  const Int8Fields f(L);
  for (uint32_t p = p0; p < p1; ++p) {
    uint32_t ag[kPanelWidth] = {}, ab[kPanelWidth] = {}, aw[kPanelWidth] = {};
    const uint8_t* rec = L.edges + static_cast<size_t>(p) * in * L.record_bytes;
    for (uint32_t i = 0; i < in; ++i, rec += L.record_bytes) {
      uint8_t idx[kPanelWidth];
      int32_t g[kPanelWidth], b[kPanelWidth], w[kPanelWidth];
      int8_record<WordT>(rec, f, idx, g, b, w);
      const uint8_t* row = S.table + static_cast<size_t>(i) * stride;
      const uint32_t bs = S.bsum8[i], us = S.silu8[i];
      for (uint32_t l = 0; l < kPanelWidth; ++l) {
        ag[l] += static_cast<uint32_t>(g[l] * static_cast<int32_t>(row[idx[l]]));
        ab[l] += static_cast<uint32_t>(b[l] * static_cast<int32_t>(bs));
        aw[l] += static_cast<uint32_t>(w[l] * static_cast<int32_t>(us));
      }
    }
    const uint32_t lanes = std::min(kPanelWidth, L.out_features - p * kPanelWidth);
    for (uint32_t l = 0; l < lanes; ++l) {
      const uint32_t o = p * kPanelWidth + l;
      y[o] = int8_output(L, o, ag[l], ab[l], aw[l], S.lo, S.sx);
    }
  }
}

inline void int8_lane(const KanLayerView& L, const Int8Sample& S, uint32_t p0, uint32_t p1, float* y) {
  if (L.word_bytes == 2) int8_lane_panels<uint16_t>(L, S, p0, p1, y);
  else int8_lane_panels<uint32_t>(L, S, p0, p1, y);
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

template <typename WordT>
void int8_batch_panels(const KanLayerView& L, const Int8Batch& B, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  const uint32_t in = L.in_features, stride = L.int8.table_stride, pairs = L.int8.pairs, out = L.out_features;
  const uint32_t np = p1 - p0, S = B.samples, in4 = int8_padded_inputs(L);
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
      const uint8_t* rec = L.edges + (static_cast<size_t>(p) * in + i0) * L.record_bytes;
      for (uint32_t ii = 0; ii < ib; ++ii, rec += L.record_bytes) {
        uint8_t idx[kPanelWidth];
        int32_t g[kPanelWidth], b[kPanelWidth], w[kPanelWidth];
        int8_record<WordT>(rec, f, idx, g, b, w);
        for (uint32_t s = 0; s < S; ++s) {
          const uint8_t* row = sc.tables + (static_cast<size_t>(s) * kInt8BatchBlock + ii) * stride;
          const uint32_t bs = B.bsum8[static_cast<size_t>(s) * in4 + i0 + ii], us = B.silu8[static_cast<size_t>(s) * in4 + i0 + ii];
          uint32_t* acc = sc.acc + (static_cast<size_t>(s) * np + (p - p0)) * 3 * kPanelWidth;
          for (uint32_t l = 0; l < kPanelWidth; ++l) {
            acc[l] += static_cast<uint32_t>(g[l] * static_cast<int32_t>(row[idx[l]]));
            acc[kPanelWidth + l] += static_cast<uint32_t>(b[l] * static_cast<int32_t>(bs));
            acc[2 * kPanelWidth + l] += static_cast<uint32_t>(w[l] * static_cast<int32_t>(us));
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

inline void int8_batch(const KanLayerView& L, const Int8Batch& B, uint32_t p0, uint32_t p1, uint8_t* scratch, float* y) {
  if (L.word_bytes == 2) int8_batch_panels<uint16_t>(L, B, p0, p1, scratch, y);
  else int8_batch_panels<uint32_t>(L, B, p0, p1, scratch, y);
}
