// The hot loops of kan_forward, written once as plain C++ and compiled once per instruction
// set (kan_kernel_generic.cpp; kan_kernel_avx2.cpp with -mavx2 -mfma). The loops are shaped
// for the compiler's vectorizer: fixed 16-lane and 8-sample inner loops over arrays.
//
// Every value is computed by the same sequence of float operations in every variant: explicit
// fmaf (one rounding, on every target), no reassociation (-ffp-contract=off, no fast-math).
// Include this file inside the variant's namespace.
//
// Included by kan_kernel_generic.cpp and kan_kernel_avx2.cpp, after kan_kernel_plan.h (which has the
// standard headers: this file is included inside a namespace).

// P[c] = basis . codeword_c over the window [start, start + width): the fma chain every
// path uses for an edge's coefficient term (so table and direct paths give the same bits).
inline void table_row(const float* columns, uint32_t K, const float* basis, uint32_t start, uint32_t width, float* P) {
  const float* col = columns + static_cast<size_t>(start) * K;
  // Codewords in chunks of 16 held in registers across the whole chain (one store each).
  constexpr uint32_t kChunk = 16;
  uint32_t c0 = 0;
  for (; c0 + kChunk <= K; c0 += kChunk) {
    float acc[kChunk];
    for (uint32_t c = 0; c < kChunk; ++c) acc[c] = basis[0] * col[c0 + c];
    for (uint32_t r = 1; r < width; ++r) {
      const float br = basis[r];
      const float* cr = col + static_cast<size_t>(r) * K + c0;
      for (uint32_t c = 0; c < kChunk; ++c) acc[c] = std::fmaf(br, cr[c], acc[c]);
    }
    for (uint32_t c = 0; c < kChunk; ++c) P[c0 + c] = acc[c];
  }
  for (uint32_t c = c0; c < K; ++c) {
    float s = basis[0] * col[c];
    for (uint32_t r = 1; r < width; ++r) s = std::fmaf(basis[r], col[static_cast<size_t>(r) * K + c], s);
    P[c] = s;
  }
}

// The same chain for one codeword.
inline float direct_term(const float* columns, uint32_t K, const float* basis, uint32_t start, uint32_t width, uint32_t c) {
  const float* col = columns + static_cast<size_t>(start) * K + c;
  float s = basis[0] * col[0];
  for (uint32_t r = 1; r < width; ++r) s = std::fmaf(basis[r], col[static_cast<size_t>(r) * K], s);
  return s;
}

// One record's 16 edges decoded to floats: index, gain, bias, base.
template <typename IndexT, typename WordT, bool kFloat>
struct RecordDecoder {
  uint32_t gain_shift, bias_shift, base_shift;  // left shifts that put a field's top bit at bit 31
  uint32_t gain_bits, bias_bits, base_bits;

  explicit RecordDecoder(const KanLayerView& L) {
    gain_bits = L.gain.bits;
    bias_bits = L.bias.bits;
    base_bits = L.base.bits;
    gain_shift = 32 - gain_bits;
    bias_shift = 32 - gain_bits - bias_bits;
    base_shift = 32 - gain_bits - bias_bits - base_bits;
  }

  // scales: this panel's 16 scales of each field (ignored for float values).
  inline void decode(const uint8_t* rec, const float* gs, const float* bs, const float* ws, uint32_t* idx, float* g,
                     float* b, float* w) const {
    IndexT raw[kPanelWidth];
    std::memcpy(raw, rec, sizeof raw);
    for (uint32_t l = 0; l < kPanelWidth; ++l) idx[l] = raw[l];
    const uint8_t* values = rec + sizeof raw;
    if constexpr (kFloat) {
      std::memcpy(g, values, kPanelWidth * sizeof(float));
      std::memcpy(b, values + kPanelWidth * sizeof(float), kPanelWidth * sizeof(float));
      std::memcpy(w, values + 2 * kPanelWidth * sizeof(float), kPanelWidth * sizeof(float));
    } else {
      WordT words[kPanelWidth];
      std::memcpy(words, values, sizeof words);
      for (uint32_t l = 0; l < kPanelWidth; ++l) {
        const uint32_t v = words[l];
        // Sign-extend each field: shift its top bit to bit 31, then arithmetic shift down.
        const int32_t qg = static_cast<int32_t>(v << gain_shift) >> (32 - gain_bits);
        const int32_t qb = static_cast<int32_t>(v << bias_shift) >> (32 - bias_bits);
        const int32_t qw = static_cast<int32_t>(v << base_shift) >> (32 - base_bits);
        g[l] = static_cast<float>(qg) * gs[l];
        b[l] = static_cast<float>(qb) * bs[l];
        w[l] = static_cast<float>(qw) * ws[l];
      }
    }
  }
};

// The coefficient-table rows of inputs [i0, i1) into P (row i at P + (i - i0) * K).
inline void table_block(const KanLayerView& L, const float* basis, const uint32_t* start, uint32_t i0, uint32_t i1,
                        float* P) {
  const uint32_t K = L.codebook_size, width = basis_width(L);
  for (uint32_t i = i0; i < i1; ++i)
    table_row(L.codebook_columns, K, basis + static_cast<size_t>(i) * width, start[i], width,
              P + static_cast<size_t>(i - i0) * K);
}

// Lane-vectorized: panels [p0, p1) of one sample. silu/bsum/basis/start: this sample's rows;
// P: lane_table_floats scratch for the table block (kTable) or unused. Inputs are walked in
// blocks (lane_input_block) for all panels of a chunk, so the table block stays in cache.
template <typename IndexT, typename WordT, bool kFloat, bool kTable>
void lane_panels(const KanLayerView& L, const float* silu, const float* bsum, const float* basis, const uint32_t* start,
                 float* P, uint32_t p0, uint32_t p1, float* y) {
  const uint32_t in = L.in_features, K = L.codebook_size, width = basis_width(L), IB = lane_input_block(L);
  const RecordDecoder<IndexT, WordT, kFloat> dec(L);
  static const float kOnes[kPanelWidth] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  float chunk_acc[kLaneChunkPanels][kPanelWidth];
  for (uint32_t c0 = p0; c0 < p1; c0 += kLaneChunkPanels) {
    const uint32_t c1 = std::min(p1, c0 + kLaneChunkPanels);
    std::memset(chunk_acc, 0, sizeof chunk_acc);
    for (uint32_t i0 = 0; i0 < in; i0 += IB) {
      const uint32_t i1 = std::min(in, i0 + IB);
      if constexpr (kTable) table_block(L, basis, start, i0, i1, P);
      for (uint32_t p = c0; p < c1; ++p) {
        const float* gs = kFloat ? kOnes : L.gain.scales + p * kPanelWidth;
        const float* bs = kFloat ? kOnes : L.bias.scales + p * kPanelWidth;
        const float* ws = kFloat ? kOnes : L.base.scales + p * kPanelWidth;
        const uint8_t* rec = L.edges + (static_cast<size_t>(p) * in + i0) * L.record_bytes;
        float acc[kPanelWidth];
        std::memcpy(acc, chunk_acc[p - c0], sizeof acc);
        for (uint32_t i = i0; i < i1; ++i, rec += L.record_bytes) {
          uint32_t idx[kPanelWidth];
          float g[kPanelWidth], b[kPanelWidth], w[kPanelWidth], d[kPanelWidth];
          dec.decode(rec, gs, bs, ws, idx, g, b, w);
          if constexpr (kTable) {
            const float* row = P + static_cast<size_t>(i - i0) * K;
            for (uint32_t l = 0; l < kPanelWidth; ++l) d[l] = row[idx[l]];
          } else {
            for (uint32_t l = 0; l < kPanelWidth; ++l)
              d[l] = direct_term(L.codebook_columns, K, basis + static_cast<size_t>(i) * width, start[i], width, idx[l]);
          }
          const float si = silu[i], bi = bsum[i];
          for (uint32_t l = 0; l < kPanelWidth; ++l) {
            float a = std::fmaf(w[l], si, acc[l]);
            a = std::fmaf(g[l], d[l], a);
            acc[l] = std::fmaf(b[l], bi, a);
          }
        }
        std::memcpy(chunk_acc[p - c0], acc, sizeof acc);
      }
    }
    for (uint32_t p = c0; p < c1; ++p) {
      const uint32_t lanes = std::min(kPanelWidth, L.out_features - p * kPanelWidth);
      for (uint32_t l = 0; l < lanes; ++l) y[p * kPanelWidth + l] = chunk_acc[p - c0][l];
    }
  }
}

// Sample-vectorized: panels [p0, p1) of sample group g (samples 8g .. 8g+7).
template <typename IndexT, typename WordT, bool kFloat, bool kTable>
void sample_panels(const KanLayerView& L, const SamplePlan& S, uint32_t group, uint32_t p0, uint32_t p1, float* scratch,
                   float* y, size_t batch) {
  constexpr uint32_t G8 = kSampleGroup;
  const uint32_t in = L.in_features, K = L.codebook_size, width = basis_width(L), out = L.out_features;
  const uint32_t IB = S.input_block;
  const RecordDecoder<IndexT, WordT, kFloat> dec(L);
  static const float kOnes[kPanelWidth] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  const SampleScratch sc = carve_sample_scratch(scratch, p1 - p0, IB, K, kTable);
  float *acc = sc.acc, *table = sc.table, *row = sc.rows, *gv = sc.gain, *bv = sc.bias, *wv = sc.base;
  uint32_t* idx = sc.idx;
  std::memset(acc, 0, sizeof(float) * (p1 - p0) * kPanelWidth * G8);
  const size_t n0 = static_cast<size_t>(group) * G8;
  const float* siluT = S.silu_t + static_cast<size_t>(group) * in * G8;  // [i][8]
  const float* bsumT = S.bsum_t + static_cast<size_t>(group) * in * G8;
  for (uint32_t i0 = 0; i0 < in; i0 += IB) {
    const uint32_t ib = std::min(IB, in - i0);
    if constexpr (kTable) {
      // table[ii][c][n] for the block's inputs; padded samples have zero bases, so zero rows.
      for (uint32_t ii = 0; ii < ib; ++ii) {
        for (uint32_t n = 0; n < G8; ++n) {
          const size_t slot = (n0 + n) * in + i0 + ii;
          table_row(L.codebook_columns, K, S.basis + slot * width, S.start[slot], width, row);
          float* t = table + static_cast<size_t>(ii) * K * G8 + n;
          for (uint32_t c = 0; c < K; ++c) t[static_cast<size_t>(c) * G8] = row[c];
        }
      }
    }
    for (uint32_t p = p0; p < p1; ++p) {
      const float* gs = kFloat ? kOnes : L.gain.scales + p * kPanelWidth;
      const float* bs = kFloat ? kOnes : L.bias.scales + p * kPanelWidth;
      const float* ws = kFloat ? kOnes : L.base.scales + p * kPanelWidth;
      const uint8_t* rec = L.edges + (static_cast<size_t>(p) * in + i0) * L.record_bytes;
      for (uint32_t ii = 0; ii < ib; ++ii, rec += L.record_bytes) {
        const size_t o = static_cast<size_t>(ii) * kPanelWidth;
        dec.decode(rec, gs, bs, ws, idx + o, gv + o, bv + o, wv + o);
      }
      float* accp = acc + static_cast<size_t>(p - p0) * kPanelWidth * G8;
      for (uint32_t l = 0; l < kPanelWidth; ++l) {
        float a[G8];
        std::memcpy(a, accp + l * G8, sizeof a);
        for (uint32_t ii = 0; ii < ib; ++ii) {
          const size_t o = static_cast<size_t>(ii) * kPanelWidth + l;
          const float w = wv[o], g = gv[o], b = bv[o];
          const float* s = siluT + static_cast<size_t>(i0 + ii) * G8;
          const float* bsum = bsumT + static_cast<size_t>(i0 + ii) * G8;
          float d[G8];
          if constexpr (kTable) {
            std::memcpy(d, table + (static_cast<size_t>(ii) * K + idx[o]) * G8, sizeof d);
          } else {
            for (uint32_t n = 0; n < G8; ++n) {
              const size_t slot = (n0 + n) * in + i0 + ii;
              d[n] = direct_term(L.codebook_columns, K, S.basis + slot * width, S.start[slot], width, idx[o]);
            }
          }
          for (uint32_t n = 0; n < G8; ++n) {
            float v = std::fmaf(w, s[n], a[n]);
            v = std::fmaf(g, d[n], v);
            a[n] = std::fmaf(b, bsum[n], v);
          }
        }
        std::memcpy(accp + l * G8, a, sizeof a);
      }
    }
  }
  const size_t samples = std::min<size_t>(G8, batch - n0);
  for (uint32_t p = p0; p < p1; ++p) {
    const uint32_t lanes = std::min(kPanelWidth, out - p * kPanelWidth);
    const float* accp = acc + static_cast<size_t>(p - p0) * kPanelWidth * G8;
    for (uint32_t l = 0; l < lanes; ++l)
      for (size_t n = 0; n < samples; ++n) y[(n0 + n) * out + p * kPanelWidth + l] = accp[l * G8 + n];
  }
}

// Dispatch on the layer's storage (index width, word width or float values, table or not).
template <template <typename, typename, bool, bool> class F, typename... Args>
void with_layout(const KanLayerView& L, bool table, Args&&... args) {
  const bool u16 = L.index_bytes == 2;
  auto go = [&](auto idx_tag) {
    using IndexT = decltype(idx_tag);
    if (L.word_bytes == 0) {
      table ? F<IndexT, uint32_t, true, true>::run(L, args...) : F<IndexT, uint32_t, true, false>::run(L, args...);
    } else if (L.word_bytes == 2) {
      table ? F<IndexT, uint16_t, false, true>::run(L, args...) : F<IndexT, uint16_t, false, false>::run(L, args...);
    } else {
      table ? F<IndexT, uint32_t, false, true>::run(L, args...) : F<IndexT, uint32_t, false, false>::run(L, args...);
    }
  };
  if (u16) go(uint16_t{}); else go(uint8_t{});
}

template <typename IndexT, typename WordT, bool kFloat, bool kTable>
struct LaneFn {
  static void run(const KanLayerView& L, const float* silu, const float* bsum, const float* basis, const uint32_t* start,
                  float* P, uint32_t p0, uint32_t p1, float* y) {
    lane_panels<IndexT, WordT, kFloat, kTable>(L, silu, bsum, basis, start, P, p0, p1, y);
  }
};

template <typename IndexT, typename WordT, bool kFloat, bool kTable>
struct SampleFn {
  static void run(const KanLayerView& L, const SamplePlan& S, uint32_t group, uint32_t p0, uint32_t p1, float* scratch,
                  float* y, size_t batch) {
    sample_panels<IndexT, WordT, kFloat, kTable>(L, S, group, p0, p1, scratch, y, batch);
  }
};
